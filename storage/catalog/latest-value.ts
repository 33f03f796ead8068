// The value of a `l` (latest) index entry: the current version of one path. Every
// backup reads all of a source's entries (the scanner compares the disk with them),
// so they are kept compact: fixed binary fields, the hash as 32 bytes, and neither
// source nor path, which the key already holds. A version with fields this format
// does not know (a newer Hearth's) is kept as its JSON instead, whole.
//
// Binary form (numbers big-endian; doubles as IEEE 754):
//   0 version 0x01 | 1 type (0 file, 1 dir, 2 symlink) | 2 flags (1 hash, 2 target)
//   3 size f64 | 11 mtimeMs f64 | 19 ctimeMs f64 | 27 ino f64 | 35 mode f64
//   43 uid f64 | 51 gid f64 | 59 time f64 | 67 hash (32, if flagged) | then target bytes (if flagged)
// JSON form: the record's JSON, which starts with '{' (0x7b).
import { decodeFsName, encodeFsName } from '../paths.ts';
import type { FilePayload, FileRecord } from './payloads.ts';

const FORMAT = 0x01;
const HEADER = 67;
const HAS_HASH = 1;
const HAS_TARGET = 2;
const TYPES = ['file', 'dir', 'symlink'] as const;
const KNOWN = new Set(['k', 'source', 'path', 'type', 'size', 'mtimeMs', 'ctimeMs', 'ino', 'mode', 'uid', 'gid', 'hash', 'target', 'time']);

export function encodeLatest(file: FilePayload, json: string): Buffer {
  for (const key in file) if (!KNOWN.has(key) && (file as unknown as Record<string, unknown>)[key] !== undefined) return Buffer.from(json, 'utf8');
  const target = file.target === undefined ? undefined : encodeFsName(file.target);
  const value = Buffer.allocUnsafe(HEADER + (file.hash ? 32 : 0) + (target?.length ?? 0));
  value[0] = FORMAT;
  value[1] = TYPES.indexOf(file.type);
  value[2] = (file.hash ? HAS_HASH : 0) | (target ? HAS_TARGET : 0);
  let at = 3;
  for (const n of [file.size, file.mtimeMs, file.ctimeMs, file.ino, file.mode, file.uid, file.gid, file.time]) at = value.writeDoubleBE(n, at);
  if (file.hash) at += value.write(file.hash, at, 'hex');
  target?.copy(value, at);
  return value;
}

/** The version a latest value holds, for the path and source its key names. */
export function decodeLatest(value: Buffer, source: string, path: string): FileRecord {
  if (value[0] !== FORMAT) return JSON.parse(value.toString('utf8')) as FileRecord;
  const flags = value[2]!;
  // Fields in the order a record's JSON has them, so the two forms serialise alike.
  const record = {
    k: 'file', source, path, type: TYPES[value[1]!]!,
    size: value.readDoubleBE(3), mtimeMs: value.readDoubleBE(11), ctimeMs: value.readDoubleBE(19), ino: value.readDoubleBE(27),
    mode: value.readDoubleBE(35), uid: value.readDoubleBE(43), gid: value.readDoubleBE(51),
  } as FileRecord;
  if (flags & HAS_HASH) record.hash = value.toString('hex', HEADER, HEADER + 32);
  if (flags & HAS_TARGET) record.target = decodeFsName(value.subarray(HEADER + (flags & HAS_HASH ? 32 : 0)));
  record.time = value.readDoubleBE(59);
  return record;
}
