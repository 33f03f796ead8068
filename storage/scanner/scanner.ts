// The source scanner: a depth-first walk whose children are visited in raw byte
// order (walk.ts, on a thread of its own unless told otherwise), merge-joined with
// the catalog's previous state of the source (listed in the same pathSortKey
// order), so memory holds the directory stack, a few batches of the walk and a
// bounded window of files being hashed, never the whole library. Files whose metadata matches the previous
// state are not read; new and changed files are hashed on a worker pool, and a
// reorder window keeps events in path order.
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { Worker } from 'node:worker_threads';
import { displayPath, encodeFsName, pathSortKey } from '../paths.ts';
import { workerStartOptions } from '../objects/worker-options.ts';
import { HashError, HashPool } from './hash-pool.ts';
import { EntryCode, FIELDS, type WalkError, type WalkMessage, type WalkStart } from './walk-messages.ts';
import { walkBatches } from './walk.ts';

export { DEFAULT_IGNORES } from './ignore.ts';

export type EntryType = 'file' | 'symlink' | 'dir';

/** The catalog's current state of one path of the source. */
export interface PreviousFile {
  path: string;
  type: EntryType;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  mode: number;
  hash?: string;
  target?: string;
}

export interface ScannedFile {
  /** Relative to the source root, '/'-separated, non-UTF-8 bytes as lone surrogates (storage/paths.ts). */
  path: string;
  type: EntryType;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** SHA-256 of the content, hex; regular files only. */
  hash?: string;
  /** Symlinks only, never followed. */
  target?: string;
  /** Hard links: the earlier path of this scan with the same dev and inode, whose hash this entry shares. */
  linkOf?: string;
}

export type ScanEvent =
  | { kind: 'new' | 'changed' | 'unchanged'; entry: ScannedFile }
  | { kind: 'deleted'; path: string }
  | { kind: 'error'; path: string; error: string };

export interface ScanProgress {
  /** Regular files and symlinks seen so far. */
  files: number;
  /** Total size of the regular files seen so far. */
  bytes: number;
  /** Bytes read to hash new and changed files. */
  hashedBytes: number;
}

export interface ScanOptions {
  root: string;
  /**
   * The catalog's state of this source, ordered by pathSortKey(path): entries, or
   * batches of consecutive entries (cheaper: one await per batch, not per entry).
   */
  previous: AsyncIterable<PreviousFile | readonly PreviousFile[]>;
  /** Patterns for storage/scanner/ignore.ts; pass DEFAULT_IGNORES plus the user's. */
  ignore?: readonly string[];
  /** Worker threads hashing at once; default: the number of cores. */
  hashConcurrency?: number;
  /** Called after every event with the running totals (one object, updated in place); the caller throttles its display. */
  onProgress?: (progress: ScanProgress) => void;
  /** Called with a file's path just before it is read for hashing. */
  onHashStart?: (path: string) => void | Promise<void>;
  /**
   * False reads no file: new and changed files come without `hash` (and without
   * `linkOf`), for reports that only compare metadata (node/drift.ts). Default true.
   */
  hash?: boolean;
  /**
   * Whether the walk (readdir, lstat) runs on a thread of its own, ahead of the
   * scan; default true. A quick consumer (a no-change scan only compares metadata)
   * then overlaps with it. One that takes far longer per entry (a first backup reads,
   * encrypts and records every file) gains nothing from that, while the thread's
   * isolate and the copying of each batch into the scanner's cost ~25 MB: false walks
   * on the calling thread, a batch when the scan needs one.
   */
  walkThread?: boolean;
  signal?: AbortSignal;
}

// Files being hashed ahead of the oldest unfinished one. Enough to keep every
// worker busy with small files while one large file finishes; each slot is a path
// and a promise, not file data.
const REORDER_WINDOW = 1024;
/** Events per batch at most, beyond a walk batch's own (BATCH_ENTRIES). */
const EVENT_BATCH = 512;
const SLASH = Buffer.from('/');

/**
 * Walk `root` and compare it with `previous`. Events come in pathSortKey order; a
 * directory comes before its contents. Per-path problems become `error` events
 * and the scan goes on; a root that cannot be read, a previous state out of
 * order, or an abort throws.
 */
export async function* scanSource(options: ScanOptions): AsyncGenerator<ScanEvent> {
  for await (const batch of scanSourceBatches(options)) {
    for (const event of batch) {
      options.signal?.throwIfAborted();
      yield event;
    }
  }
}

/**
 * scanSource() a batch at a time: the same events in the same order, as arrays of
 * at most EVENT_BATCH. A no-change scan of a large library is mostly bookkeeping per
 * path, and an await per event was a good part of it.
 */
export async function* scanSourceBatches(options: ScanOptions): AsyncGenerator<ScanEvent[]> {
  const pool = new HashPool(options.hashConcurrency ?? availableParallelism());
  const walk = new Walk(options, pool);
  const progress: ScanProgress = { files: 0, bytes: 0, hashedBytes: 0 };
  const window: Array<ScanEvent | PendingEvent> = [];
  const settled = (event: ScanEvent): ScanEvent => {
    options.signal?.throwIfAborted();
    if (event.kind !== 'deleted' && event.kind !== 'error' && event.entry.type !== 'dir') {
      progress.files++;
      if (event.entry.type === 'file') progress.bytes += event.entry.size;
    }
    progress.hashedBytes = walk.hashedBytes;
    options.onProgress?.(progress);
    return event;
  };
  // The oldest event of the window; a promise only for a file whose hash is still being computed.
  const oldest = (): ScanEvent | Promise<ScanEvent> => {
    const item = window.shift()!;
    if (!(item instanceof PendingEvent)) return settled(item);
    return item.event ? settled(item.event) : item.done.then(settled);
  };
  try {
    for await (const items of walk.batches()) {
      const out: ScanEvent[] = [];
      for (const item of items) {
        window.push(item);
        while (window.length >= REORDER_WINDOW || isReady(window[0])) {
          const event = oldest();
          out.push(event instanceof Promise ? await event : event);
        }
      }
      if (out.length > 0) yield out;
    }
    while (window.length > 0) {
      const out: ScanEvent[] = [];
      while (window.length > 0 && out.length < EVENT_BATCH) out.push(await oldest());
      yield out;
    }
  } finally {
    await Promise.all([pool.close(), walk.close()]);
  }
}

/** A file's event whose hash is still being computed. */
class PendingEvent {
  event: ScanEvent | undefined;
  readonly done: Promise<ScanEvent>;
  constructor(event: Promise<ScanEvent>) {
    this.done = event.then((e) => (this.event = e));
  }
}

function isReady(item: ScanEvent | PendingEvent | undefined): boolean {
  return item !== undefined && (!(item instanceof PendingEvent) || item.event !== undefined);
}

/** The first path of a hard-linked inode seen in this scan. */
interface LinkGroup {
  path: string;
  hash: Promise<string | undefined>;
  unseen: number;
}

class Walk {
  readonly #options: ScanOptions;
  readonly #pool: HashPool;
  readonly #previous: PreviousCursor;
  readonly #walk: WalkSource;
  readonly #links = new Map<string, LinkGroup>();
  hashedBytes = 0;

  constructor(options: ScanOptions, pool: HashPool) {
    this.#options = options;
    this.#pool = pool;
    this.#previous = new PreviousCursor(options.previous);
    const start: WalkStart = { root: resolvePath(options.root), ignore: options.ignore ?? [] };
    this.#walk = options.walkThread === false ? new InlineWalk(start) : new WalkThread(start);
  }

  async close(): Promise<void> {
    await Promise.all([this.#previous.close(), this.#walk.close()]);
  }

  /** The walk's events, a batch of the walk at a time; a file being hashed is a PendingEvent. */
  async *batches(): AsyncGenerator<Array<ScanEvent | PendingEvent>> {
    const previous = this.#previous;
    const signal = this.#options.signal;
    const root = resolvePath(this.#options.root);
    // Children's paths are joined with '/', so the filesystem root contributes no bytes of its own.
    const rootBytes = root === '/' ? Buffer.alloc(0) : encodeFsName(root);
    // advance() returns a promise only when it has to wait for the next batch.
    let waiting = previous.advance();
    if (waiting) await waiting;
    for (let message = await this.#walk.next(); message.kind === 'batch'; message = await this.#walk.next()) {
      let out: Array<ScanEvent | PendingEvent> = [];
      const { numbers, keys, keyEnds, paths, extras } = message;
      const keyBytes = Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength);
      for (let i = 0, keyStart = 0; i < paths.length; keyStart = keyEnds[i++]!) {
        signal?.throwIfAborted();
        const key = keyBytes.subarray(keyStart, keyEnds[i]);
        const rel = paths[i]!;
        while (previous.isBefore(key)) {
          out.push({ kind: 'deleted', path: previous.current!.path });
          // A folder deleted whole may be a long run of deletions: hand them on in batches.
          if (out.length >= EVENT_BATCH) {
            yield out;
            out = [];
          }
          waiting = previous.advance();
          if (waiting) await waiting;
        }
        const prev = previous.isAt(key) ? previous.current : undefined;
        if (prev) {
          waiting = previous.advance();
          if (waiting) await waiting;
        }
        const at = i * FIELDS;
        const code = numbers[at] as EntryCode;
        if (code === EntryCode.unreadable || code === EntryCode.linkUnreadable) {
          const failure = extras[i] as WalkError;
          out.push(errorEvent(rel, failure.doing, failure));
          // A folder that cannot be read hides what is below it: unknown this run, not deleted.
          if (code === EntryCode.unreadable) await previous.skipBelow(key);
          continue;
        }
        if (code === EntryCode.gone) {
          if (prev) out.push({ kind: 'deleted', path: prev.path });
          continue;
        }
        const type = code === EntryCode.file ? 'file' : code === EntryCode.dir ? 'dir' : 'symlink';
        const entry: ScannedFile = {
          path: rel,
          type,
          size: numbers[at + 1]!,
          mtimeMs: numbers[at + 2]!,
          ctimeMs: numbers[at + 3]!,
          ino: numbers[at + 4]!,
          dev: numbers[at + 5]!,
          mode: numbers[at + 6]!,
          uid: numbers[at + 7]!,
          gid: numbers[at + 8]!,
          nlink: numbers[at + 9]!,
        };
        if (type === 'symlink') entry.target = extras[i] as string;
        const unchanged = prev !== undefined && sameAsPrevious(prev, entry);
        const kind = prev === undefined ? 'new' : 'changed';
        if (type === 'file') {
          const previousHash = unchanged ? prev.hash : undefined;
          out.push(this.#fileEvent(kind, entry, () => absolutePath(rootBytes, key), previousHash));
        } else {
          out.push({ kind: unchanged ? 'unchanged' : kind, entry });
        }
      }
      yield out;
    }
    while (previous.current) {
      const out: ScanEvent[] = [];
      while (previous.current && out.length < EVENT_BATCH) {
        out.push({ kind: 'deleted', path: previous.current.path });
        waiting = previous.advance();
        if (waiting) await waiting;
      }
      yield out;
    }
  }

  /** `previousHash` is set when the file is unchanged since the previous backup. */
  #fileEvent(kind: 'new' | 'changed', entry: ScannedFile, abs: () => Buffer, previousHash: string | undefined): ScanEvent | PendingEvent {
    if (entry.nlink > 1 && this.#options.hash !== false) {
      const linkKey = `${entry.dev}:${entry.ino}`;
      const group = this.#links.get(linkKey);
      if (group) {
        if (--group.unseen === 0) this.#links.delete(linkKey);
        return new PendingEvent(this.#linkedEvent(kind, entry, abs, previousHash, group));
      }
      const event = this.#ownEvent(kind, entry, abs, previousHash);
      const hash = event instanceof PendingEvent ? event.done.then(hashOf) : Promise.resolve(hashOf(event));
      this.#links.set(linkKey, { path: entry.path, hash, unseen: entry.nlink - 1 });
      return event;
    }
    return this.#ownEvent(kind, entry, abs, previousHash);
  }

  #ownEvent(kind: 'new' | 'changed', entry: ScannedFile, abs: () => Buffer, previousHash: string | undefined): ScanEvent | PendingEvent {
    if (previousHash !== undefined) return { kind: 'unchanged', entry: { ...entry, hash: previousHash } };
    if (this.#options.hash === false) return { kind, entry };
    return new PendingEvent(this.#hash(kind, entry, abs()));
  }

  /** A later path of an inode: shares the first path's hash, or stands alone if that one failed. */
  async #linkedEvent(kind: 'new' | 'changed', entry: ScannedFile, abs: () => Buffer, previousHash: string | undefined, group: LinkGroup): Promise<ScanEvent> {
    const hash = await group.hash;
    if (hash === undefined) {
      const own = this.#ownEvent(kind, entry, abs, previousHash);
      return own instanceof PendingEvent ? own.done : own;
    }
    return { kind: previousHash !== undefined ? 'unchanged' : kind, entry: { ...entry, hash, linkOf: group.path } };
  }

  async #hash(kind: 'new' | 'changed', entry: ScannedFile, abs: Buffer): Promise<ScanEvent> {
    try {
      await this.#options.onHashStart?.(entry.path);
      const result = await this.#pool.hash(abs, entry.size);
      this.hashedBytes += result.bytesRead;
      const stable =
        result.bytesRead === entry.size &&
        result.size === entry.size &&
        result.mtimeMs === entry.mtimeMs &&
        result.ctimeMs === entry.ctimeMs &&
        result.ino === entry.ino;
      if (!stable) return { kind: 'error', path: entry.path, error: 'changed while being read; it will be backed up on the next run' };
      return { kind, entry: { ...entry, hash: result.hash } };
    } catch (err) {
      return errorEvent(entry.path, 'cannot read file', err);
    }
  }
}

/** Reads the catalog's previous state one entry ahead of the walk. */
class PreviousCursor {
  readonly #iterator: AsyncIterator<PreviousFile | readonly PreviousFile[]>;
  #batch: readonly PreviousFile[] = [];
  #at = 0;
  current: PreviousFile | undefined;
  #key: Buffer | undefined;

  constructor(previous: AsyncIterable<PreviousFile | readonly PreviousFile[]>) {
    this.#iterator = previous[Symbol.asyncIterator]();
  }

  /** Moves to the next entry; returns a promise only when the next batch must be awaited. */
  advance(): Promise<void> | undefined {
    if (this.#at < this.#batch.length) {
      this.#take(this.#batch[this.#at++]!);
      return undefined;
    }
    return this.#nextBatch();
  }

  async #nextBatch(): Promise<void> {
    for (;;) {
      const next = await this.#iterator.next();
      if (next.done) {
        this.current = undefined;
        this.#key = undefined;
        return;
      }
      this.#batch = Array.isArray(next.value) ? (next.value as readonly PreviousFile[]) : [next.value as PreviousFile];
      this.#at = 0;
      if (this.#batch.length > 0) {
        this.#take(this.#batch[this.#at++]!);
        return;
      }
    }
  }

  #take(entry: PreviousFile): void {
    const key = pathSortKey(entry.path);
    if (this.#key && Buffer.compare(key, this.#key) <= 0) {
      throw new Error(`previous state lists "${displayPath(entry.path)}" after "${displayPath(this.current!.path)}": the catalog must list a source's entries once each, sorted by pathSortKey`);
    }
    this.current = entry;
    this.#key = key;
  }

  isBefore(key: Buffer): boolean {
    return this.#key !== undefined && Buffer.compare(this.#key, key) < 0;
  }

  isAt(key: Buffer): boolean {
    return this.#key !== undefined && this.#key.equals(key);
  }

  /** Drops previous entries inside a folder that could not be read: unknown this run, not deleted. */
  async skipBelow(dirKey: Buffer): Promise<void> {
    while (this.#key !== undefined && this.#key.length > dirKey.length && this.#key[dirKey.length] === 0 && this.#key.subarray(0, dirKey.length).equals(dirKey)) {
      await this.advance();
    }
  }

  async close(): Promise<void> {
    await this.#iterator.return?.();
  }
}

/** The file a walk entry names: the source root, then its path (the key with its 00 separators back to '/'). */
function absolutePath(rootBytes: Buffer, key: Buffer): Buffer {
  const abs = Buffer.concat([rootBytes, SLASH, key]);
  for (let i = rootBytes.length + 1; i < abs.length; i++) if (abs[i] === 0) abs[i] = 0x2f;
  return abs;
}

/** Where a scan's walk batches come from. */
interface WalkSource {
  /** The next batch, or 'done'; throws if the source folder cannot be read. */
  next(): Promise<WalkMessage>;
  close(): Promise<void>;
}

/** The message, unless it says the source folder cannot be read. */
function checkedWalkMessage(root: string, message: WalkMessage): WalkMessage {
  if (message.kind === 'fatal') {
    throw new Error(`cannot read source folder ${displayPath(root)}: ${message.message}; check that it exists and is mounted`);
  }
  return message;
}

/** The walk on the scanner's own thread: each batch is walked when the scan asks for it. */
class InlineWalk implements WalkSource {
  readonly #root: string;
  readonly #batches: Generator<WalkMessage, void, undefined>;

  constructor(start: WalkStart) {
    this.#root = start.root;
    this.#batches = walkBatches(start);
  }

  async next(): Promise<WalkMessage> {
    const next = this.#batches.next();
    return next.done ? { kind: 'done' } : checkedWalkMessage(this.#root, next.value);
  }

  async close(): Promise<void> {
    this.#batches.return();
  }
}

/** The scanner's side of its walk thread: batches in order, each acknowledged so the walk may run on. */
class WalkThread implements WalkSource {
  readonly #root: string;
  readonly #worker: Worker;
  readonly #messages: WalkMessage[] = [];
  #failure: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(start: WalkStart) {
    this.#root = start.root;
    this.#worker = new Worker(new URL('./walk-worker.ts', import.meta.url), { ...workerStartOptions(), workerData: start });
    this.#worker.on('message', (message: WalkMessage) => {
      this.#messages.push(message);
      this.#notify();
    });
    this.#worker.on('error', (err) => this.#fail(new Error(`the folder walk failed: ${err.message}`)));
    this.#worker.on('exit', (code) => this.#fail(new Error(`the folder walk stopped (exit code ${code})`)));
  }

  /** The next batch, or 'done'; throws if the source folder cannot be read. */
  async next(): Promise<WalkMessage> {
    while (this.#messages.length === 0) {
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    const message = checkedWalkMessage(this.#root, this.#messages.shift()!);
    this.#worker.postMessage(0);
    return message;
  }

  async close(): Promise<void> {
    this.#failure ??= new Error('the scan was closed');
    await this.#worker.terminate();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

function sameAsPrevious(prev: PreviousFile, entry: ScannedFile): boolean {
  // A folder's size and times change whenever an entry is added or removed inside
  // it; those changes are reported on the entries themselves, so a folder is a new
  // version only when its kind or permissions change.
  if (entry.type === 'dir') return prev.type === 'dir' && prev.mode === entry.mode;
  return (
    prev.type === entry.type &&
    prev.size === entry.size &&
    prev.mtimeMs === entry.mtimeMs &&
    prev.ctimeMs === entry.ctimeMs &&
    prev.ino === entry.ino &&
    prev.mode === entry.mode &&
    (entry.type !== 'file' || prev.hash !== undefined)
  );
}

function hashOf(event: ScanEvent): string | undefined {
  return event.kind === 'error' || event.kind === 'deleted' ? undefined : event.entry.hash;
}

function errorEvent(path: string, doing: string, err: unknown): ScanEvent {
  return { kind: 'error', path, error: `${doing}: ${explain(err)}` };
}

function explain(err: unknown): string {
  const code = err instanceof HashError ? err.code : (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return "permission denied; give Hearth's user read access or add an ignore pattern";
    case 'ENOENT':
      return 'it vanished during the scan; it will be checked again on the next run';
    case 'ELOOP':
    case 'EAGAIN':
      return 'it was replaced by a link or special file during the scan; it will be checked again on the next run';
    case 'ENAMETOOLONG':
      return 'the path is longer than the system allows; shorten it or add an ignore pattern';
    default:
      return `${(err as Error).message}${code ? ` (${code})` : ''}; it will be retried on the next run`;
  }
}
