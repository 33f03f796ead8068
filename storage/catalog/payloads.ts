// What a catalog record says, once decrypted: one JSON object whose `k` names its
// kind. Times are ms since the epoch, hashes lowercase hex SHA-256. Kinds this
// version does not know stay in the log and are skipped by the indexes, so an older
// Hearth can still carry, verify and serve a newer owner's log.
import type { TierKind } from '../tier/tier.ts';
import { MAX_PAYLOAD_BYTES } from './envelope.ts';

export interface RunPayload {
  k: 'run';
  run: string;
  phase: 'start' | 'end';
  time: number;
  ok?: boolean;
  stats?: Record<string, unknown>;
}

export interface FilePayload {
  k: 'file';
  source: string;
  /** Relative to the source; raw name bytes as lone surrogates U+DC80..DCFF. */
  path: string;
  type: 'file' | 'symlink' | 'dir';
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  /** SHA-256 of the content; files only. */
  hash?: string;
  /** Symlinks only. */
  target?: string;
  time: number;
}

export interface DeletePayload {
  k: 'delete';
  source: string;
  path: string;
  time: number;
}

export interface ContentRange {
  hash: string;
  offset: number;
  length: number;
}

export interface ObjectPayload {
  k: 'object';
  id: string;
  kind: 'blob' | 'volume';
  name: string;
  /** Encrypted bytes. */
  size: number;
  plainSize: number;
  merkleRoot: string;
  leafSize: number;
  /** Where each content sits in the object's plaintext; a blob has one range at offset 0. */
  contents: ContentRange[];
  time: number;
}

/**
 * More content ranges of the object `id`. append() writes these itself when an
 * object's ranges do not fit in one record (a volume of many small files).
 */
export interface ContentsPayload {
  k: 'contents';
  id: string;
  contents: ContentRange[];
  time: number;
}

export interface PlacePayload {
  k: 'place';
  id: string;
  tier: TierKind;
  target: string;
  location: string;
  time: number;
  /**
   * Set when a check or a read found this copy missing, truncated or with the wrong
   * Merkle root (node/checks/): the copy is kept (it may be the only one, and a damaged
   * volume still holds intact files) but counts for nothing until a repair records a
   * `place` without it. Older versions ignore the field.
   */
  damaged?: string;
  /**
   * The checksum the place keeps for the object as stored there, when the place
   * keeps one (S3, Drive): `sha256:<base64>` (`-N` for S3's composite), `md5:<hex>`
   * or `etag:<etag>` (storage/tier/checksum.ts). The monthly check compares it with
   * the place's listing, so bytes replaced in the bucket are found without reading
   * them. Older versions ignore the field; placements without it are checked by size.
   * Any string is accepted on reading: a later version may record an algorithm this one
   * does not know, which the check then leaves alone (isKnownChecksum).
   */
  checksum?: string;
}

export interface UnplacePayload {
  k: 'unplace';
  id: string;
  target: string;
  time: number;
}

/** The object is no longer used (its content lives in a placed volume). */
export interface RetirePayload {
  k: 'retire';
  id: string;
  time: number;
}

/**
 * The home itself as of `time`: its settings and its family, so a home recovered
 * from its phrase gets them back with the catalog. The latest one counts.
 */
export interface HomePayload {
  k: 'home';
  name: string;
  sources: Array<{ name: string; path: string }>;
  /** Each target's configuration as config.json holds it (a dir's path, an S3 bucket's name and endpoint; never credentials). */
  targets: Array<{ name: string; kind: string } & Record<string, unknown>>;
  /** Settings set with `config set` (defaults are not recorded). */
  settings: Record<string, string>;
  members: Array<{ name: string; peerId: string; addrs: string[]; quotaTheyGrantUs: number; quotaWeGrantThem: number; pairedAt: string }>;
  time: number;
}

export type CatalogPayload =
  | RunPayload | FilePayload | DeletePayload | ObjectPayload | ContentsPayload
  | PlacePayload | UnplacePayload | RetirePayload | HomePayload;

export type KnownKind = CatalogPayload['k'];

/** What the queries return: the payloads as they were appended. */
export type FileRecord = FilePayload;
export type DeleteRecord = DeletePayload;
export type ObjectRecord = ObjectPayload;
/** An object without its content ranges (a volume may list a million), with their count. */
export type ObjectSummary = Omit<ObjectPayload, 'contents'> & { entries: number };
export type PlacementRecord = PlacePayload;

const HEX64 = /^[0-9a-f]{64}$/;
const TIERS: readonly string[] = ['dir', 'peer', 'drive', 's3'];

type Check = (value: unknown) => boolean;
const isString: Check = (v) => typeof v === 'string';
const isName: Check = (v) => typeof v === 'string' && !v.includes('\0');
const isId: Check = (v) => typeof v === 'string' && v.length > 0 && v.isWellFormed() && Buffer.byteLength(v) <= 255;
const isCount: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const isTime = isCount;
const isNumber: Check = (v) => typeof v === 'number' && Number.isFinite(v);
// Inode numbers can exceed 2^53 and arrive rounded; they only need to compare equal.
const isInode: Check = (v) => isNumber(v) && (v as number) >= 0;
const isHash: Check = (v) => typeof v === 'string' && HEX64.test(v);
const oneOf = (...options: readonly string[]): Check => (v) => typeof v === 'string' && options.includes(v);
const optional = (check: Check): Check => (v) => v === undefined || check(v);
const isRanges: Check = (v) => Array.isArray(v) && v.every((r) =>
  typeof r === 'object' && r !== null && isHash(r.hash) && isCount(r.offset) && isCount(r.length));

const SHAPES: Record<KnownKind, Record<string, Check>> = {
  run: { run: isString, phase: oneOf('start', 'end'), time: isTime, ok: optional((v) => typeof v === 'boolean'),
    stats: optional((v) => typeof v === 'object' && v !== null) },
  file: { source: isName, path: isName, type: oneOf('file', 'symlink', 'dir'), size: isCount, mtimeMs: isNumber,
    ctimeMs: isNumber, ino: isInode, mode: isCount, uid: isCount, gid: isCount, hash: optional(isHash),
    target: optional(isString), time: isTime },
  delete: { source: isName, path: isName, time: isTime },
  object: { id: isId, kind: oneOf('blob', 'volume'), name: isString, size: isCount, plainSize: isCount,
    merkleRoot: isHash, leafSize: isCount, contents: isRanges, time: isTime },
  contents: { id: isId, contents: isRanges, time: isTime },
  place: { id: isId, tier: oneOf(...TIERS), target: isName, location: isString, time: isTime, damaged: optional(isString), checksum: optional(isString) },
  unplace: { id: isId, target: isName, time: isTime },
  retire: { id: isId, time: isTime },
  home: { name: isString, sources: Array.isArray, targets: Array.isArray, settings: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
    members: (v) => Array.isArray(v) && v.every((m) => typeof m === 'object' && m !== null && isString(m.peerId) && isString(m.name)), time: isTime },
};

function isKnownKind(k: string): k is KnownKind {
  return Object.hasOwn(SHAPES, k);
}

/**
 * Null when the payload is well-formed, else the first problem found. Extra fields
 * are allowed; unknown kinds are a problem only when `unknownKinds` is 'refuse' (what
 * this version writes), not when reading a log a newer Hearth may have written.
 */
export function payloadProblem(payload: unknown, unknownKinds: 'refuse' | 'accept' = 'refuse'): string | null {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return 'not a JSON object';
  const k = (payload as { k?: unknown }).k;
  if (typeof k !== 'string') return 'field k (the record kind) is missing';
  if (!isKnownKind(k)) return unknownKinds === 'accept' ? null : `unknown kind '${k}'`;
  for (const [field, check] of Object.entries(SHAPES[k])) {
    if (!check((payload as Record<string, unknown>)[field])) {
      return `${k} record has an invalid ${field}: ${JSON.stringify((payload as Record<string, unknown>)[field])}`;
    }
  }
  return null;
}

export interface PreparedEntry {
  payload: CatalogPayload;
  /** The payload's JSON, exactly the bytes the record holds for it. */
  json: string;
}

/**
 * The payloads as entries of at most MAX_PAYLOAD_BYTES each: an object whose ranges
 * do not fit becomes an `object` entry with the first ranges and `contents` entries
 * with the rest. Anything else that does not fit is an error.
 */
export function prepareEntries(payloads: readonly CatalogPayload[]): PreparedEntry[] {
  const out: PreparedEntry[] = [];
  payloads.forEach((payload, i) => {
    const problem = payloadProblem(payload);
    if (problem) throw new Error(`catalog append: payload ${i}: ${problem}`);
    const json = JSON.stringify(payload);
    if (Buffer.byteLength(json) <= MAX_PAYLOAD_BYTES) out.push({ payload, json });
    else if (payload.k === 'object') out.push(...splitObject(payload));
    else throw new Error(`catalog append: payload ${i} (${payload.k}) is ${Buffer.byteLength(json)} bytes, over the ${MAX_PAYLOAD_BYTES}-byte record limit`);
  });
  return out;
}

/**
 * A record aims to hold this much plaintext. One signature and one AEAD then cover
 * a few hundred file versions (signing each alone cost more than indexing it), and a
 * damaged record still names a small group of entries.
 */
export const RECORD_TARGET_BYTES = 64 * 1024;

/**
 * Consecutive entries grouped into records: each record's plaintext stays within
 * RECORD_TARGET_BYTES, except a record holding one larger entry alone.
 */
export function groupIntoRecords(entries: readonly PreparedEntry[]): PreparedEntry[][] {
  const records: PreparedEntry[][] = [];
  let current: PreparedEntry[] = [];
  // The array's brackets, and a comma after each entry but the last.
  let bytes = 1;
  for (const entry of entries) {
    const size = Buffer.byteLength(entry.json) + 1;
    if (current.length > 0 && bytes + size > RECORD_TARGET_BYTES) {
      records.push(current);
      current = [];
      bytes = 1;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) records.push(current);
  return records;
}

/** A record's plaintext: its one entry's JSON object, or a JSON array of its entries. */
export function recordPlaintext(entries: readonly PreparedEntry[]): Buffer {
  if (entries.length === 1) return Buffer.from(entries[0]!.json, 'utf8');
  return Buffer.from(`[${entries.map((e) => e.json).join(',')}]`, 'utf8');
}

/**
 * The entries of a decrypted record with each one's JSON text. Throws when the
 * plaintext is not JSON or is an empty array; entries are checked by the caller.
 */
export function recordEntries(plaintext: Buffer): Array<{ payload: unknown; json: string }> {
  const text = plaintext.toString('utf8');
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) return [{ payload: parsed, json: text }];
  if (parsed.length === 0) throw new Error('an empty list of entries');
  // Re-serialising gives back the text append() wrote: it came from JSON.stringify too.
  return parsed.map((payload) => ({ payload, json: JSON.stringify(payload) }));
}

function splitObject(payload: ObjectPayload): PreparedEntry[] {
  const { contents, ...fields } = payload;
  const chunks: ContentRange[][] = [];
  // Every record is its fields plus `"contents":[...]`; count each range's JSON and comma.
  const emptyBytes = (head: object) => Buffer.byteLength(JSON.stringify({ ...head, contents: [] }));
  let budget = MAX_PAYLOAD_BYTES - emptyBytes(fields);
  const continuationBudget = MAX_PAYLOAD_BYTES - emptyBytes({ k: 'contents', id: payload.id, time: payload.time });
  let chunk: ContentRange[] = [];
  let used = 0;
  for (const range of contents) {
    const size = Buffer.byteLength(JSON.stringify(range));
    if (chunk.length > 0 && used + 1 + size > budget) {
      chunks.push(chunk);
      chunk = [];
      used = 0;
      budget = continuationBudget;
    }
    used += (chunk.length > 0 ? 1 : 0) + size;
    chunk.push(range);
  }
  chunks.push(chunk);
  return chunks.map((ranges, i) => {
    const part: ObjectPayload | ContentsPayload = i === 0
      ? { ...payload, contents: ranges }
      : { k: 'contents', id: payload.id, contents: ranges, time: payload.time };
    return { payload: part, json: JSON.stringify(part) };
  });
}
