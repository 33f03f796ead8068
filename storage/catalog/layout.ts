// LevelDB key layout of the catalog: every key is bytes, led by one prefix byte
// naming its keyspace. Layouts and why they sort as they do: docs/catalog-format.md.
import { decodeFsName, encodeFsName, pathSortKey } from '../paths.ts';

export const SPACE = {
  meta: 0x6d, // m: head, owner key, stats, index format, rebuild marker
  log: 0x65, // e seq -> envelope
  source: 0x73, // s source -> ''
  latest: 0x6c, // l source pathKey -> FileRecord, compact (latest-value.ts)
  history: 0x68, // h source esc(pathKey) 00 seq entry -> FileRecord | DeleteRecord, in log order
  object: 0x6f, // o id -> ObjectSummary
  objectContents: 0x78, // x id index -> hash offset length
  content: 0x63, // c hash id index -> offset length
  placement: 0x70, // p id target -> placement
  liveRefs: 0x6e, // n hash -> count size: live current versions with this content
  livePaths: 0x72, // r hash source pathKey -> '': which live current versions those are
  volumeRefs: 0x76, // v hash -> count: entries in volumes holding this content
  unpacked: 0x75, // u hash -> size
  held: 0x6b, // k hash -> count: ranges in any object (blob or volume) holding this content
  timeline: 0x74, // t time -> seq: the last record at or before each time (a snapshot's end)
  run: 0x67, // g run 00|01 -> the run's start | end payload
  document: 0x64, // d kind -> the latest payload of a whole-document kind (settings, roster)
} as const;

/** Keyspaces derived from the log; rebuild() clears and refills exactly these. */
export const INDEX_SPACES = [
  SPACE.source, SPACE.latest, SPACE.history, SPACE.object, SPACE.objectContents,
  SPACE.content, SPACE.placement, SPACE.liveRefs, SPACE.livePaths, SPACE.volumeRefs, SPACE.unpacked,
  SPACE.held, SPACE.timeline,
  SPACE.run, SPACE.document,
];

export const META = {
  head: metaKey('head'),
  owner: metaKey('owner'),
  stats: metaKey('stats'),
  indexFormat: metaKey('index-format'),
  rebuilding: metaKey('rebuilding'),
};

function metaKey(name: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.meta), Buffer.from(name, 'latin1')]);
}

export function writeU64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), at);
  buf.writeUInt32BE(n >>> 0, at + 4);
}

export function readU64(buf: Uint8Array, at: number): number {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return view.readUInt32BE(at) * 0x1_0000_0000 + view.readUInt32BE(at + 4);
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, 0, n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

/** Length-prefixed so a source or id never runs into the bytes after it. */
function lengthPrefixed(bytes: Buffer, lengthBytes: 1 | 2, what: string): Buffer {
  const max = lengthBytes === 1 ? 0xff : 0xffff;
  if (bytes.length > max) throw new Error(`catalog ${what} is ${bytes.length} bytes; the limit is ${max}`);
  const head = Buffer.allocUnsafe(lengthBytes);
  if (lengthBytes === 1) head[0] = bytes.length;
  else head.writeUInt16BE(bytes.length);
  return Buffer.concat([head, bytes]);
}

export function sourcePart(source: string): Buffer {
  return lengthPrefixed(encodeFsName(source), 2, 'source name');
}

export function idPart(id: string): Buffer {
  return lengthPrefixed(Buffer.from(id, 'utf8'), 1, 'object id');
}

/**
 * Order-preserving escape so a path key can be followed by more key bytes: 00 -> 01 01,
 * 01 -> 01 02, then a 00 terminator. A path then sorts before its children, and
 * siblings keep pathSortKey order.
 */
export function escapePathKey(key: Buffer): Buffer {
  let extra = 0;
  for (const b of key) if (b < 2) extra++;
  const out = Buffer.allocUnsafe(key.length + extra);
  let at = 0;
  for (const b of key) {
    if (b < 2) {
      out[at++] = 1;
      out[at++] = b + 1;
    } else {
      out[at++] = b;
    }
  }
  return out;
}

export function logKey(seq: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = SPACE.log;
  writeU64(k, 1, seq);
  return k;
}

export function seqOfLogKey(key: Buffer): number {
  return readU64(key, 1);
}

export function sourceKey(source: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.source), encodeFsName(source)]);
}

export function latestKey(sourceBytes: Buffer, path: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.latest), sourceBytes, pathSortKey(path)]);
}

export function latestPrefix(source: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.latest), sourcePart(source)]);
}

/** `entry` is the payload's place in its record: one record may hold two events of a path. */
export function historyKey(sourceBytes: Buffer, path: string, seq: number, entry: number): Buffer {
  return Buffer.concat([historyPathPrefix(sourceBytes, path), Buffer.of(0), u64(seq), u32(entry)]);
}

/** Key bytes shared by every event of one path: up to, not including, the 00 terminator. */
export function historyPathPrefix(sourceBytes: Buffer, path: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.history), sourceBytes, escapePathKey(pathSortKey(path))]);
}

/** seq and entry sit in the last 12 bytes of a history key, after the terminator. */
export const HISTORY_SUFFIX_BYTES = 13;

export function historySeq(key: Buffer): number {
  return readU64(key, key.length - 12);
}

export function timelineKey(time: number): Buffer {
  return Buffer.concat([Buffer.of(SPACE.timeline), u64(time)]);
}

export function timeOfTimelineKey(key: Buffer): number {
  return readU64(key, 1);
}

export function livePathKey(hash: Buffer, sourceBytes: Buffer, path: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.livePaths), hash, sourceBytes, pathSortKey(path)]);
}

/** The source and path a livePathKey names. */
export function decodeLivePathKey(key: Buffer): { source: string; path: string } {
  const sourceLength = key.readUInt16BE(33);
  return { source: decodeFsName(key.subarray(35, 35 + sourceLength)), path: pathOfSortKey(key.subarray(35 + sourceLength)) };
}

/** The path a latestKey names, given the length of its prefix (latestPrefix). */
export function pathOfLatestKey(key: Buffer, prefixLength: number): string {
  return pathOfSortKey(key.subarray(prefixLength));
}

function pathOfSortKey(sortKey: Buffer): string {
  const bytes = Buffer.from(sortKey);
  // pathSortKey turned each '/' into 00; names hold neither byte, so this is exact.
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0) bytes[i] = 0x2f;
  return decodeFsName(bytes);
}

export function objectKey(id: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.object), idPart(id)]);
}

export function objectContentsKey(id: string, index: number): Buffer {
  return Buffer.concat([Buffer.of(SPACE.objectContents), idPart(id), u32(index)]);
}

export function objectContentsPrefix(id: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.objectContents), idPart(id)]);
}

export function contentKey(hash: Buffer, id: string, index: number): Buffer {
  return Buffer.concat([Buffer.of(SPACE.content), hash, idPart(id), u32(index)]);
}

export function contentPrefix(hash: Buffer): Buffer {
  return Buffer.concat([Buffer.of(SPACE.content), hash]);
}

export function placementKey(id: string, target: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.placement), idPart(id), encodeFsName(target)]);
}

export function placementPrefix(id: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.placement), idPart(id)]);
}

/** A run's start (phase 'start') or end record; a run's two keys sit side by side. */
export function runKey(run: string, phase: 'start' | 'end'): Buffer {
  return Buffer.concat([Buffer.of(SPACE.run), Buffer.from(run, 'utf8'), Buffer.of(phase === 'start' ? 0 : 1)]);
}

export function documentKey(kind: string): Buffer {
  return Buffer.concat([Buffer.of(SPACE.document), Buffer.from(kind, 'utf8')]);
}

export function hashKey(space: number, hash: Buffer): Buffer {
  return Buffer.concat([Buffer.of(space), hash]);
}

/** Encoded content range inside an object: [hash(32)] offset(8) length(8). */
export function encodeRange(offset: number, length: number, hash?: Buffer): Buffer {
  const b = Buffer.allocUnsafe((hash ? 32 : 0) + 16);
  let at = 0;
  if (hash) at += hash.copy(b, 0);
  writeU64(b, at, offset);
  writeU64(b, at + 8, length);
  return b;
}

export function u64Value(n: number): Buffer {
  return u64(n);
}

/** The first key after every key that starts with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  throw new Error('catalog key prefix of all 0xff bytes has no end');
}
