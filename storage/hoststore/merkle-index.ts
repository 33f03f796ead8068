// A host's Merkle index of each object it stores, so that proving one sampled leaf
// for an audit reads one 64 KiB block of the object and two or three 4 KiB pages
// of stored hashes, instead of the whole object (what merkleProofs alone needs).
// The host store writes an object's index while its upload arrives; this store
// builds the index of an object that has none (stored before indexing, or its
// index lost or stale) and proves leaves with it. The file format and how it is
// built: merkle-index-file.ts; costs and why a cache the host wrote itself is
// safe: docs/audit.md.
//
// A leaf's path is its path inside its block (hashed from the block's bytes),
// then, for each stored level, its node's siblings inside its group (one page
// read, 127 hashes). Anything but the object file the index was written for (a
// new upload is a new inode, an edit a new mtime) rebuilds it.
import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { merkleLeafCount, merkleProofs, type MerkleProof } from '../merkle.ts';
import { HostStoreError, isValidObjectId, type HostStore } from './host-store.ts';
import { hashStoredFile } from './upload-writer.ts';
import {
  blockCount,
  EMPTY_ROOT,
  GROUP_BYTES,
  groupTree,
  HASH_SIZE,
  HOSTED_LEAF_SIZE,
  identityOf,
  INDEX_BLOCK_LEAVES,
  INDEX_GROUP_HASHES,
  INDEX_MAGIC,
  INDEX_TRAILER_SIZE,
  indexLength,
  publishIndexFile,
  storedLevels,
  temporaryIndexPath,
  type ObjectIdentity,
  type StoredLevel,
} from './merkle-index-file.ts';

export { INDEX_BLOCK_LEAVES, INDEX_GROUP_HASHES } from './merkle-index-file.ts';

/** temporaryIndexPath's names: `<id>.tmp-<8 hex digits>`. */
const TEMPORARY_NAME = /\.tmp-[0-9a-f]{8}$/;
const TEMPORARY_MAX_AGE = 60 * 60 * 1000;

/** Bytes this store has read from disk, for benchmarks and logs. */
export interface MerkleIndexCounters {
  /** Object blocks read to answer samples. */
  objectBytesRead: number;
  /** Index trailers and groups of hashes read to answer samples. */
  indexBytesRead: number;
  /** Object bytes read to build indexes. */
  buildBytesRead: number;
  /** Indexes built (or rebuilt after the object changed). */
  builds: number;
}

export interface MerkleIndexStoreOptions {
  store: HostStore;
}

export class MerkleIndexStore {
  readonly counters: MerkleIndexCounters = { objectBytesRead: 0, indexBytesRead: 0, buildBytesRead: 0, builds: 0 };
  readonly #store: HostStore;
  /** Builds in progress by index path. They run to the end even when the audit that asked gave up, so its retry finds the index. */
  readonly #building = new Map<string, Promise<void>>();

  constructor(options: MerkleIndexStoreOptions) {
    this.#store = options.store;
  }

  /**
   * Open a stored object for proving, with its index built first if it is missing
   * or stale. Throws HostStoreError ENOOBJECT when the object is not stored.
   */
  async open(owner: string, id: string, leafSize: number): Promise<IndexedObject> {
    if (leafSize !== HOSTED_LEAF_SIZE) throw new HostStoreError('EINVAL', `object ${id}: hosts index ${HOSTED_LEAF_SIZE}-byte Merkle leaves only, not ${leafSize}`);
    const objectPath = this.#store.objectFile(owner, id);
    const indexPath = this.#store.indexFile(owner, id);
    const object = await openObject(objectPath, owner, id);
    try {
      const identity = identityOf(await object.stat({ bigint: true }));
      // Twice at most: a second build is needed only if the object was replaced while the first ran.
      for (let attempt = 0; attempt < 2; attempt++) {
        const index = await this.#openIndex(indexPath, identity, leafSize);
        if (index) return new IndexedObject({ object, identity, leafSize, counters: this.counters, ...index });
        await this.#build(objectPath, indexPath, owner, id, leafSize);
      }
      throw new HostStoreError('EINVAL', `object ${id} of ${owner} changed while its Merkle index was built; try the audit again`);
    } catch (err) {
      await object.close();
      throw err;
    }
  }

  /**
   * Build every missing or stale index and remove indexes whose object is gone. Uploads write their
   * index as they arrive, so this only finds objects stored before that, or whose
   * index was lost; a background task, so that audits find the indexes ready.
   */
  async buildMissing(): Promise<{ objects: number; built: number; removed: number }> {
    const before = this.counters.builds;
    let objects = 0;
    let removed = 0;
    for (const owner of await this.#store.owners()) {
      for await (const info of this.#store.list(owner)) {
        try {
          await (await this.open(owner, info.name, HOSTED_LEAF_SIZE)).close();
          objects++;
        } catch (err) {
          // Purged since it was listed: nothing to index.
          if (!(err instanceof HostStoreError && err.code === 'ENOOBJECT')) throw err;
        }
      }
      removed += await this.#removeOrphans(owner);
    }
    return { objects, built: this.counters.builds - before, removed };
  }

  async #removeOrphans(owner: string): Promise<number> {
    let removed = 0;
    // Any id gives the owner's directory; '00' is only a valid one.
    const indexRoot = dirname(dirname(this.#store.indexFile(owner, '00')));
    for (const shard of await readdirIfExists(indexRoot)) {
      for (const name of await readdirIfExists(join(indexRoot, shard))) {
        const path = join(indexRoot, shard, name);
        if (TEMPORARY_NAME.test(name)) {
          // A build or an upload may be writing it right now; only a crash leaves one behind for long.
          const info = await stat(path).catch(() => undefined);
          if (!info || Date.now() - info.mtimeMs < TEMPORARY_MAX_AGE) continue;
        } else if (isValidObjectId(name) && (await stat(this.#store.objectFile(owner, name)).then((info) => info.isFile(), () => false))) {
          continue;
        }
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  async #openIndex(indexPath: string, identity: ObjectIdentity, leafSize: number): Promise<IndexFile | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(indexPath, 'r');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    try {
      const levels = storedLevels(blockCount(identity.size, leafSize));
      const length = indexLength(levels);
      const trailer = Buffer.alloc(INDEX_TRAILER_SIZE);
      const valid = (await handle.stat()).size === length
        && (await handle.read(trailer, 0, INDEX_TRAILER_SIZE, length - INDEX_TRAILER_SIZE)).bytesRead === INDEX_TRAILER_SIZE
        && trailer.subarray(0, 4).equals(INDEX_MAGIC)
        && trailer.readUInt32BE(4) === leafSize
        && trailer.readUInt32BE(8) === INDEX_BLOCK_LEAVES
        && trailer.readUInt32BE(12) === INDEX_GROUP_HASHES
        && trailer.readBigUInt64BE(16) === BigInt(identity.size)
        && trailer.readBigUInt64BE(24) === identity.ino
        && trailer.readBigUInt64BE(32) === identity.mtimeNs;
      this.counters.indexBytesRead += INDEX_TRAILER_SIZE;
      if (!valid) {
        await handle.close();
        return undefined;
      }
      return { index: handle, levels, root: levels.length ? trailer.subarray(40, 72).toString('hex') : EMPTY_ROOT };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  #build(objectPath: string, indexPath: string, owner: string, id: string, leafSize: number): Promise<void> {
    let running = this.#building.get(indexPath);
    if (!running) {
      running = this.#write(objectPath, indexPath, owner, id, leafSize).finally(() => this.#building.delete(indexPath));
      this.#building.set(indexPath, running);
    }
    return running;
  }

  /** Hashes the object in the upload worker (a whole object is never read on the libp2p thread). */
  async #write(objectPath: string, indexPath: string, owner: string, id: string, leafSize: number): Promise<void> {
    const before = await stat(objectPath, { bigint: true }).catch((err: unknown) => {
      if (isNotFound(err)) throw new HostStoreError('ENOOBJECT', `object ${id} is not stored here for ${owner}`);
      throw err;
    });
    const identity = identityOf(before);
    await mkdir(dirname(indexPath), { recursive: true });
    const temporary = temporaryIndexPath(indexPath);
    try {
      const built = await hashStoredFile(objectPath, identity.size, leafSize, temporary);
      this.counters.buildBytesRead += identity.size;
      if (!sameIdentity(built.identity, identity)) {
        throw new HostStoreError('EINVAL', `object ${id} of ${owner} was modified while its Merkle index was built; try again`);
      }
      // An upload that replaced the object meanwhile wrote its own index: keep that one.
      const stillCurrent = async (): Promise<boolean> => {
        const now = await stat(objectPath, { bigint: true }).catch(() => undefined);
        return now !== undefined && sameIdentity(identityOf(now), identity);
      };
      if (await publishIndexFile(temporary, indexPath, stillCurrent)) this.counters.builds++;
    } finally {
      await rm(temporary, { force: true });
    }
  }
}

interface IndexFile {
  index: FileHandle;
  levels: StoredLevel[];
  root: string;
}

interface IndexedObjectInit extends IndexFile {
  object: FileHandle;
  identity: ObjectIdentity;
  leafSize: number;
  counters: MerkleIndexCounters;
}

/** A stored object opened with a valid index: proves leaves by reading their blocks. */
export class IndexedObject {
  readonly size: number;
  readonly leafSize: number;
  readonly leafCount: number;
  /** Root of the bytes this host holds (hex), as computed when the index was written (by the upload or a build). */
  readonly root: string;
  readonly #object: FileHandle;
  readonly #index: FileHandle;
  readonly #levels: StoredLevel[];
  readonly #counters: MerkleIndexCounters;
  /** Trees of the groups already read, by file offset: samples share the upper ones. */
  readonly #groups = new Map<number, Buffer[][]>();

  constructor(init: IndexedObjectInit) {
    this.size = init.identity.size;
    this.leafSize = init.leafSize;
    this.leafCount = merkleLeafCount(this.size, this.leafSize);
    this.root = init.root;
    this.#object = init.object;
    this.#index = init.index;
    this.#levels = init.levels;
    this.#counters = init.counters;
  }

  /** Proofs of the given leaves, in the order asked; each block is read once. */
  async prove(indices: readonly number[]): Promise<MerkleProof[]> {
    const byBlock = new Map<number, number[]>();
    for (const index of indices) {
      if (!Number.isSafeInteger(index) || index < 0 || index >= this.leafCount) throw new RangeError(`leaf ${index} is outside the object's ${this.leafCount} leaves`);
      const block = Math.floor(index / INDEX_BLOCK_LEAVES);
      const members = byBlock.get(block);
      if (members) members.push(index);
      else byBlock.set(block, [index]);
    }
    const proofs = new Map<number, MerkleProof>();
    const leafSize = this.leafSize;
    const blockBytes = INDEX_BLOCK_LEAVES * leafSize;
    for (const block of [...byBlock.keys()].sort((a, b) => a - b)) {
      const first = block * INDEX_BLOCK_LEAVES;
      const bytes = Buffer.allocUnsafe(Math.min(blockBytes, this.size - block * blockBytes));
      await readExactly(this.#object, bytes, block * blockBytes);
      this.#counters.objectBytesRead += bytes.length;
      const inBlock = await merkleProofs(
        (k) => bytes.subarray(k * leafSize, Math.min((k + 1) * leafSize, bytes.length)),
        Math.min(INDEX_BLOCK_LEAVES, this.leafCount - first),
        byBlock.get(block)!.map((index) => index - first),
      );
      const upper = await this.#upperPath(block);
      for (const proof of inBlock.proofs) proofs.set(first + proof.index, { index: first + proof.index, leaf: proof.leaf, path: [...proof.path, ...upper] });
    }
    return indices.map((index) => proofs.get(index)!);
  }

  /** The block's siblings above it: for each stored level, those inside its node's group. */
  async #upperPath(block: number): Promise<Buffer[]> {
    const path: Buffer[] = [];
    let node = block;
    for (const level of this.#levels) {
      const group = Math.floor(node / INDEX_GROUP_HASHES);
      path.push(...groupPath(await this.#group(level, group), node - group * INDEX_GROUP_HASHES));
      node = group;
    }
    return path;
  }

  async #group(level: StoredLevel, group: number): Promise<Buffer[][]> {
    const offset = level.start + group * GROUP_BYTES;
    let tree = this.#groups.get(offset);
    if (!tree) {
      const hashes = Buffer.alloc(Math.min(INDEX_GROUP_HASHES, level.count - group * INDEX_GROUP_HASHES) * HASH_SIZE);
      await readExactly(this.#index, hashes, offset);
      this.#counters.indexBytesRead += hashes.length;
      tree = groupTree(hashes);
      this.#groups.set(offset, tree);
    }
    return tree;
  }

  async close(): Promise<void> {
    await Promise.all([this.#object.close(), this.#index.close()]);
  }
}

/** Siblings of node `local` on its way up a group's tree; none where the node was promoted. */
function groupPath(tree: readonly Buffer[][], local: number): Buffer[] {
  const path: Buffer[] = [];
  let node = local;
  for (const level of tree.slice(0, -1)) {
    const sibling = node % 2 === 1 ? node - 1 : node + 1;
    if (sibling < level.length) path.push(level[sibling]!);
    node = Math.floor(node / 2);
  }
  return path;
}

async function openObject(path: string, owner: string, id: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if (isNotFound(err)) throw new HostStoreError('ENOOBJECT', `object ${id} is not stored here for ${owner}`);
    throw err;
  }
}

async function readExactly(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new HostStoreError('ERANGE', `file ended ${into.length - done} bytes early at offset ${position + done}: it was truncated`);
    done += bytesRead;
  }
}

function sameIdentity(a: ObjectIdentity, b: ObjectIdentity): boolean {
  return a.size === b.size && a.ino === b.ino && a.mtimeNs === b.mtimeNs;
}

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}
