// The owner's catalog: an append-only, encrypted, signed log of what was backed up
// and where it is, in LevelDB, with indexes derived from the log. Every append,
// import step and rebuild step writes log records, index changes, head and counters
// in ONE LevelDB batch, so a crash at any moment leaves them consistent.
// Format, key layouts and the crash-safety argument: docs/catalog-format.md.
import type { KeyObject } from 'node:crypto';
import { Level } from 'level';
import { decodeFsName, pathSortKey } from '../paths.ts';
import {
  CatalogChainError, ZERO_HASH, decodeEnvelope, decryptEnvelope, encodeEnvelope, envelopeHash, verifyEnvelopeAppend,
  type ChainHead,
} from './envelope.ts';
import {
  IndexBatch, emptyStats, readRanges, scan, scanBatches, scanValues, type BatchOp, type CatalogDb, type IndexInput, type IndexedStats,
} from './indexer.ts';
import { decodeLatest } from './latest-value.ts';
import { clockFlags, lastRecordAt, type ClockFlag, type ClockStats } from './timeline.ts';
import {
  INDEX_SPACES, META, SPACE, contentPrefix, documentKey, decodeLivePathKey, escapePathKey, hashKey, historyPathPrefix, historySeq, HISTORY_SUFFIX_BYTES,
  latestKey, latestPrefix, logKey, objectKey, pathOfLatestKey, placementPrefix, prefixEnd, readU64, seqOfLogKey, sourcePart, writeU64,
} from './layout.ts';
import {
  groupIntoRecords, payloadProblem, prepareEntries, recordEntries, recordPlaintext,
  type CatalogPayload, type DeleteRecord, type FileRecord, type ObjectRecord, type ObjectSummary, type PlacementRecord, type RunPayload, type HomePayload,
} from './payloads.ts';

export * from './envelope.ts';
export type * from './payloads.ts';
export type { ByteCount, IndexedStats } from './indexer.ts';
export type { ClockFlag, ClockStats, DatedRecord } from './timeline.ts';

export interface CatalogKeys {
  catalogKey: Buffer;
  signingKey: KeyObject;
  ed25519Public: Buffer;
}

export interface SnapshotFilter {
  source?: string;
  /** A path or a folder: `photos/2024` matches `photos/2024/a.jpg`, not `photos/20245`. */
  prefix?: string;
}

export interface ContentLocation {
  object: ObjectSummary;
  offset: number;
  length: number;
  placements: PlacementRecord[];
}

export interface UnpackedContent {
  hash: string;
  size: number;
  /** One live version with this content, to read the bytes from. */
  source: string;
  path: string;
  /** That version's record. */
  file: FileRecord;
}

export interface CatalogStats extends IndexedStats {
  /** Records in the log. */
  records: number;
}

/** One backup run as its records tell it; no `end` means it was cut off (or still runs). */
export interface RunSummary {
  run: string;
  start?: RunPayload;
  end?: RunPayload;
}

export interface VerifyResult {
  ok: boolean;
  /** Records that passed every check before the first failure (all of them when ok). */
  records: number;
  error?: { seq: number; reason: string };
}

/** Bump when an index layout changes: open() then rebuilds the indexes from the log. */
const INDEX_FORMAT = '5';
/** Live paths read at a time by unpacked(), and its versions fetched per getMany. */
const PATH_WINDOW = 256;
/** Entries per LevelDB batch when importing or rebuilding (whole records each time). */
const CHUNK_ENTRIES = 1000;

export class Catalog {
  private readonly db: CatalogDb;
  private readonly keys: CatalogKeys;
  private currentHead: ChainHead;
  private indexedStats: IndexedStats;
  /** Writers run one at a time; readers use LevelDB's snapshots and need no turn. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(db: CatalogDb, keys: CatalogKeys, head: ChainHead, stats: IndexedStats) {
    this.db = db;
    this.keys = keys;
    this.currentHead = head;
    this.indexedStats = stats;
  }

  static async open(dir: string, keys: CatalogKeys): Promise<Catalog> {
    const db: CatalogDb = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
      throw new Error(locked
        ? `catalog at ${dir} is in use by another Hearth process: stop it first`
        : `cannot open the catalog at ${dir}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const [head, stats, owner, format, rebuilding] = await db.getMany([META.head, META.stats, META.owner, META.indexFormat, META.rebuilding]);
      if (owner && !owner.equals(keys.ed25519Public)) {
        throw new Error(`catalog at ${dir} belongs to another identity (owner key ${owner.toString('hex').slice(0, 16)}…): open it with that home's recovery phrase`);
      }
      if (!owner) await db.put(META.owner, keys.ed25519Public, { sync: true });
      const catalog = new Catalog(db, keys, head ? decodeHead(head) : { seq: 0, hash: ZERO_HASH },
        stats ? (JSON.parse(stats.toString('utf8')) as IndexedStats) : emptyStats());
      if (rebuilding || format?.toString('latin1') !== INDEX_FORMAT) await catalog.rebuild();
      return catalog;
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.queue;
    await this.db.close();
  }

  head(): ChainHead {
    return { ...this.currentHead };
  }

  /**
   * Sign, encrypt and store the payloads as the next records, indexes included, in
   * one batch. Each payload is a record of its own unless `group` is set: then
   * consecutive payloads share records (groupIntoRecords), one signature each, which
   * is what makes recording thousands of file versions cheap.
   */
  append(payloads: readonly CatalogPayload[], options: { group?: boolean } = {}): Promise<void> {
    return this.exclusive(async () => {
      if (payloads.length === 0) return;
      const inputs: IndexInput[] = [];
      const log: BatchOp[] = [];
      let head = this.currentHead;
      const prepared = prepareEntries(payloads);
      for (const entries of options.group ? groupIntoRecords(prepared) : prepared.map((e) => [e])) {
        const seq = head.seq + 1;
        const bytes = encodeEnvelope(seq, head.hash, recordPlaintext(entries), this.keys);
        entries.forEach((e, entry) => inputs.push({ seq, entry, payload: e.payload, json: e.json }));
        log.push({ type: 'put', key: logKey(seq), value: bytes });
        head = { seq, hash: envelopeHash(bytes) };
      }
      await this.commit(inputs, log, head);
    });
  }

  /** Stored records from `fromSeq` on, for pushing to hosts. */
  async *envelopes(fromSeq = 1): AsyncIterable<{ seq: number; bytes: Buffer }> {
    for await (const [key, bytes] of scan(this.db, logKey(Math.max(1, fromSeq)), Buffer.of(SPACE.log + 1))) {
      yield { seq: seqOfLogKey(key), bytes };
    }
  }

  /**
   * Take in records pulled back from a host or the cloud (a recovering owner). Each must
   * extend the chain, carry the owner's signature and decrypt with the catalog key.
   * Records this catalog already holds are skipped if identical, so a pull can resume.
   */
  importEnvelopes(source: AsyncIterable<Uint8Array | { bytes: Uint8Array }> | Iterable<Uint8Array | { bytes: Uint8Array }>): Promise<ChainHead> {
    return this.exclusive(async () => {
      let head = this.currentHead;
      let inputs: IndexInput[] = [];
      let log: BatchOp[] = [];
      for await (const item of source) {
        const bytes = Buffer.from('bytes' in item ? item.bytes : item);
        const envelope = decodeEnvelope(bytes);
        if (envelope.seq <= head.seq) {
          await this.checkHeld(envelope.seq, bytes);
          continue;
        }
        head = verifyEnvelopeAppend(this.keys.ed25519Public, head, bytes);
        inputs.push(...this.openRecord(bytes));
        log.push({ type: 'put', key: logKey(envelope.seq), value: bytes });
        if (inputs.length >= CHUNK_ENTRIES) {
          await this.commit(inputs, log, head);
          inputs = [];
          log = [];
        }
      }
      if (inputs.length > 0) await this.commit(inputs, log, head);
      return { ...this.currentHead };
    });
  }

  /** Every check a host makes, over the whole log, plus decryption; names the first bad record. */
  verify(): Promise<VerifyResult> {
    return this.exclusive(async () => {
      let chain: ChainHead = { seq: 0, hash: ZERO_HASH };
      const fail = (seq: number, reason: string): VerifyResult => ({ ok: false, records: chain.seq, error: { seq, reason } });
      for await (const [key, bytes] of scan(this.db, logKey(0), Buffer.of(SPACE.log + 1))) {
        const seq = chain.seq + 1;
        const storedAs = seqOfLogKey(key);
        if (storedAs !== seq) return fail(seq, `record ${seq} is missing: the log jumps from ${chain.seq} to ${storedAs}`);
        try {
          const envelope = decodeEnvelope(bytes);
          if (envelope.seq !== seq) return fail(seq, `the record stored as ${seq} says it is record ${envelope.seq}: records were moved`);
          const next = verifyEnvelopeAppend(this.keys.ed25519Public, chain, bytes);
          this.openRecord(bytes);
          chain = next;
        } catch (err) {
          return fail(seq, (err as Error).message);
        }
      }
      const head = this.currentHead;
      if (chain.seq < head.seq) return fail(chain.seq + 1, `record ${chain.seq + 1} is missing: the log ends at ${chain.seq} but its head is ${head.seq}`);
      if (chain.seq > head.seq) return fail(head.seq + 1, `record ${head.seq + 1} lies beyond the log's head ${head.seq}`);
      if (chain.hash !== head.hash) return fail(head.seq, `record ${head.seq} is not the one the head names (hash differs)`);
      return { ok: true, records: chain.seq };
    });
  }

  /** Drop every index and derive it again from the log, in batches. */
  rebuild(): Promise<void> {
    return this.exclusive(async () => {
      // The marker survives a crash mid-rebuild, and open() then starts over.
      await this.db.put(META.rebuilding, Buffer.alloc(0), { sync: true });
      for (const space of INDEX_SPACES) await this.db.clear({ gte: Buffer.of(space), lt: Buffer.of(space + 1) });
      this.indexedStats = emptyStats();
      let inputs: IndexInput[] = [];
      for await (const bytes of scanValues(this.db, logKey(0), Buffer.of(SPACE.log + 1))) {
        inputs.push(...this.openRecord(bytes));
        if (inputs.length >= CHUNK_ENTRIES) {
          await this.commit(inputs, [], this.currentHead);
          inputs = [];
        }
      }
      await this.commit(inputs, [
        { type: 'del', key: META.rebuilding },
        { type: 'put', key: META.indexFormat, value: Buffer.from(INDEX_FORMAT, 'latin1') },
      ], this.currentHead);
    });
  }

  /** The current version of every existing path of a source, in pathSortKey order. */
  async *latest(source: string): AsyncIterable<FileRecord> {
    for await (const batch of this.latestBatches(source)) yield* batch;
  }

  /** latest() a batch at a time: for a caller that goes through a whole library, one await per batch instead of per path. */
  async *latestBatches(source: string): AsyncIterable<FileRecord[]> {
    const prefix = latestPrefix(source);
    for await (const batch of scanBatches(this.db, prefix, prefixEnd(prefix))) {
      yield batch.map(([key, value]) => decodeLatest(value, source, pathOfLatestKey(key, prefix.length)));
    }
  }

  /** Whether any path of the source exists now (its latest() is not empty). */
  async hasCurrent(source: string): Promise<boolean> {
    const prefix = latestPrefix(source);
    return (await this.db.keys({ gte: prefix, lt: prefixEnd(prefix), limit: 1 }).all()).length > 0;
  }

  /** The current version of one path, if it exists. */
  async current(source: string, path: string): Promise<FileRecord | undefined> {
    const value = await this.db.get(latestKey(sourcePart(source), path));
    return value && decodeLatest(value, source, path);
  }

  /**
   * Every path whose bytes the backup holds, as of the log's end, or with `at` as of
   * the last record dated at or before `at` (docs/catalog-format.md, "Which version"):
   * each path's last event in log order up to there, unless it is a deletion. A
   * version whose bytes no object holds (recorded, not yet or never stored) is not
   * restorable: the path's previous version stands in for it. Ordered by source, then
   * pathSortKey.
   */
  async *snapshot(at?: number, filter: SnapshotFilter = {}): AsyncIterable<FileRecord> {
    const end = at === undefined ? Infinity : await lastRecordAt(this.db, at);
    if (end === 0) return;
    const sources = filter.source !== undefined ? [filter.source] : await this.sources();
    const prefix = filter.prefix?.replace(/\/+$/, '') || undefined;
    for (const source of sources) {
      const base = Buffer.concat([Buffer.of(SPACE.history), sourcePart(source)]);
      let gte = base;
      let lt = prefixEnd(base);
      if (prefix !== undefined) {
        // The path itself ends in the 00 terminator; its descendants continue with
        // 01 01 (an escaped '/'); no other path sorts between.
        const escaped = Buffer.concat([base, escapePathKey(pathSortKey(prefix))]);
        gte = Buffer.concat([escaped, Buffer.of(0)]);
        lt = Buffer.concat([escaped, Buffer.of(1, 2)]);
      }
      let path: Buffer | undefined;
      let window: Buffer[][] = [];
      for await (const [key, value] of scan(this.db, gte, lt)) {
        const keyPath = key.subarray(0, key.length - HISTORY_SUFFIX_BYTES);
        if (!path || !keyPath.equals(path)) {
          if (window.length >= PATH_WINDOW) {
            yield* await this.visibleVersions(window);
            window = [];
          }
          path = keyPath;
          window.push([]);
        }
        if (historySeq(key) <= end) window.at(-1)!.push(value);
      }
      yield* await this.visibleVersions(window);
    }
  }

  /** For each path's events (log order), its last event if that is a restorable version, else its previous one, and so on. */
  private async visibleVersions(paths: Buffer[][]): Promise<FileRecord[]> {
    const chosen: Array<FileRecord | undefined> = [];
    const left = paths.map((events) => events.length);
    const held = new Map<string, boolean>();
    let open = paths.map((_, i) => i);
    while (open.length > 0) {
      const candidates = open.map((i) => (left[i]! > 0 ? parseJson<FileRecord | DeleteRecord>(paths[i]![--left[i]!]!) : undefined));
      const unknown = [...new Set(candidates.flatMap((c) => (c?.k === 'file' && c.type === 'file' && c.hash && !held.has(c.hash) ? [c.hash] : [])))];
      const counts = unknown.length > 0 ? await this.db.getMany(unknown.map((h) => hashKey(SPACE.held, Buffer.from(h, 'hex')))) : [];
      unknown.forEach((hash, i) => held.set(hash, counts[i] !== undefined));
      const next: number[] = [];
      open.forEach((i, n) => {
        const event = candidates[n];
        if (event?.k === 'file' && event.type === 'file' && !(event.hash && held.get(event.hash))) next.push(i);
        else chosen[i] = event?.k === 'file' ? event : undefined;
      });
      open = next;
    }
    return chosen.filter((r) => r !== undefined);
  }

  /** Every version and deletion of one path, in log order, stored or not. */
  async history(source: string, path: string): Promise<Array<FileRecord | DeleteRecord>> {
    const prefix = historyPathPrefix(sourcePart(source), path);
    const out: Array<FileRecord | DeleteRecord> = [];
    for await (const value of scanValues(this.db, Buffer.concat([prefix, Buffer.of(0)]), Buffer.concat([prefix, Buffer.of(1)]))) {
      out.push(parseJson<FileRecord | DeleteRecord>(value));
    }
    return out;
  }

  async sources(): Promise<string[]> {
    const out: string[] = [];
    const keys = this.db.keys({ gte: Buffer.of(SPACE.source), lt: Buffer.of(SPACE.source + 1) });
    for await (const key of keys) out.push(decodeFsName(key.subarray(1)));
    return out;
  }

  async object(id: string): Promise<ObjectRecord | undefined> {
    const stored = await this.db.get(objectKey(id));
    if (!stored) return undefined;
    const { entries, ...record } = parseJson<ObjectSummary>(stored);
    const contents = await readRanges(this.db, id);
    if (contents.length !== entries) throw new Error(`catalog index damaged: object ${id} lists ${contents.length} of ${entries} ranges; run rebuild`);
    return { ...record, contents };
  }

  /** Objects in use (not retired) with their placements. */
  async *objects(): AsyncIterable<ObjectSummary & { placements: PlacementRecord[] }> {
    // Both keyspaces sort by the same length-prefixed id, so one pass over each pairs them.
    const placements = scan(this.db, Buffer.of(SPACE.placement), Buffer.of(SPACE.placement + 1));
    try {
      let next = await placements.next();
      for await (const [key, value] of scan(this.db, Buffer.of(SPACE.object), Buffer.of(SPACE.object + 1))) {
        const id = key.subarray(1);
        const found: PlacementRecord[] = [];
        while (!next.done) {
          const [placementKey, placement] = next.value;
          const order = Buffer.compare(placementKey.subarray(1, 2 + placementKey[1]!), id);
          if (order > 0) break;
          if (order === 0) found.push(placementRecord(placement));
          next = await placements.next();
        }
        yield { ...parseJson<ObjectSummary>(value), placements: found };
      }
    } finally {
      await placements.return(undefined);
    }
  }

  async placements(id: string): Promise<PlacementRecord[]> {
    const prefix = placementPrefix(id);
    const out: PlacementRecord[] = [];
    for await (const value of scanValues(this.db, prefix, prefixEnd(prefix))) out.push(placementRecord(value));
    return out;
  }

  /** Where a content's bytes are: each object holding it, the byte range, and its placements. */
  async locate(hash: string): Promise<ContentLocation[]> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`content hash must be 64 lowercase hex characters, got '${hash}'`);
    const prefix = contentPrefix(Buffer.from(hash, 'hex'));
    const ranges: Array<{ id: string; offset: number; length: number }> = [];
    for await (const [key, value] of scan(this.db, prefix, prefixEnd(prefix))) {
      const idLength = key[prefix.length]!;
      const id = key.toString('utf8', prefix.length + 1, prefix.length + 1 + idLength);
      ranges.push({ id, offset: readU64(value, 0), length: readU64(value, 8) });
    }
    const objects = await this.db.getMany(ranges.map((range) => objectKey(range.id)));
    const out: ContentLocation[] = [];
    for (const [i, range] of ranges.entries()) {
      out.push({ object: parseJson<ObjectSummary>(objects[i]!), offset: range.offset, length: range.length, placements: await this.placements(range.id) });
    }
    return out;
  }

  /**
   * Content of live versions that no volume holds yet, the packer's work list, each
   * with one live version (source, path, and its record) whose file has those bytes.
   */
  async *unpacked(): AsyncIterable<UnpackedContent> {
    // `u` and `r` both sort by hash, so one forward pass over each pairs them; `r` is
    // read a window at a time and sought only when the next hash lies beyond the window,
    // which is rare when most content is unpacked and cheap when little is.
    const paths = this.db.keys({ gte: Buffer.of(SPACE.livePaths), lt: Buffer.of(SPACE.livePaths + 1) });
    let window: Buffer[] = [];
    let at = 0;
    let found: Array<Omit<UnpackedContent, 'file'>> = [];
    const withVersions = async (): Promise<UnpackedContent[]> => {
      const versions = await this.db.getMany(found.map((u) => latestKey(sourcePart(u.source), u.path)));
      const out = found.map((u, i) => {
        const version = versions[i];
        if (!version) throw new Error(`catalog index damaged: live path ${u.source}/${u.path} has no current version; run rebuild`);
        return { ...u, file: decodeLatest(version, u.source, u.path) };
      });
      found = [];
      return out;
    };
    try {
      for await (const [key, value] of scan(this.db, Buffer.of(SPACE.unpacked), Buffer.of(SPACE.unpacked + 1))) {
        const prefix = Buffer.concat([Buffer.of(SPACE.livePaths), key.subarray(1)]);
        while (at < window.length && Buffer.compare(window[at]!, prefix) < 0) at++;
        if (at === window.length) {
          paths.seek(prefix);
          window = await paths.nextv(PATH_WINDOW);
          at = 0;
        }
        const pathKey = window[at];
        if (!pathKey || !pathKey.subarray(0, prefix.length).equals(prefix)) {
          throw new Error(`catalog index damaged: unpacked content ${key.toString('hex', 1)} has no live path; run rebuild`);
        }
        found.push({ hash: key.toString('hex', 1), size: readU64(value, 0), ...decodeLivePathKey(pathKey) });
        if (found.length >= PATH_WINDOW) yield* await withVersions();
      }
      if (found.length > 0) yield* await withVersions();
    } finally {
      await paths.close();
    }
  }

  /** Records dated in the future (timeline.ts), with the counters behind them. */
  clock(now: number = Date.now()): ClockStats & { flagged: ClockFlag[] } {
    return { ...structuredClone(this.indexedStats.clock), flagged: clockFlags(this.indexedStats.clock, now) };
  }

  /** The latest `home` record: the home's settings and family as last backed up. */
  async home(): Promise<HomePayload | undefined> {
    const value = await this.db.get(documentKey('home'));
    return value && parseJson<HomePayload>(value);
  }

  /** Every backup run, oldest first: its start record and, once it ended, its end record. */
  async runs(): Promise<RunSummary[]> {
    const byRun = new Map<string, RunSummary>();
    for await (const [key, value] of scan(this.db, Buffer.of(SPACE.run), Buffer.of(SPACE.run + 1))) {
      const id = key.toString('utf8', 1, key.length - 1);
      const payload = parseJson<RunPayload>(value);
      const run = byRun.get(id) ?? { run: id };
      if (payload.phase === 'start') run.start = payload;
      else run.end = payload;
      byRun.set(id, run);
    }
    const time = (r: RunSummary) => r.start?.time ?? r.end!.time;
    return [...byRun.values()].sort((a, b) => time(a) - time(b));
  }

  stats(): CatalogStats {
    return { ...structuredClone(this.indexedStats), records: this.currentHead.seq };
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Index `inputs` and write them with `extra` (log records, markers) and the head in one batch. */
  private async commit(inputs: readonly IndexInput[], extra: readonly BatchOp[], head: ChainHead): Promise<void> {
    const batch = new IndexBatch(this.db, this.indexedStats);
    await batch.prepare(inputs);
    for (const input of inputs) batch.apply(input);
    const ops: BatchOp[] = [
      ...extra,
      ...batch.finish(),
      { type: 'put', key: META.head, value: encodeHead(head) },
      { type: 'put', key: META.stats, value: Buffer.from(JSON.stringify(batch.stats), 'utf8') },
    ];
    await this.db.batch(ops, { sync: true });
    this.currentHead = head;
    this.indexedStats = batch.stats;
  }

  /** Decrypt a stored or imported record into what the indexes need, one input per entry. */
  private openRecord(bytes: Buffer): IndexInput[] {
    const envelope = decodeEnvelope(bytes);
    const { seq } = envelope;
    const plaintext = decryptEnvelope(this.keys.catalogKey, envelope);
    let entries: ReturnType<typeof recordEntries>;
    try {
      entries = recordEntries(plaintext);
    } catch {
      throw new Error(`catalog record ${seq} does not hold JSON entries: the log is damaged`);
    }
    return entries.map(({ payload, json }, entry) => {
      const problem = payloadProblem(payload, 'accept');
      if (problem) {
        const which = entries.length > 1 ? ` in entry ${entry + 1} of ${entries.length}` : '';
        throw new Error(`catalog record ${seq} holds a bad payload${which}: ${problem}`);
      }
      return { seq, entry, payload: payload as { k: string }, json };
    });
  }

  private async checkHeld(seq: number, bytes: Buffer): Promise<void> {
    const held = await this.db.get(logKey(seq));
    if (!held?.equals(bytes)) {
      throw new CatalogChainError('fork', seq, `catalog record ${seq} differs from the one this catalog holds: the source serves a forked log; refuse it`);
    }
  }
}

function placementRecord(value: Buffer): PlacementRecord {
  return parseJson<{ record: PlacementRecord }>(value).record;
}

function parseJson<T>(value: Buffer): T {
  return JSON.parse(value.toString('utf8')) as T;
}

function encodeHead(head: ChainHead): Buffer {
  const value = Buffer.allocUnsafe(40);
  writeU64(value, 0, head.seq);
  value.write(head.hash, 8, 'hex');
  return value;
}

function decodeHead(value: Buffer): ChainHead {
  return { seq: readU64(value, 0), hash: value.toString('hex', 8, 40) };
}
