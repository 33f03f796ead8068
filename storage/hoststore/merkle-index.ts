// A host's Merkle index of each object it stores, so that proving one sampled leaf
// for an audit reads one 64 KiB block of the object and two or three 4 KiB pages
// of stored hashes, instead of the whole object (what merkleProofs alone needs).
// Format, costs and why a cache the host wrote itself is safe: docs/audit.md.
//
// The tree (storage/merkle.ts) is RFC 6962's over fixed-size leaves, which is the
// same as building it level by level: pair neighbours, promote an odd last node
// unchanged. Any run of 2^k nodes starting at a multiple of 2^k is then a subtree,
// and a shorter run at the end of a level reduces to the node above it the same
// way. So the object is cut in blocks of 32 leaves (64 KiB), and the hashes above
// the blocks are kept in groups of 128 (one 4 KiB page): the index stores tree
// levels 0, 7, 14, ... above the blocks, each a list of the roots of the groups
// below. A leaf's path is its path inside its block (hashed from the block's
// bytes), then, for each stored level, its node's siblings inside its group (one
// page read, 127 hashes). The top stored level has at most 128 hashes.
//
// Index file `<home>/hosted/<owner>/merkle/<first 2 chars of id>/<id>`:
//   the stored levels, lowest first, 32 bytes per hash; every level but the top is
//   zero-padded to a whole number of 4 KiB groups, so groups sit on page boundaries;
//   then a 72-byte trailer:
//   0  "HMI1"   4 leaf size (u32 BE)   8 leaves per block (u32 BE)   12 hashes per group (u32 BE)
//   16 object size (u64 BE)   24 object inode (u64 BE)   32 object mtime in ns (u64 BE)   40 root (32 bytes)
// The index is valid only for the object file with that size, inode and mtime;
// anything else (a new upload is a new inode, an edit a new mtime) rebuilds it.
import { hash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { assertLeafSize, MERKLE_LEAF_SIZE, MerkleBuilder, merkleLeafCount, merkleProofs, type MerkleProof } from '../merkle.ts';
import { HostStoreError, type HostStore } from './host-store.ts';

/** 32 leaves of 2 KiB: a sample costs one 64 KiB read of the object. */
export const INDEX_BLOCK_LEAVES = 32;
/** Hashes per stored group: one 4 KiB page, seven tree levels. */
export const INDEX_GROUP_HASHES = 128;

const MAGIC = Buffer.from('HMI1', 'latin1');
const TRAILER_SIZE = 72;
const HASH_SIZE = 32;
const GROUP_BYTES = INDEX_GROUP_HASHES * HASH_SIZE;
const BUILD_READ = 1024 * 1024;
const EMPTY_ROOT = hash('sha256', Buffer.alloc(0), 'hex');

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

interface ObjectIdentity {
  size: number;
  ino: bigint;
  mtimeNs: bigint;
}

/** Where each stored level sits in the index file. */
interface StoredLevel {
  count: number;
  start: number;
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
    assertLeafSize(leafSize);
    const objectPath = this.#store.objectFile(owner, id);
    const indexPath = indexPathFor(objectPath, id);
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
   * Build every missing or stale index (for objects with `leafSize` leaves, the
   * catalog's default) and remove indexes whose object is gone. For a background
   * task after uploads, so that audits find the indexes ready.
   */
  async buildMissing(leafSize: number = MERKLE_LEAF_SIZE): Promise<{ objects: number; built: number; removed: number }> {
    const before = this.counters.builds;
    let objects = 0;
    let removed = 0;
    for (const owner of await this.#store.owners()) {
      for await (const info of this.#store.list(owner)) {
        try {
          await (await this.open(owner, info.name, leafSize)).close();
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
    const indexRoot = indexDirOf(this.#store.objectFile(owner, '00'));
    for (const shard of await readdirIfExists(indexRoot)) {
      for (const name of await readdirIfExists(join(indexRoot, shard))) {
        const id = name.endsWith('.tmp') ? name.slice(0, -'.tmp'.length) : name;
        if (this.#building.has(join(indexRoot, shard, id))) continue;
        let objectExists = false;
        try {
          objectExists = (await stat(this.#store.objectFile(owner, id))).isFile();
        } catch {
          objectExists = false;
        }
        if (objectExists && name === id) continue;
        await rm(join(indexRoot, shard, name), { force: true });
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
      const trailer = Buffer.alloc(TRAILER_SIZE);
      const valid = (await handle.stat()).size === length
        && (await handle.read(trailer, 0, TRAILER_SIZE, length - TRAILER_SIZE)).bytesRead === TRAILER_SIZE
        && trailer.subarray(0, 4).equals(MAGIC)
        && trailer.readUInt32BE(4) === leafSize
        && trailer.readUInt32BE(8) === INDEX_BLOCK_LEAVES
        && trailer.readUInt32BE(12) === INDEX_GROUP_HASHES
        && trailer.readBigUInt64BE(16) === BigInt(identity.size)
        && trailer.readBigUInt64BE(24) === identity.ino
        && trailer.readBigUInt64BE(32) === identity.mtimeNs;
      this.counters.indexBytesRead += TRAILER_SIZE;
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

  async #write(objectPath: string, indexPath: string, owner: string, id: string, leafSize: number): Promise<void> {
    const object = await openObject(objectPath, owner, id);
    try {
      const identity = identityOf(await object.stat({ bigint: true }));
      const levels = storedLevels(blockCount(identity.size, leafSize));
      // Memory: about 32 bytes per 64 KiB block (2 MiB for a 4 GiB volume).
      const file = Buffer.alloc(indexLength(levels));

      const blockBytes = INDEX_BLOCK_LEAVES * leafSize;
      const chunk = Buffer.allocUnsafe(blockBytes * Math.max(1, Math.floor(BUILD_READ / blockBytes)));
      let block = 0;
      for (let position = 0; position < identity.size; ) {
        const length = Math.min(chunk.length, identity.size - position);
        await readExactly(object, chunk.subarray(0, length), position);
        this.counters.buildBytesRead += length;
        for (let offset = 0; offset < length; offset += blockBytes) {
          const builder = new MerkleBuilder(leafSize);
          builder.update(chunk.subarray(offset, Math.min(offset + blockBytes, length)));
          file.write(builder.digest(), block++ * HASH_SIZE, 'hex');
        }
        position += length;
      }
      for (let k = 1; k < levels.length; k++) {
        const below = levels[k - 1]!;
        for (let group = 0; group < levels[k]!.count; group++) {
          const tree = groupTree(file.subarray(below.start + group * GROUP_BYTES, below.start + Math.min(below.count, (group + 1) * INDEX_GROUP_HASHES) * HASH_SIZE));
          tree.at(-1)![0]!.copy(file, levels[k]!.start + group * HASH_SIZE);
        }
      }
      const trailer = file.subarray(file.length - TRAILER_SIZE);
      MAGIC.copy(trailer, 0);
      trailer.writeUInt32BE(leafSize, 4);
      trailer.writeUInt32BE(INDEX_BLOCK_LEAVES, 8);
      trailer.writeUInt32BE(INDEX_GROUP_HASHES, 12);
      trailer.writeBigUInt64BE(BigInt(identity.size), 16);
      trailer.writeBigUInt64BE(identity.ino, 24);
      trailer.writeBigUInt64BE(identity.mtimeNs, 32);
      const top = levels.at(-1);
      if (top) groupTree(file.subarray(top.start, top.start + top.count * HASH_SIZE)).at(-1)![0]!.copy(trailer, 40);

      const after = identityOf(await object.stat({ bigint: true }));
      if (after.size !== identity.size || after.mtimeNs !== identity.mtimeNs) {
        throw new HostStoreError('EINVAL', `object ${id} of ${owner} was modified while its Merkle index was built; try again`);
      }
      await mkdir(dirname(indexPath), { recursive: true });
      const temporary = `${indexPath}.tmp`;
      const out = await open(temporary, 'w');
      try {
        await out.writeFile(file);
        // A torn index after a crash would fail every audit of an intact object.
        await out.datasync();
      } finally {
        await out.close();
      }
      await rename(temporary, indexPath);
      this.counters.builds++;
    } finally {
      await object.close();
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
  /** Root of the bytes this host holds (hex), as computed when the index was built. */
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

function blockCount(size: number, leafSize: number): number {
  return Math.ceil(merkleLeafCount(size, leafSize) / INDEX_BLOCK_LEAVES);
}

/** Tree levels 0, 7, 14, ... above the blocks, up to the first with at most one group; groups of every lower level start on a 4 KiB boundary. */
function storedLevels(blocks: number): StoredLevel[] {
  const levels: StoredLevel[] = [];
  let start = 0;
  for (let count = blocks; count > 0; count = Math.ceil(count / INDEX_GROUP_HASHES)) {
    levels.push({ count, start });
    if (count <= INDEX_GROUP_HASHES) break;
    start += Math.ceil(count / INDEX_GROUP_HASHES) * GROUP_BYTES;
  }
  return levels;
}

function indexLength(levels: readonly StoredLevel[]): number {
  const top = levels.at(-1);
  return (top ? top.start + top.count * HASH_SIZE : 0) + TRAILER_SIZE;
}

/**
 * The tree over one group (consecutive hashes of one tree level, starting at a
 * multiple of the group size), level by level up to its single top node:
 * RFC 6962 interior nodes, an odd last node promoted unchanged.
 */
function groupTree(group: Buffer): Buffer[][] {
  let level: Buffer[] = [];
  for (let at = 0; at < group.length; at += HASH_SIZE) level.push(group.subarray(at, at + HASH_SIZE));
  const levels = [level];
  const input = Buffer.alloc(1 + 2 * HASH_SIZE, 1);
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      if (i + 1 === level.length) {
        next.push(level[i]!);
      } else {
        level[i]!.copy(input, 1);
        level[i + 1]!.copy(input, 1 + HASH_SIZE);
        next.push(hash('sha256', input, 'buffer'));
      }
    }
    levels.push(next);
    level = next;
  }
  return levels;
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

/** `<owner dir>/merkle`, beside `<owner dir>/objects`, for an object stored at `<owner dir>/objects/<shard>/<id>`. */
function indexDirOf(objectPath: string): string {
  return join(dirname(dirname(dirname(objectPath))), 'merkle');
}

function indexPathFor(objectPath: string, id: string): string {
  return join(indexDirOf(objectPath), id.slice(0, 2), id);
}

async function openObject(path: string, owner: string, id: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if (isNotFound(err)) throw new HostStoreError('ENOOBJECT', `object ${id} is not stored here for ${owner}`);
    throw err;
  }
}

function identityOf(info: { size: bigint; ino: bigint; mtimeNs: bigint }): ObjectIdentity {
  return { size: Number(info.size), ino: info.ino, mtimeNs: info.mtimeNs };
}

async function readExactly(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new HostStoreError('ERANGE', `file ended ${into.length - done} bytes early at offset ${position + done}: it was truncated`);
    done += bytesRead;
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

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}
