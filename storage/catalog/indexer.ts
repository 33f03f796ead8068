// Turns a run of log records into the index writes they imply, so the caller can put
// records and index changes in ONE LevelDB batch. Reads happen up front in two
// getMany rounds (the keys the payloads name, then the keys those values name);
// applying is then synchronous against an overlay of this batch's own writes.
import type { Level } from 'level';
import { decodeLatest, encodeLatest } from './latest-value.ts';
import type { CatalogPayload, ContentRange, FilePayload, ObjectSummary, PlacementRecord, RunPayload } from './payloads.ts';
import {
  SPACE, contentKey, documentKey, encodeRange, hashKey, historyKey, latestKey, livePathKey, objectContentsKey, objectContentsPrefix,
  objectKey, placementKey, prefixEnd, readU64, runKey, sourceKey, sourcePart, u64Value, writeU64,
} from './layout.ts';
import { extendTimeline, loadTimelineTail, noteClock, recordTimes, type ClockStats, type DatedRecord, type RecordTime } from './timeline.ts';

export type CatalogDb = Level<Buffer, Buffer>;

export interface ByteCount {
  count: number;
  bytes: number;
}

/** Counters kept in the db next to the indexes, updated in the same batch. */
export interface IndexedStats {
  sources: number;
  /** Current versions of paths that exist and are not folders (files and links); bytes counts regular files only. */
  files: ByteCount;
  /** Current versions of paths that exist and are folders. */
  folders: number;
  /** Every file version ever recorded. */
  versions: ByteCount;
  deletes: number;
  objects: { blob: ByteCount & { plainBytes: number }; volume: ByteCount & { plainBytes: number } };
  /** Per target, by name: objects placed there and their encrypted bytes. */
  placements: Array<ByteCount & { target: string }>;
  /** Live content in no volume: what the packer has still to pack. */
  unpacked: ByteCount;
  lastRun?: RunPayload;
  /** How the records' times ran against their order (timeline.ts). */
  clock: ClockStats;
}

export function emptyStats(): IndexedStats {
  return {
    sources: 0,
    files: { count: 0, bytes: 0 },
    folders: 0,
    versions: { count: 0, bytes: 0 },
    deletes: 0,
    objects: { blob: { count: 0, bytes: 0, plainBytes: 0 }, volume: { count: 0, bytes: 0, plainBytes: 0 } },
    placements: [],
    unpacked: { count: 0, bytes: 0 },
    clock: { stepsBack: 0 },
  };
}

export interface IndexInput {
  seq: number;
  /** The payload's place among its record's entries. */
  entry: number;
  payload: CatalogPayload | { k: string };
  /** The payload's JSON as stored in the record. */
  json: string;
}

interface StoredPlacement {
  record: PlacementRecord;
  /** Encrypted bytes counted for the target when placed, so unplace subtracts the same. */
  bytes: number;
}

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

const mapKey = (key: Buffer) => key.toString('latin1');

/** One content's counters, loaded once per batch and written back at its end. */
interface ContentState {
  raw: Buffer;
  /** Live current versions with this content, and its size. */
  live: number;
  size: number;
  /** Ranges in volumes holding it. */
  volumes: number;
  /** Ranges in any object holding it: its bytes are stored. */
  held: number;
  /** Size listed in the unpacked index, if listed. */
  listed: number | undefined;
  changed: boolean;
}

export class IndexBatch {
  readonly stats: IndexedStats;
  private readonly db: CatalogDb;
  private readonly loaded = new Map<string, Buffer | undefined>();
  private readonly writes = new Map<string, BatchOp>();
  /** Full range lists of the objects this batch may retire or replace, kept current as it applies. */
  private readonly rangesOf = new Map<string, ContentRange[]>();
  private readonly contents = new Map<string, ContentState>();
  private records: RecordTime[] = [];
  /** Timeline entries the records may hide (dated at or after the earliest of them). */
  private timelineTail: DatedRecord[] = [];

  constructor(db: CatalogDb, stats: IndexedStats) {
    this.db = db;
    this.stats = structuredClone(stats);
  }

  /** Load every stored value that applying `records` will read. */
  async prepare(records: readonly IndexInput[]): Promise<void> {
    const first: Buffer[] = [];
    const hashes = new Set<string>();
    const rangedIds = new Set<string>();
    for (const { payload: p } of records) {
      const payload = p as CatalogPayload;
      switch (payload.k) {
        case 'file':
        case 'delete':
          first.push(sourceKey(payload.source), latestKey(sourcePart(payload.source), payload.path));
          if (payload.k === 'file' && payload.hash) hashes.add(payload.hash);
          break;
        case 'object':
        case 'contents':
          first.push(objectKey(payload.id));
          for (const range of payload.contents) hashes.add(range.hash);
          if (payload.k === 'object') rangedIds.add(payload.id);
          break;
        case 'retire':
          first.push(objectKey(payload.id));
          rangedIds.add(payload.id);
          break;
        case 'place':
        case 'unplace':
          first.push(objectKey(payload.id), placementKey(payload.id, payload.target));
          break;
      }
    }
    await this.load(first);
    this.records = recordTimes(records);
    const earliest = this.records.reduce((min, r) => Math.min(min, r.time ?? Infinity), Infinity);
    if (earliest !== Infinity) this.timelineTail = await loadTimelineTail(this.db, earliest);

    for (const { payload: p } of records) {
      const payload = p as CatalogPayload;
      if (payload.k !== 'file' && payload.k !== 'delete') continue;
      const previous = this.loaded.get(mapKey(latestKey(sourcePart(payload.source), payload.path)));
      const hash = previous && decodeLatest(previous, payload.source, payload.path).hash;
      if (hash) hashes.add(hash);
    }
    for (const id of rangedIds) {
      const ranges = this.loaded.get(mapKey(objectKey(id))) ? await readRanges(this.db, id) : [];
      this.rangesOf.set(id, ranges);
      for (const range of ranges) hashes.add(range.hash);
    }
    await this.loadContents(hashes);
  }

  apply(record: IndexInput): void {
    const payload = record.payload as CatalogPayload;
    switch (payload.k) {
      case 'file':
        this.applyPathEvent(payload.source, payload.path, record, payload);
        break;
      case 'delete':
        this.applyPathEvent(payload.source, payload.path, record, undefined);
        break;
      case 'object': {
        if (this.getObject(payload.id)) this.unindexObject(payload.id);
        const { contents, ...summary } = payload;
        this.putObject({ ...summary, entries: 0 });
        this.rangesOf.set(payload.id, []);
        this.addRanges(payload.id, contents);
        const counts = this.stats.objects[payload.kind];
        counts.count++;
        counts.bytes += payload.size;
        counts.plainBytes += payload.plainSize;
        break;
      }
      case 'contents':
        if (this.getObject(payload.id)) this.addRanges(payload.id, payload.contents);
        break;
      case 'retire':
        if (this.getObject(payload.id)) this.unindexObject(payload.id);
        break;
      case 'place': {
        this.removePlacement(payload.id, payload.target);
        const bytes = this.getObject(payload.id)?.size ?? 0;
        const stored: StoredPlacement = { record: payload, bytes };
        this.put(placementKey(payload.id, payload.target), Buffer.from(JSON.stringify(stored)));
        let target = this.stats.placements.find((t) => t.target === payload.target);
        if (!target) {
          target = { target: payload.target, count: 0, bytes: 0 };
          this.stats.placements.push(target);
          this.stats.placements.sort((a, b) => (a.target < b.target ? -1 : 1));
        }
        target.count++;
        target.bytes += bytes;
        break;
      }
      case 'unplace':
        this.removePlacement(payload.id, payload.target);
        break;
      case 'run':
        this.stats.lastRun = payload;
        this.put(runKey(payload.run, payload.phase), Buffer.from(record.json, 'utf8'));
        break;
      case 'home':
        this.put(documentKey('home'), Buffer.from(record.json, 'utf8'));
        break;
      // Kinds from a newer Hearth: kept in the log, not indexed.
    }
  }

  /** Every write this batch implies, unpacked-index updates included. */
  finish(): BatchOp[] {
    for (const state of this.contents.values()) if (state.changed) this.storeContent(state);
    extendTimeline(this.timelineTail, this.records, (op) => this.writes.set(mapKey(op.key), op));
    noteClock(this.stats.clock, this.records);
    return [...this.writes.values()];
  }

  private async load(keys: Buffer[]): Promise<void> {
    const wanted = new Map<string, Buffer>();
    for (const key of keys) {
      const k = mapKey(key);
      if (!this.loaded.has(k) && !this.writes.has(k)) wanted.set(k, key);
    }
    if (wanted.size === 0) return;
    const values = await this.db.getMany([...wanted.values()]);
    let i = 0;
    for (const k of wanted.keys()) this.loaded.set(k, values[i++]);
  }

  private async loadContents(hashes: Set<string>): Promise<void> {
    const wanted = [...hashes].filter((hash) => !this.contents.has(hash));
    const keys: Buffer[] = [];
    const raws = wanted.map((hash) => {
      const raw = Buffer.from(hash, 'hex');
      keys.push(hashKey(SPACE.liveRefs, raw), hashKey(SPACE.volumeRefs, raw), hashKey(SPACE.unpacked, raw), hashKey(SPACE.held, raw));
      return raw;
    });
    const values = keys.length > 0 ? await this.db.getMany(keys) : [];
    wanted.forEach((hash, i) => {
      const [live, volumes, listed, held] = values.slice(4 * i, 4 * i + 4);
      this.contents.set(hash, {
        raw: raws[i]!,
        live: live ? live.readUInt32BE(0) : 0,
        size: live ? readU64(live, 4) : 0,
        volumes: volumes ? volumes.readUInt32BE(0) : 0,
        held: held ? held.readUInt32BE(0) : 0,
        listed: listed && readU64(listed, 0),
        changed: false,
      });
    });
  }

  private content(hash: string): ContentState {
    const state = this.contents.get(hash);
    if (!state) throw new Error(`catalog index bug: content ${hash} used without being loaded`);
    state.changed = true;
    return state;
  }

  /** Write one content's counters; it is unpacked when a live version uses it and no volume holds it. */
  private storeContent(state: ContentState): void {
    const { raw } = state;
    if (state.live > 0) {
      const value = Buffer.allocUnsafe(12);
      value.writeUInt32BE(state.live, 0);
      writeU64(value, 4, state.size);
      this.put(hashKey(SPACE.liveRefs, raw), value);
    } else {
      this.del(hashKey(SPACE.liveRefs, raw));
    }
    if (state.volumes > 0) {
      const value = Buffer.allocUnsafe(4);
      value.writeUInt32BE(state.volumes);
      this.put(hashKey(SPACE.volumeRefs, raw), value);
    } else {
      this.del(hashKey(SPACE.volumeRefs, raw));
    }
    if (state.held > 0) {
      const value = Buffer.allocUnsafe(4);
      value.writeUInt32BE(state.held);
      this.put(hashKey(SPACE.held, raw), value);
    } else {
      this.del(hashKey(SPACE.held, raw));
    }
    const unpacked = state.live > 0 && state.volumes === 0;
    if (unpacked && state.listed === undefined) {
      this.put(hashKey(SPACE.unpacked, raw), u64Value(state.size));
      this.stats.unpacked.count++;
      this.stats.unpacked.bytes += state.size;
    } else if (!unpacked && state.listed !== undefined) {
      this.del(hashKey(SPACE.unpacked, raw));
      this.stats.unpacked.count--;
      this.stats.unpacked.bytes -= state.listed;
    }
  }

  private get(key: Buffer): Buffer | undefined {
    const k = mapKey(key);
    const written = this.writes.get(k);
    if (written) return written.type === 'put' ? written.value : undefined;
    if (!this.loaded.has(k)) throw new Error(`catalog index bug: key ${key.toString('hex')} read without being loaded`);
    return this.loaded.get(k);
  }

  private put(key: Buffer, value: Buffer): void {
    this.writes.set(mapKey(key), { type: 'put', key, value });
  }

  private del(key: Buffer): void {
    this.writes.set(mapKey(key), { type: 'del', key });
  }

  /** A new version (file) or a deletion (no file) of one path. */
  private applyPathEvent(source: string, path: string, record: IndexInput, file: FilePayload | undefined): void {
    const src = sourcePart(source);
    const sKey = sourceKey(source);
    if (!this.get(sKey)) {
      this.put(sKey, Buffer.alloc(0));
      this.stats.sources++;
    }
    this.put(historyKey(src, path, record.seq, record.entry), Buffer.from(record.json, 'utf8'));
    const lKey = latestKey(src, path);
    const previous = this.get(lKey);
    if (previous) {
      const old = decodeLatest(previous, source, path);
      if (old.type === 'dir') this.stats.folders--;
      else this.stats.files.count--;
      if (old.type === 'file') this.stats.files.bytes -= old.size;
      if (old.hash) this.addLiveRef(old.hash, -1, old.size, src, path);
    }
    if (!file) {
      if (previous) this.del(lKey);
      this.stats.deletes++;
      return;
    }
    this.put(lKey, encodeLatest(file, record.json));
    const bytes = file.type === 'file' ? file.size : 0;
    if (file.type === 'dir') this.stats.folders++;
    else this.stats.files.count++;
    this.stats.files.bytes += bytes;
    this.stats.versions.count++;
    this.stats.versions.bytes += bytes;
    if (file.hash) this.addLiveRef(file.hash, 1, file.size, src, path);
  }

  private addLiveRef(hash: string, delta: 1 | -1, size: number, sourceBytes: Buffer, path: string): void {
    const state = this.content(hash);
    if (delta > 0) this.put(livePathKey(state.raw, sourceBytes, path), Buffer.alloc(0));
    else this.del(livePathKey(state.raw, sourceBytes, path));
    state.live += delta;
    state.size = size;
  }

  private getObject(id: string): ObjectSummary | undefined {
    const stored = this.get(objectKey(id));
    return stored && (JSON.parse(stored.toString('utf8')) as ObjectSummary);
  }

  private putObject(object: ObjectSummary): void {
    this.put(objectKey(object.id), Buffer.from(JSON.stringify(object), 'utf8'));
  }

  private addRanges(id: string, ranges: readonly ContentRange[]): void {
    const object = this.getObject(id)!;
    const tracked = this.rangesOf.get(id);
    for (const range of ranges) {
      const index = object.entries++;
      const hash = Buffer.from(range.hash, 'hex');
      this.put(objectContentsKey(id, index), encodeRange(range.offset, range.length, hash));
      this.put(contentKey(hash, id, index), encodeRange(range.offset, range.length));
      const content = this.content(range.hash);
      content.held++;
      if (object.kind === 'volume') content.volumes++;
      tracked?.push(range);
    }
    this.putObject(object);
  }

  private unindexObject(id: string): void {
    const object = this.getObject(id)!;
    const ranges = this.rangesOf.get(id);
    if (!ranges) throw new Error(`catalog index bug: ranges of object ${id} were not loaded`);
    ranges.forEach((range, index) => {
      this.del(objectContentsKey(id, index));
      this.del(contentKey(Buffer.from(range.hash, 'hex'), id, index));
      const content = this.content(range.hash);
      content.held--;
      if (object.kind === 'volume') content.volumes--;
    });
    this.rangesOf.set(id, []);
    this.del(objectKey(id));
    const counts = this.stats.objects[object.kind];
    counts.count--;
    counts.bytes -= object.size;
    counts.plainBytes -= object.plainSize;
  }

  private removePlacement(id: string, target: string): void {
    const key = placementKey(id, target);
    const stored = this.get(key);
    if (!stored) return;
    const { bytes } = JSON.parse(stored.toString('utf8')) as StoredPlacement;
    this.del(key);
    const counts = this.stats.placements.find((t) => t.target === target)!;
    counts.count--;
    counts.bytes -= bytes;
    if (counts.count === 0) this.stats.placements = this.stats.placements.filter((t) => t !== counts);
  }
}

export async function readRanges(db: CatalogDb, id: string): Promise<ContentRange[]> {
  const prefix = objectContentsPrefix(id);
  const ranges: ContentRange[] = [];
  for await (const value of scanValues(db, prefix, prefixEnd(prefix))) {
    ranges.push({ hash: value.toString('hex', 0, 32), offset: readU64(value, 32), length: readU64(value, 40) });
  }
  return ranges;
}

/**
 * Entries of a key range, fetched in batches rather than one await per key; the
 * next batch is read (on LevelDB's thread) while the caller works through this one.
 */
export function scan(db: CatalogDb, gte: Buffer, lt: Buffer): AsyncGenerator<[Buffer, Buffer]> {
  return flatten(scanBatches(db, gte, lt));
}

/** scan() a batch at a time, for callers that go through many entries. */
export function scanBatches(db: CatalogDb, gte: Buffer, lt: Buffer): AsyncGenerator<Array<[Buffer, Buffer]>> {
  return batchesAhead(db.iterator({ gte, lt }));
}

export function scanValues(db: CatalogDb, gte: Buffer, lt: Buffer): AsyncGenerator<Buffer> {
  return flatten(batchesAhead(db.values({ gte, lt })));
}

async function* flatten<T>(batches: AsyncGenerator<T[]>): AsyncGenerator<T> {
  for await (const batch of batches) yield* batch;
}

async function* batchesAhead<T>(iterator: { nextv(size: number): Promise<T[]>; close(): Promise<void> }): AsyncGenerator<T[]> {
  let next: Promise<T[]> | undefined = iterator.nextv(SCAN_BATCH);
  try {
    for (;;) {
      const batch = await next;
      next = undefined;
      if (batch.length === 0) return;
      next = iterator.nextv(SCAN_BATCH);
      yield batch;
    }
  } finally {
    // A caller that stops early leaves a read in flight; it must settle before the iterator closes.
    await next?.catch(() => undefined);
    await iterator.close();
  }
}

const SCAN_BATCH = 1000;
