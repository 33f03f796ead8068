// Field encodings ECMA-119 uses everywhere: "both-byte orders" numbers (LE then BE),
// 7-byte directory-record dates and 17-byte volume-descriptor dates.

export const SECTOR = 2048;

export function sectorsFor(bytes: number): number {
  return Math.ceil(bytes / SECTOR);
}

/** ECMA-119 7.3.3: 32-bit LE followed by 32-bit BE (8 bytes). */
export function writeBoth32(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32LE(value, offset);
  buf.writeUInt32BE(value, offset + 4);
}

/** ECMA-119 7.2.3: 16-bit LE followed by 16-bit BE (4 bytes). */
export function writeBoth16(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt16LE(value, offset);
  buf.writeUInt16BE(value, offset + 2);
}

// Dates are recorded in UTC (offset byte 0). The 7-byte form counts years from 1900
// in one byte, so it covers 1900..2155; times outside are clamped to the edges.
const SHORT_DATE_MIN = Date.UTC(1900, 0, 1);
const SHORT_DATE_MAX = Date.UTC(2155, 11, 31, 23, 59, 59);

/** ECMA-119 9.1.5: years since 1900, month, day, hour, minute, second, UTC offset. */
export function shortDate(ms: number): Buffer {
  const d = new Date(Math.min(Math.max(Math.floor(ms / 1000) * 1000, SHORT_DATE_MIN), SHORT_DATE_MAX));
  return Buffer.from([
    d.getUTCFullYear() - 1900,
    d.getUTCMonth() + 1,
    d.getUTCDate(),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    0,
  ]);
}

const LONG_DATE_MIN = new Date(0).setUTCFullYear(1, 0, 1);
const LONG_DATE_MAX = Date.UTC(9999, 11, 31, 23, 59, 59, 990);

/** ECMA-119 8.4.26.1: "YYYYMMDDHHMMSScc" digits then the UTC offset byte. */
export function longDate(ms: number): Buffer {
  const d = new Date(Math.min(Math.max(ms, LONG_DATE_MIN), LONG_DATE_MAX));
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  const digits =
    pad(d.getUTCFullYear(), 4) +
    pad(d.getUTCMonth() + 1, 2) +
    pad(d.getUTCDate(), 2) +
    pad(d.getUTCHours(), 2) +
    pad(d.getUTCMinutes(), 2) +
    pad(d.getUTCSeconds(), 2) +
    pad(Math.floor(d.getUTCMilliseconds() / 10), 2);
  return Buffer.concat([Buffer.from(digits, 'latin1'), Buffer.from([0])]);
}

/** ECMA-119 8.4.26.1: a date that is "not specified". */
export const UNSPECIFIED_LONG_DATE = Buffer.concat([Buffer.from('0'.repeat(16), 'latin1'), Buffer.from([0])]);
