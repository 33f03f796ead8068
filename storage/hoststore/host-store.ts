// The objects relatives keep at this home. Layout under <home>/hosted/<ownerPeerId>/:
//   objects/<first 2 chars of id>/<id>   finished, verified objects
//   partial/<id>                          bytes received so far (kept for resume)
//   partial/<id>.json                     {size, merkleRoot, leafSize} the owner declared for them
//   partial/<id>.merkle                   the Merkle index being written as they arrive
//   merkle/<first 2 chars of id>/<id>     the object's Merkle index (merkle-index-file.ts)
//   deletions/<id>                        {requestedAt}: delete asked, purge pending
// An upload becomes visible only by a rename after the Merkle root of its bytes
// matched the owner's declaration and they were fsynced. The bytes are hashed as
// they arrive, into that root, the Merkle index audits prove from (so the object
// is not read again to index it) and the SHA-256 the scrub checks (kept under
// hashes/, kept-hash.ts). Deletes are delayed so a compromised home cannot wipe
// the family's copies of its data at once, and for the same reason an id, once
// stored, keeps its bytes: ids name their content, so a put of a stored id with
// another root is refused, and a put of a damaged copy's id (a repair) replaces
// the file only once the new bytes verified, leaving a pending deletion pending.
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { forgetHash, keepHash, readKeptHash, syncDirectory, type KeptHash } from './kept-hash.ts';
import { HOSTED_LEAF_SIZE, indexFileBytes, publishIndexFile } from './merkle-index-file.ts';
import { hashStoredFile, UploadWriter, type UploadDigests } from './upload-writer.ts';

export const DEFAULT_DELETE_DELAY = 30 * 24 * 60 * 60 * 1000;

const OWNER_PATTERN = /^[A-Za-z0-9]{1,128}$/;
const OBJECT_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const DIGEST_PATTERN = /^[0-9a-f]{64}$/;
const READ_CHUNK = 1024 * 1024;

export type HostStoreErrorCode = 'EQUOTA' | 'EHASH' | 'ENOOBJECT' | 'ERANGE' | 'ESUPERSEDED' | 'EINVAL' | 'EEXIST' | 'ENOSPC';

export class HostStoreError extends Error {
  readonly code: HostStoreErrorCode;
  /** With ENOSPC: bytes free on the host's disk when it refused. */
  readonly free: number | undefined;
  constructor(code: HostStoreErrorCode, message: string, details: { free?: number } = {}) {
    super(message);
    this.name = 'HostStoreError';
    this.code = code;
    this.free = details.free;
  }
}

/** What a hosted object occupies and counts against its owner's quota: its bytes and its Merkle index. */
export function hostedBytes(size: number): number {
  return size + indexFileBytes(size);
}

export function isValidObjectId(id: unknown): id is string {
  return typeof id === 'string' && OBJECT_ID_PATTERN.test(id);
}

/** A Merkle root as the owner declares it: 64 lowercase hex digits. */
export function isValidMerkleRoot(hex: unknown): hex is string {
  return typeof hex === 'string' && DIGEST_PATTERN.test(hex);
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
  /** Stored objects (pending deletions included) plus the declared size of every unfinished upload, each with its Merkle index (hostedBytes). */
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
  /** hostedBytes of every stored object. */
  objectBytes: number;
  /** Unfinished uploads by id: each reserves hostedBytes of the whole size its owner declared. */
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
   * written when the declared size does not fit the owner's quota, and with
   * EEXIST when the id is stored with another size or root. A newer put of the
   * same object supersedes one still running (its connection may be dead).
   */
  async beginPut(owner: string, id: string, declared: DeclaredObject): Promise<Upload> {
    this.#checkNames(owner, id);
    const { size, merkleRoot, leafSize } = declared;
    if (!Number.isSafeInteger(size) || size < 0) throw new HostStoreError('EINVAL', `object size must be a non-negative integer, got ${size}`);
    if (!isValidMerkleRoot(merkleRoot)) throw new HostStoreError('EINVAL', 'object merkleRoot must be 64 lowercase hex digits');
    if (leafSize !== HOSTED_LEAF_SIZE) throw new HostStoreError('EINVAL', `object leafSize must be ${HOSTED_LEAF_SIZE} (the Merkle leaf every Hearth catalog records), got ${leafSize}`);
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
    let repair = false;
    if (existingSize !== undefined) {
      const stored = await this.#storedContent(owner, id, existingSize);
      if (stored.size !== size || stored.merkleRoot !== merkleRoot) {
        throw new HostStoreError('EEXIST', `object ${id} is already stored here with other content (${stored.size} bytes, Merkle root ${stored.merkleRoot}); object ids name their content, so a stored id keeps its bytes and this put is refused`);
      }
      // Read, not taken from the kept hash: a copy damaged on this disk since is repaired.
      if (existingSize === size && (stored.readNow || (await merkleRootOfFile(objectPath, size, leafSize)) === merkleRoot)) {
        return this.#register(owner, id, declared, size, undefined);
      }
      repair = true;
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

    // A repair's new bytes sit beside the damaged copy until they verify: both count.
    const quota = await this.#quotaFor(owner);
    const needs = hostedBytes(size);
    const others = usedBytes(account) - (account.reserved.get(id) ?? 0);
    if (others + needs > quota) {
      const what = repair ? `${needs} bytes (with its Merkle index) beside the damaged copy it repairs` : `${needs} bytes (with its Merkle index)`;
      throw new HostStoreError('EQUOTA', `object ${id} needs ${what} but ${owner} has ${Math.max(0, quota - others)} of its ${quota}-byte quota left; ask the host for more or free space first`);
    }
    account.reserved.set(id, needs);

    try {
      await mkdir(join(this.#ownerDir(owner), 'partial'), { recursive: true });
      if (offset === 0) {
        await writeFile(`${partialPath}.json`, JSON.stringify({ size, merkleRoot, leafSize } satisfies PartialMeta));
        await writeFile(partialPath, '');
      }
    } catch (err) {
      // Nothing resumable was kept (a full disk, typically): nothing stays reserved.
      if (offset === 0) await this.#discardPartial(owner, id).catch(() => {});
      throw err;
    }
    return this.#register(owner, id, declared, offset, new UploadWriter(partialPath, `${partialPath}.merkle`, size, leafSize, offset));
  }

  /**
   * The content a stored id names: its kept hash, or for an object stored before
   * hashes were kept (or kept with another leaf size) its bytes' root, adopted
   * now (`readNow`: the file was just read and matches it).
   */
  async #storedContent(owner: string, id: string, size: number): Promise<KeptHash & { readNow: boolean }> {
    const kept = await readKeptHash(this.root, owner, id);
    if (kept?.leafSize === HOSTED_LEAF_SIZE) return { ...kept, readNow: false };
    const adopted: KeptHash = { merkleRoot: await merkleRootOfFile(this.#objectPath(owner, id), size, HOSTED_LEAF_SIZE), leafSize: HOSTED_LEAF_SIZE, size };
    await keepHash(this.root, owner, id, adopted, 'replace');
    return { ...adopted, readNow: true };
  }

  /**
   * A failure as the owner should hear it: a file system out of space (or over a
   * disk quota) becomes ENOSPC with the bytes still free; anything else is
   * returned as it is.
   */
  async refusalFor(err: unknown): Promise<unknown> {
    if (!isDiskFull(err)) return err;
    const free = await freeBytes(this.root);
    return new HostStoreError('ENOSPC', `disk full at the host: ${free} bytes free (${(err as Error).message})`, { free });
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
            (await this.#account(owner)).objectBytes -= hostedBytes(size);
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
      pendingDeletionBytes: pending.reduce((sum, p) => sum + hostedBytes(p.size), 0),
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
   * Make verified, synced bytes visible, with the index and root computed while
   * they arrived. Over a stored copy (a repair: the same root, checked again
   * here) the pending deletion, if any, stays; a marker left beside no object is
   * stale and goes.
   */
  async #publish(owner: string, id: string, { size, merkleRoot, leafSize }: DeclaredObject, partialPath: string, received: UploadDigests): Promise<void> {
    await this.#exclusive(owner, id, async () => {
      const objectPath = this.#objectPath(owner, id);
      const existing = await fileSize(objectPath);
      if (existing !== undefined) {
        const kept = await readKeptHash(this.root, owner, id);
        if (kept !== undefined && (kept.size !== size || kept.merkleRoot !== merkleRoot)) {
          await this.#discardPartial(owner, id);
          throw new HostStoreError('EEXIST', `object ${id} was stored with other content while this upload ran; the upload was discarded`);
        }
      }
      const shardDir = join(this.#ownerDir(owner), 'objects', id.slice(0, 2));
      await mkdir(shardDir, { recursive: true });
      // Before the bytes: a stored id's content never changes, so this hash is right for the old copy too.
      await keepHash(this.root, owner, id, { merkleRoot: received.root, leafSize, size }, 'replace');
      // Keyed to the partial's inode and mtime, which the rename keeps; until then
      // it matches no object file, so nothing uses it early.
      await publishIndexFile(`${partialPath}.merkle`, this.#indexPath(owner, id));
      await rename(partialPath, objectPath);
      await syncDirectory(shardDir);
      await rm(`${partialPath}.json`, { force: true });
      const account = await this.#account(owner);
      if (existing === undefined) {
        await rm(this.#markerPath(owner, id), { force: true });
        account.objectBytes += hostedBytes(size);
      }
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
    (await this.#account(owner)).reserved.delete(id);
    await rm(partialPath, { force: true });
    await rm(`${partialPath}.json`, { force: true });
    await rm(`${partialPath}.merkle`, { force: true });
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
    for await (const object of this.list(owner)) objectBytes += hostedBytes(object.size);
    const reserved = new Map<string, number>();
    const partialDir = join(this.#ownerDir(owner), 'partial');
    for (const name of await readdirIfExists(partialDir)) {
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -'.json'.length);
      const meta = await readJsonFile<PartialMeta>(join(partialDir, name));
      if (meta && Number.isSafeInteger(meta.size) && (await fileSize(join(partialDir, id))) !== undefined) reserved.set(id, hostedBytes(meta.size));
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
  #failure: unknown;

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
    try {
      await this.#writer.write(chunks);
    } catch (err) {
      this.#failure = err;
      throw err;
    }
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
    } catch (err) {
      if (isDiskFull(err)) await this.#hooks.discard().catch(() => {});
      throw err;
    } finally {
      // Keeps what arrived when finish() failed before the writer's own finish.
      await this.#writer?.abandon().catch(() => {});
      this.#hooks.release();
      this.#settle();
    }
  }

  /**
   * Stop, keeping what was received so the next put resumes from it; after a full
   * disk, dropping it: that put cannot resume until space is freed, and the
   * partial (and its reservation) holds space others need.
   */
  async abandon(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#writer?.abandon().catch(() => {});
      if (isDiskFull(this.#failure)) await this.#hooks.discard().catch(() => {});
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

/** The file system is out of space, or the user over its disk quota. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
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

async function freeBytes(path: string): Promise<number> {
  const info = await statfs(path);
  return info.bavail * info.bsize;
}
