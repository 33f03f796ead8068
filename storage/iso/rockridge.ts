// System Use Sharing Protocol (SUSP 1.12) and Rock Ridge (RRIP 1.12) entries, and
// the split of a record's entries between its System Use field and Continuation
// Areas. Every entry is at most 255 bytes (its length is one byte); names and link
// targets longer than that are spread over several NM / SL entries.
import { SECTOR, shortDate, writeBoth32 } from './bytes.ts';

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

const ENTRY_MAX = 255;
const ENTRY_HEADER = 4;
/** NM and SL carry a flags byte after the header. */
const PAYLOAD_MAX = ENTRY_MAX - ENTRY_HEADER - 1;
const CE_LENGTH = 28;

function suspEntry(signature: string, payload: Uint8Array): Buffer {
  const entry = Buffer.alloc(ENTRY_HEADER + payload.length);
  entry.write(signature, 0, 'latin1');
  entry[2] = entry.length;
  entry[3] = 1;
  entry.set(payload, ENTRY_HEADER);
  return entry;
}

/** SUSP 5.3: first entry of the root's "." record; says SUSP is in use, no bytes skipped. */
export function spEntry(): Buffer {
  return suspEntry('SP', Buffer.from([0xbe, 0xef, 0]));
}

// RRIP 1.12 section 4.3 identifies itself this way (xorriso, bsdtar and Linux accept
// it; the 1.12 form is what makes PX carry the inode number).
const RRIP_ID = 'IEEE_P1282';
const RRIP_DESCRIPTOR = 'THE IEEE P1282 PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS.';
const RRIP_SOURCE = 'PLEASE CONTACT THE IEEE STANDARDS DEPARTMENT, PISCATAWAY, NJ, USA FOR THE P1282 SPECIFICATION.';

/** SUSP 5.5: the Extensions Reference naming Rock Ridge, in the root's "." record. */
export function erEntry(): Buffer {
  const head = Buffer.from([RRIP_ID.length, RRIP_DESCRIPTOR.length, RRIP_SOURCE.length, 1]);
  return suspEntry('ER', Buffer.concat([head, Buffer.from(RRIP_ID + RRIP_DESCRIPTOR + RRIP_SOURCE, 'latin1')]));
}

export interface PosixAttributes {
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  ino: number;
}

/** RRIP 4.1.1: mode, links, uid, gid and (1.12) file serial number, both-endian. */
export function pxEntry(attributes: PosixAttributes): Buffer {
  const payload = Buffer.alloc(40);
  [attributes.mode, attributes.nlink, attributes.uid, attributes.gid, attributes.ino].forEach((value, i) =>
    writeBoth32(payload, i * 8, value),
  );
  return suspEntry('PX', payload);
}

// Modification, access and attribute-change times, all set to the file's mtime: the
// ISO records the file as it was packed, and readers fill atime/ctime from these.
const TF_MODIFY_ACCESS_ATTRIBUTES = 0b1110;

/** RRIP 4.1.6: time stamps in the 7-byte form (whole seconds, UTC). */
export function tfEntry(mtimeMs: number): Buffer {
  const stamp = shortDate(mtimeMs);
  return suspEntry('TF', Buffer.concat([Buffer.from([TF_MODIFY_ACCESS_ATTRIBUTES]), stamp, stamp, stamp]));
}

const NM_CONTINUE = 1;

/** RRIP 4.1.4: the name's exact bytes, in as many NM entries as needed. */
export function nmEntries(name: Buffer): Buffer[] {
  const entries: Buffer[] = [];
  for (let at = 0; at < name.length; at += PAYLOAD_MAX) {
    const piece = name.subarray(at, at + PAYLOAD_MAX);
    const more = at + PAYLOAD_MAX < name.length;
    entries.push(suspEntry('NM', Buffer.concat([Buffer.from([more ? NM_CONTINUE : 0]), piece])));
  }
  return entries;
}

const SL_CONTINUE = 1;
const COMPONENT_CONTINUE = 1;
const COMPONENT_CURRENT = 2;
const COMPONENT_PARENT = 4;
const COMPONENT_ROOT = 8;
const COMPONENT_HEADER = 2;

/**
 * RRIP 4.1.3: the link target as component records ("/" as ROOT, "." and ".." as
 * CURRENT and PARENT, empty components dropped), packed into SL entries; every entry
 * but the last has the SL CONTINUE flag.
 *
 * Readers disagree about a component boundary that falls between two SL entries:
 * Linux and libisofs insert the '/', libarchive (bsdtar) does not. So an entry never
 * ends on a finished component: it ends inside a text component split with the
 * component CONTINUE flag, or, when that is not possible, with an empty component
 * that has the CONTINUE flag, which every reader turns into exactly one '/'.
 */
export function slEntries(target: Buffer): Buffer[] {
  // Two bytes of every entry stay free for that closing empty component.
  const room = PAYLOAD_MAX - COMPONENT_HEADER;
  const payloads: Buffer[][] = [[]];
  let used = 0;
  let lastContinues = false;
  const add = (flags: number, text: Buffer) => {
    payloads.at(-1)!.push(Buffer.from([flags, text.length]), text);
    used += COMPONENT_HEADER + text.length;
    lastContinues = (flags & COMPONENT_CONTINUE) !== 0;
  };
  const ensureRoom = (bytes: number) => {
    if (used + bytes <= room) return;
    if (!lastContinues) payloads.at(-1)!.push(Buffer.from([COMPONENT_CONTINUE, 0]));
    payloads.push([]);
    used = 0;
  };
  const none = Buffer.alloc(0);

  if (target[0] === 0x2f) add(COMPONENT_ROOT, none);
  for (const component of splitBytes(target, 0x2f)) {
    if (component.length === 0) continue;
    const flag = component.equals(DOT) ? COMPONENT_CURRENT : component.equals(DOT_DOT) ? COMPONENT_PARENT : 0;
    if (flag) {
      ensureRoom(COMPONENT_HEADER);
      add(flag, none);
      continue;
    }
    for (let rest = component; rest.length > 0; ) {
      ensureRoom(COMPONENT_HEADER + 1);
      const take = Math.min(rest.length, room - used - COMPONENT_HEADER);
      add(take < rest.length ? COMPONENT_CONTINUE : 0, rest.subarray(0, take));
      rest = rest.subarray(take);
    }
  }
  return payloads.map((records, i) =>
    suspEntry('SL', Buffer.concat([Buffer.from([i < payloads.length - 1 ? SL_CONTINUE : 0]), ...records])),
  );
}

const DOT = Buffer.from('.');
const DOT_DOT = Buffer.from('..');

function splitBytes(bytes: Buffer, separator: number): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === separator) {
      parts.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

/** SUSP 5.1: where the rest of the entries are. */
function ceEntry(lba: number, offset: number, length: number): Buffer {
  const payload = Buffer.alloc(24);
  writeBoth32(payload, 0, lba);
  writeBoth32(payload, 8, offset);
  writeBoth32(payload, 16, length);
  return suspEntry('CE', payload);
}

/** Where a record's overflowing entries go; placed when the volume is laid out. */
export interface ContinuationArea {
  length: number;
  lba: number;
  offset: number;
}

/** How a record's entries are split: the first `inRecord` in the record, the rest in `area`. */
export interface SystemUseSplit {
  inRecord: number;
  /** Bytes in the record's System Use field, including the CE entry. */
  inRecordLength: number;
  area: ContinuationArea;
}

/**
 * Entries go into the record in order while they fit in `room` bytes (keeping room
 * for a CE entry); the rest go to one Continuation Area, or null when all fit.
 * Linux reads a Continuation Area only when it lies within one sector; with names of
 * at most 255 bytes and link targets of at most 1023, a record's entries total under
 * 1,950 bytes, so one area always suffices.
 */
export function splitSystemUse(entries: readonly Buffer[], room: number): SystemUseSplit | null {
  const total = entries.reduce((sum, entry) => sum + entry.length, 0);
  if (total <= room) return null;
  let inRecord = 0;
  let inRecordLength = CE_LENGTH;
  while (inRecordLength + entries[inRecord]!.length <= room) inRecordLength += entries[inRecord++]!.length;
  const length = total - (inRecordLength - CE_LENGTH);
  if (length > SECTOR) throw new Error(`Rock Ridge entries of ${length} bytes do not fit one continuation sector; shorten the name or link target`);
  return { inRecord, inRecordLength, area: { length, lba: 0, offset: 0 } };
}

/** The System Use field bytes of a record: its entries, then the CE entry if it has an area. */
export function systemUseField(entries: readonly Buffer[], split: SystemUseSplit | null): Buffer {
  if (!split) return Buffer.concat(entries);
  const { area } = split;
  return Buffer.concat([...entries.slice(0, split.inRecord), ceEntry(area.lba, area.offset, area.length)]);
}

/** The bytes of a record's Continuation Area. */
export function continuationAreaBytes(entries: readonly Buffer[], split: SystemUseSplit): Buffer {
  return Buffer.concat(entries.slice(split.inRecord));
}
