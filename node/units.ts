// Parsing of the human-facing quantities the CLI and config accept.

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/** "64MiB", "4 GiB", "1.5GB", "1000" → bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`invalid size "${text}": use a number with an optional unit, like 64MiB, 4GiB or 500MB`);
  return Math.round(Number(m[1]) * unit);
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

const DURATION_UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** "24h", "30d", "90m" → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/.exec(text);
  if (!m) throw new Error(`invalid duration "${text}": use a number and a unit s, m, h, d or w, like 24h or 30d`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}

/**
 * A point in time for `--at`: an ISO 8601 date or date-time ("2026-05-01",
 * "2026-05-01T12:00", "2026-05-01 12:00:07"), or a duration ago ("3d" = three days
 * ago). A time means the end of what it names, local time unless it carries a zone:
 * `--at 2026-05-01` includes that day's backups, and `--at "2026-05-01 02:00:07"`
 * (a time `hearth snapshots` prints) includes the backup that started in that second.
 */
export function parseTime(text: string, now = Date.now()): number {
  if (/^\s*\d+(?:\.\d+)?\s*[smhdw]\s*$/.test(text)) return now - parseDuration(text);
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    const end = new Date(`${text}T23:59:59.999`).getTime();
    if (!Number.isNaN(end)) return end;
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`invalid time "${text}": use a date like 2026-05-01, a date-time like 2026-05-01T14:30, or an age like 3d`);
  const precision = /[T ]\d{2}:\d{2}(:\d{2})?(\.\d+)?/.exec(text);
  if (!precision || precision[2]) return t;
  return t + (precision[1] ? 999 : 59_999);
}

/** A time for people: local, to the second ("2026-05-01 02:00:07"). */
export function formatLocalTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** A duration for people: "4.2s", "3m 05s", "1h 12m". */
export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "5%", "100%", or a bare percentage ("5") → a share from 0 to 1. */
export function parseShare(text: string, what = 'share'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const percent = m ? Number(m[1]) : NaN;
  if (!(percent >= 0 && percent <= 100)) throw new Error(`${what} "${text}" is not a percentage: give one from 0% to 100%, like 5%`);
  return percent / 100;
}

const RATE_UNITS: Record<string, number> = {
  'b/s': 1, 'kb/s': 1e3, 'mb/s': 1e6, 'gb/s': 1e9, 'kib/s': 2 ** 10, 'mib/s': 2 ** 20, 'gib/s': 2 ** 30,
  'bit/s': 1 / 8, 'kbit/s': 1e3 / 8, 'mbit/s': 1e6 / 8, 'gbit/s': 1e9 / 8, kbps: 1e3 / 8, mbps: 1e6 / 8, gbps: 1e9 / 8,
};

/** "2MB/s", "500KiB/s", "10Mbit/s", "10Mbps" → bytes per second; "0" or "none" → 0 (unlimited). */
export function parseRate(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === 'none' || /^0+(\.0+)?$/.test(t)) return 0;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+(?:\/s)?)$/.exec(t);
  const unit = m ? RATE_UNITS[m[2]!] : undefined;
  if (!m || unit === undefined) throw new Error(`invalid rate "${text}": use a number and a unit per second, like 2MB/s, 500KiB/s or 10Mbit/s (0 or none: unlimited)`);
  return Math.round(Number(m[1]) * unit);
}

/** Bytes per second for people: "16.0 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatSize(Math.round(bytesPerSecond))}/s`;
}
