// The objects relatives keep at this home. Layout under <home>/hosted/<ownerPeerId>/:
//   objects/<first 2 chars of id>/<id>   finished, verified objects
//   partial/<id>                          bytes received so far (kept for resume)
//   partial/<id>.json                     {size, merkleRoot, leafSize} the owner declared for them
//   merkle/<first 2 chars of id>/<id>     the object's Merkle index (merkle-index-file.ts)
//   deletions/<id>                        {requestedAt}: delete asked, purge pending
// An upload becomes visible only by a rename after the Merkle root of its bytes
// matched the owner's declaration and they were fsynced. The bytes are hashed as
// they arrive, into that root, the Merkle index audits prove from (so the object
// is not read again to index it) and the SHA-256 the scrub checks (kept under
// hashes/, kept-hash.ts). Deletes are delayed so a compromised home cannot wipe
// the family's copies of its data at once.
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { forgetHash, keepHash, syncDirectory } from './kept-hash.ts';
import { MAX_INDEXED_LEAF_SIZE, writeIndexFile } from './merkle-index-file.ts';
import { hashStoredFile, UploadWriter, type UploadDigests } from './upload-writer.ts';

export const DEFAULT_DELETE_DELAY = 30 * 24 * 60 * 60 * 1000;

const OWNER_PATTERN = /^[A-Za-z0-9]{1,128}$/;
const OBJECT_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const DIGEST_PATTERN = /^[0-9a-f]{64}$/;
const READ_CHUNK = 1024 * 1024;

export type HostStoreErrorCode = 'EQUOTA' | 'EHASH' | 'ENOOBJECT' | 'ERANGE' | 'ESUPERSEDED' | 'EINVAL';

export class HostStoreError extends Error {
  readonly code: HostStoreErrorCode;
  constructor(code: HostStoreErrorCode, message: string) {
    super(message);
    this.name = 'HostStoreError';
    this.code = code;
  }
}

export function isValidObjectId(id: unknown): id is string {
  return typeof id === 'string' && OBJECT_ID_PATTERN.test(id);
}

/** A Merkle root as the owner declares it: 64 lowercase hex digits. */
export function isValidMerkleRoot(hex: unknown): hex is string {
  return typeof hex === 'string' && DIGEST_PATTERN.test(hex);
}

/** Leaf sizes a put may declare: those the host can index for audits. */
export function isValidLeafSize(leafSize: unknown): leafSize is number {
  return Number.isSafeInteger(leafSize) && (leafSize as number) >= 1 && (leafSize as number) <= MAX_INDEXED_LEAF_SIZE;
}

/** What an owner declares about an object it puts; the host checks the bytes against it. */
export interface DeclaredObject {
  size: number;
  /** RFC 6962 root (hex) of the object's bytes cut in leafSize-byte leaves (storage/merkle.ts). */
  merkleRoot: string;
  leafSize: number;
}

export interface HostStoreOptions {
  /** The home directory; objects live under <home>/hosted unless `root` says elsewhere. */
  home: string;
  /** Where relatives' objects live (the `host.dir` setting); default <home>/hosted. */
  root?: string;
  /**
   * Called before an upload writes anything; throws when `root` cannot take
   * objects now (host.dir on a disk that is not mounted).
   */
  checkRoot?: () => Promise<void>;
  /** Bytes this home grants the owner (Infinity for no limit). */
  quotaFor(owner: string): number | Promise<number>;
  /** How long a deleted object is kept before it is purged, in ms. */
  deleteDelay?: number;
  /** Clock in ms since the epoch; injectable so tests can pass the delete delay. */
  now?: () => number;
}

export interface HostedObjectInfo {
  name: string;
  size: number;
  /** Set when the owner asked to delete it: when purgeExpired() will remove it. */
  deleteAt?: number;
}

export interface PendingDeletion {
  name: string;
  size: number;
  requestedAt: number;
  deleteAt: number;
}

export interface OwnerUsage {
  /** Stored objects (pending deletions included) plus the declared size of every unfinished upload. */
  used: number;
  quota: number;
  pendingDeletionBytes: number;
}

export interface ObjectRead {
  size: number;
  offset: number;
  length: number;
  stream: Readable;
}

export interface PurgedObject {
  owner: string;
  name: string;
  size: number;
}

type PartialMeta = DeclaredObject;

interface OwnerAccount {
  objectBytes: number;
  /** Unfinished uploads by id: each reserves the whole size its owner declared. */
  reserved: Map<string, number>;
}

interface ActiveUpload {
  controller: AbortController;
  settled: Promise<void>;
}

export class HostStore {
  readonly deleteDelay: number;
  readonly home: string;
  readonly #root: string;
  readonly #checkRoot: () => Promise<void>;
  /** Where relatives' objects live. */
  get root(): string {
    return this.#root;
  }
  readonly #quotaFor: (owner: string) => number | Promise<number>;
  readonly #now: () => number;
  readonly #accounts = new Map<string, Promise<OwnerAccount>>();
  readonly #active = new Map<string, ActiveUpload>();
  readonly #locks = new Map<string, Promise<void>>();

  constructor(options: HostStoreOptions) {
    this.home = options.home;
    this.#root = options.root ?? join(options.home, 'hosted');
    this.#checkRoot = options.checkRoot ?? (async () => {});
    this.#quotaFor = options.quotaFor;
    this.deleteDelay = options.deleteDelay ?? DEFAULT_DELETE_DELAY;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Start (or resume) storing an object. Refuses with EQUOTA before anything is
   * written when the declared size does not fit the owner's quota. A newer put of
   * the same object supersedes one still running (its connection may be dead).
   */
  async beginPut(owner: string, id: string, declared: DeclaredObject): Promise<Upload> {
    this.#checkNames(owner, id);
    const { size, merkleRoot, leafSize } = declared;
    if (!Number.isSafeInteger(size) || size < 0) throw new HostStoreError('EINVAL', `object size must be a non-negative integer, got ${size}`);
    if (!isValidMerkleRoot(merkleRoot)) throw new HostStoreError('EINVAL', 'object merkleRoot must be 64 lowercase hex digits');
    if (!isValidLeafSize(leafSize)) throw new HostStoreError('EINVAL', `object leafSize must be an integer from 1 to ${MAX_INDEXED_LEAF_SIZE}, got ${leafSize}`);
    // Its own lock: a superseded upload may need the object lock to finish.
    return this.#exclusive(`put:${owner}`, id, async () => {
      await this.#settleActive(owner, id);
      return this.#startUpload(owner, id, { size, merkleRoot, leafSize });
    });
  }

  async #startUpload(owner: string, id: string, declared: DeclaredObject): Promise<Upload> {
    const { size, merkleRoot, leafSize } = declared;
    await this.#checkRoot();
    const account = await this.#account(owner);
    const objectPath = this.#objectPath(owner, id);
    const existingSize = await fileSize(objectPath);
    // Read, not taken from the object's index: a copy damaged on this disk since must be replaced.
    if (existingSize === size && (await merkleRootOfFile(objectPath, size, leafSize)) === merkleRoot) {
      return this.#register(owner, id, declared, size, undefined);
    }

    const partialPath = this.#partialPath(owner, id);
    let offset = 0;
    const meta = await readJsonFile<PartialMeta>(`${partialPath}.json`);
    const partialSize = await fileSize(partialPath);
    if (meta?.size === size && meta.merkleRoot === merkleRoot && meta.leafSize === leafSize && partialSize !== undefined && partialSize <= size) {
      offset = partialSize;
    } else if (meta !== undefined || partialSize !== undefined) {
      await this.#discardPartial(owner, id);
    }

    const quota = await this.#quotaFor(owner);
    const others = usedBytes(account) - (account.reserved.get(id) ?? 0) - (existingSize ?? 0);
    if (others + size > quota) {
      throw new HostStoreError('EQUOTA', `object ${id} needs ${size} bytes but ${owner} has ${Math.max(0, quota - others)} of its ${quota}-byte quota left; ask the host for more or free space first`);
    }
    account.reserved.set(id, size);

    await mkdir(join(this.#ownerDir(owner), 'partial'), { recursive: true });
    if (offset === 0) {
      await writeFile(`${partialPath}.json`, JSON.stringify({ size, merkleRoot, leafSize } satisfies PartialMeta));
      await writeFile(partialPath, '');
    }
    return this.#register(owner, id, declared, offset, new UploadWriter(partialPath, size, leafSize, offset));
  }

  /** Read a whole object or a byte range of it (clamped to the object's end). */
  async read(owner: string, id: string, range?: { offset?: number; length?: number }): Promise<ObjectRead> {
    this.#checkNames(owner, id);
    let handle: FileHandle;
    try {
      handle = await open(this.#objectPath(owner, id), 'r');
    } catch (err) {
      if (isNotFound(err)) throw notFound(owner, id);
      throw err;
    }
    try {
      const { size } = await handle.stat();
      const offset = range?.offset ?? 0;
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) throw new HostStoreError('ERANGE', `offset ${offset} is outside object ${id} of ${size} bytes`);
      const length = Math.min(range?.length ?? size - offset, size - offset);
      if (!Number.isSafeInteger(length) || length < 0) throw new HostStoreError('ERANGE', `length ${range?.length} is not a non-negative integer`);
      if (length === 0) {
        await handle.close();
        return { size, offset, length, stream: Readable.from([]) };
      }
      const stream = handle.createReadStream({ start: offset, end: offset + length - 1, highWaterMark: READ_CHUNK });
      return { size, offset, length, stream };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async stat(owner: string, id: string): Promise<HostedObjectInfo> {
    this.#checkNames(owner, id);
    const size = await fileSize(this.#objectPath(owner, id));
    if (size === undefined) throw notFound(owner, id);
    const marker = await this.#deletionMarker(owner, id);
    return marker === undefined ? { name: id, size } : { name: id, size, deleteAt: marker + this.deleteDelay };
  }

  async *list(owner: string): AsyncGenerator<HostedObjectInfo> {
    this.#checkOwner(owner);
    const markers = await this.#deletionMarkers(owner);
    const objects = join(this.#ownerDir(owner), 'objects');
    for (const shard of (await readdirIfExists(objects)).sort()) {
      for (const name of (await readdirIfExists(join(objects, shard))).sort()) {
        const size = await fileSize(join(objects, shard, name));
        if (size === undefined) continue;
        const requestedAt = markers.get(name);
        yield requestedAt === undefined ? { name, size } : { name, size, deleteAt: requestedAt + this.deleteDelay };
      }
    }
  }

  /**
   * Ask for an object's deletion. A stored object is only marked (the earliest
   * request counts) and stays readable until purgeExpired() runs after
   * deleteDelay; an unfinished upload is not a copy of anything and goes at once.
   * Returns when the object will be purged, or undefined if nothing is stored.
   */
  async delete(owner: string, id: string): Promise<number | undefined> {
    this.#checkNames(owner, id);
    await this.#settleActive(owner, id);
    return this.#exclusive(owner, id, async () => {
      await this.#discardPartial(owner, id);
      if ((await fileSize(this.#objectPath(owner, id))) === undefined) return undefined;
      let requestedAt = await this.#deletionMarker(owner, id);
      if (requestedAt === undefined) {
        requestedAt = this.#now();
        await mkdir(join(this.#ownerDir(owner), 'deletions'), { recursive: true });
        await writeFile(this.#markerPath(owner, id), JSON.stringify({ requestedAt }));
      }
      return requestedAt + this.deleteDelay;
    });
  }

  async pendingDeletions(owner: string): Promise<PendingDeletion[]> {
    this.#checkOwner(owner);
    const pending: PendingDeletion[] = [];
    for (const [name, requestedAt] of await this.#deletionMarkers(owner)) {
      const size = await fileSize(this.#objectPath(owner, name));
      if (size !== undefined) pending.push({ name, size, requestedAt, deleteAt: requestedAt + this.deleteDelay });
    }
    return pending.sort((a, b) => a.deleteAt - b.deleteAt || (a.name < b.name ? -1 : 1));
  }

  /** Physically remove every object whose delete delay has passed. */
  async purgeExpired(): Promise<PurgedObject[]> {
    const purged: PurgedObject[] = [];
    for (const owner of await this.owners()) {
      for (const [name, requested] of await this.#deletionMarkers(owner)) {
        if (requested + this.deleteDelay > this.#now()) continue;
        await this.#exclusive(owner, name, async () => {
          // Re-read under the lock: a put may have cancelled the deletion meanwhile.
          const requestedAt = await this.#deletionMarker(owner, name);
          if (requestedAt === undefined || requestedAt + this.deleteDelay > this.#now()) return;
          const objectPath = this.#objectPath(owner, name);
          const size = await fileSize(objectPath);
          if (size !== undefined) {
            await rm(objectPath, { force: true });
            await forgetHash(this.root, owner, name);
            await rm(this.#indexPath(owner, name), { force: true });
            (await this.#account(owner)).objectBytes -= size;
            purged.push({ owner, name, size });
          }
          await rm(this.#markerPath(owner, name), { force: true });
        });
      }
    }
    return purged;
  }

  async usage(owner: string): Promise<OwnerUsage> {
    this.#checkOwner(owner);
    const account = await this.#account(owner);
    const pending = await this.pendingDeletions(owner);
    return {
      used: usedBytes(account),
      quota: await this.#quotaFor(owner),
      pendingDeletionBytes: pending.reduce((sum, p) => sum + p.size, 0),
    };
  }

  /**
   * The file holding a finished object, for readers that need positioned reads
   * and its inode and mtime (the audit's Merkle index, merkle-index.ts). It may
   * not exist; read-only use.
   */
  objectFile(owner: string, id: string): string {
    this.#checkNames(owner, id);
    return this.#objectPath(owner, id);
  }

  /** Where the object's Merkle index lives (merkle-index-file.ts); it may not exist. */
  indexFile(owner: string, id: string): string {
    this.#checkNames(owner, id);
    return this.#indexPath(owner, id);
  }

  /** Owners that have anything stored here. */
  async owners(): Promise<string[]> {
    return (await readdirIfExists(this.#root)).filter((name) => OWNER_PATTERN.test(name)).sort();
  }

  #register(owner: string, id: string, declared: DeclaredObject, offset: number, writer: UploadWriter | undefined): Upload {
    const key = keyOf(owner, id);
    const partialPath = this.#partialPath(owner, id);
    const upload: Upload = new Upload({ owner, id, declared, offset, writer }, {
      publish: (received) => this.#publish(owner, id, declared, partialPath, received),
      keep: () => this.#exclusive(owner, id, () => rm(this.#markerPath(owner, id), { force: true })),
      discard: () => this.#exclusive(owner, id, () => this.#discardPartial(owner, id)),
      release: () => {
        if (this.#active.get(key)?.controller === upload.controller) this.#active.delete(key);
      },
    });
    this.#active.set(key, { controller: upload.controller, settled: upload.settled });
    return upload;
  }

  /**
   * Make verified, synced bytes visible, with the index and hash computed while
   * they arrived; a put of the object cancels its pending deletion.
   */
  async #publish(owner: string, id: string, { size, leafSize }: DeclaredObject, partialPath: string, received: UploadDigests): Promise<void> {
    await this.#exclusive(owner, id, async () => {
      const objectPath = this.#objectPath(owner, id);
      const replaced = (await fileSize(objectPath)) ?? 0;
      const shardDir = join(this.#ownerDir(owner), 'objects', id.slice(0, 2));
      await mkdir(shardDir, { recursive: true });
      // Keyed to the partial's inode and mtime, which the rename keeps; until then
      // it matches no object file, so nothing uses it early.
      await writeIndexFile(this.#indexPath(owner, id), received.index);
      // Never an old hash beside new bytes: a scrub would call them damaged.
      await forgetHash(this.root, owner, id);
      await rename(partialPath, objectPath);
      await syncDirectory(shardDir);
      await keepHash(this.root, owner, id, { merkleRoot: received.root, leafSize, size }, 'replace');
      await rm(`${partialPath}.json`, { force: true });
      await rm(this.#markerPath(owner, id), { force: true });
      const account = await this.#account(owner);
      account.objectBytes += size - replaced;
      account.reserved.delete(id);
    });
  }

  async #settleActive(owner: string, id: string): Promise<void> {
    const active = this.#active.get(keyOf(owner, id));
    if (!active) return;
    active.controller.abort(new HostStoreError('ESUPERSEDED', `upload of ${id} was superseded by a newer request for the same object`));
    await active.settled;
  }

  async #discardPartial(owner: string, id: string): Promise<void> {
    const partialPath = this.#partialPath(owner, id);
    await rm(partialPath, { force: true });
    await rm(`${partialPath}.json`, { force: true });
    (await this.#account(owner)).reserved.delete(id);
  }

  #account(owner: string): Promise<OwnerAccount> {
    let account = this.#accounts.get(owner);
    if (!account) {
      account = this.#scanAccount(owner);
      this.#accounts.set(owner, account);
      account.catch(() => this.#accounts.delete(owner));
    }
    return account;
  }

  async #scanAccount(owner: string): Promise<OwnerAccount> {
    let objectBytes = 0;
    for await (const object of this.list(owner)) objectBytes += object.size;
    const reserved = new Map<string, number>();
    const partialDir = join(this.#ownerDir(owner), 'partial');
    for (const name of await readdirIfExists(partialDir)) {
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -'.json'.length);
      const meta = await readJsonFile<PartialMeta>(join(partialDir, name));
      if (meta && (await fileSize(join(partialDir, id))) !== undefined) reserved.set(id, meta.size);
    }
    return { objectBytes, reserved };
  }

  async #deletionMarker(owner: string, id: string): Promise<number | undefined> {
    return (await readJsonFile<{ requestedAt: number }>(this.#markerPath(owner, id)))?.requestedAt;
  }

  async #deletionMarkers(owner: string): Promise<Map<string, number>> {
    const markers = new Map<string, number>();
    for (const name of await readdirIfExists(join(this.#ownerDir(owner), 'deletions'))) {
      if (!OBJECT_ID_PATTERN.test(name)) continue;
      const requestedAt = await this.#deletionMarker(owner, name);
      if (requestedAt !== undefined) markers.set(name, requestedAt);
    }
    return markers;
  }

  async #exclusive<T>(owner: string, id: string, fn: () => Promise<T>): Promise<T> {
    const key = keyOf(owner, id);
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const { promise: done, resolve: release } = Promise.withResolvers<void>();
    const tail = previous.then(() => done);
    this.#locks.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  #checkOwner(owner: string): void {
    if (!OWNER_PATTERN.test(owner)) throw new HostStoreError('EINVAL', `owner ${JSON.stringify(owner)} is not a PeerId`);
  }

  #checkNames(owner: string, id: string): void {
    this.#checkOwner(owner);
    if (!isValidObjectId(id)) throw new HostStoreError('EINVAL', `object id ${JSON.stringify(id)} must be 1-128 letters, digits, '_' or '-'`);
  }

  #ownerDir(owner: string): string {
    return join(this.#root, owner);
  }

  #objectPath(owner: string, id: string): string {
    return join(this.#ownerDir(owner), 'objects', id.slice(0, 2), id);
  }

  #partialPath(owner: string, id: string): string {
    return join(this.#ownerDir(owner), 'partial', id);
  }

  #markerPath(owner: string, id: string): string {
    return join(this.#ownerDir(owner), 'deletions', id);
  }

  #indexPath(owner: string, id: string): string {
    return join(this.#ownerDir(owner), 'merkle', id.slice(0, 2), id);
  }
}

interface UploadInit {
  owner: string;
  id: string;
  declared: DeclaredObject;
  offset: number;
  /** Writes and hashes the partial file; absent when the object is already stored. */
  writer: UploadWriter | undefined;
}

interface UploadHooks {
  publish(received: UploadDigests): Promise<void>;
  keep(): Promise<void>;
  discard(): Promise<void>;
  release(): void;
}

/**
 * One put in progress. Feed it the bytes after `offset` with write(), then
 * finish() to verify and publish, or abandon() to keep the partial for a resume.
 * `signal` aborts when a newer put or a delete of the same object takes over.
 */
export class Upload {
  readonly owner: string;
  readonly id: string;
  readonly size: number;
  readonly merkleRoot: string;
  readonly leafSize: number;
  /** Bytes the host already had when this put started; the owner sends the rest. */
  readonly offset: number;
  readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly settled: Promise<void>;
  /** Hashes from byte 0: a kept prefix is read back, as node:crypto cannot save a hash's state. */
  readonly #writer: UploadWriter | undefined;
  readonly #hooks: UploadHooks;
  readonly #settle: () => void;
  #received = 0;
  #done = false;

  constructor(init: UploadInit, hooks: UploadHooks) {
    this.owner = init.owner;
    this.id = init.id;
    this.size = init.declared.size;
    this.merkleRoot = init.declared.merkleRoot;
    this.leafSize = init.declared.leafSize;
    this.offset = init.offset;
    this.#writer = init.writer;
    this.#hooks = hooks;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.settled = promise;
    this.#settle = resolve;
  }

  /** True when the host already holds this exact object and no bytes need to flow. */
  get alreadyStored(): boolean {
    return this.#writer === undefined;
  }

  /** Resolves once the bytes are handed to the writer, which holds a few MiB: not when they are on disk. */
  async write(chunks: Uint8Array[]): Promise<void> {
    if (!this.#writer || this.#done) throw new Error(`upload of ${this.id} is not accepting data`);
    this.signal.throwIfAborted();
    let length = 0;
    for (const chunk of chunks) length += chunk.byteLength;
    if (this.offset + this.#received + length > this.size) throw new HostStoreError('EINVAL', `upload of ${this.id} received more than its declared ${this.size} bytes`);
    await this.#writer.write(chunks);
    this.#received += length;
  }

  /** Verify, sync and publish. Throws EHASH (and discards the partial) on a mismatch. */
  async finish(): Promise<void> {
    this.#done = true;
    try {
      if (!this.#writer) {
        await this.#hooks.keep();
        return;
      }
      const total = this.offset + this.#received;
      if (total !== this.size) throw new Error(`upload of ${this.id} finished after ${total} of ${this.size} bytes`);
      const received = await this.#writer.finish();
      if (received.root !== this.merkleRoot) {
        await this.#hooks.discard();
        throw new HostStoreError('EHASH', `object ${this.id}: the received bytes have Merkle root ${received.root} (${this.leafSize}-byte leaves) but the owner declared ${this.merkleRoot}; the upload was discarded, send it again`);
      }
      await this.#hooks.publish(received);
    } finally {
      // Keeps what arrived when finish() failed before the writer's own finish.
      await this.#writer?.abandon().catch(() => {});
      this.#hooks.release();
      this.#settle();
    }
  }

  /** Stop, keeping what was received so the next put resumes from it. */
  async abandon(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#writer?.abandon().catch(() => {});
    } finally {
      this.#hooks.release();
      this.#settle();
    }
  }
}

function usedBytes(account: OwnerAccount): number {
  let used = account.objectBytes;
  for (const size of account.reserved.values()) used += size;
  return used;
}

function keyOf(owner: string, id: string): string {
  return `${owner}/${id}`;
}

function notFound(owner: string, id: string): HostStoreError {
  return new HostStoreError('ENOOBJECT', `object ${id} is not stored here for ${owner}`);
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    // A torn write from a crash: treat as absent so the state is rebuilt.
    return undefined;
  }
}

async function merkleRootOfFile(path: string, size: number, leafSize: number): Promise<string> {
  return (await hashStoredFile(path, size, leafSize)).root;
}
