// The host's Merkle index file of one object, and building it from the object's
// bytes read in order: by the host store while an upload arrives (host-store.ts),
// or by MerkleIndexStore from the stored file (merkle-index.ts), which also reads
// it to prove leaves. Format, costs and why a cache the host wrote itself is safe:
// docs/audit.md.
//
// The tree (storage/merkle.ts) is RFC 6962's over fixed-size leaves, which is the
// same as building it level by level: pair neighbours, promote an odd last node
// unchanged. Any run of 2^k nodes starting at a multiple of 2^k is then a subtree,
// and a shorter run at the end of a level reduces to the node above it the same
// way. So the object is cut in blocks of 32 leaves (64 KiB), and the hashes above
// the blocks are kept in groups of 128 (one 4 KiB page): the index stores tree
// levels 0, 7, 14, ... above the blocks, each a list of the roots of the groups
// below. The top stored level has at most 128 hashes.
//
// Index file `<home>/hosted/<owner>/merkle/<first 2 chars of id>/<id>`:
//   the stored levels, lowest first, 32 bytes per hash; every level but the top is
//   zero-padded to a whole number of 4 KiB groups, so groups sit on page boundaries;
//   then a 72-byte trailer:
//   0  "HMI1"   4 leaf size (u32 BE)   8 leaves per block (u32 BE)   12 hashes per group (u32 BE)
//   16 object size (u64 BE)   24 object inode (u64 BE)   32 object mtime in ns (u64 BE)   40 root (32 bytes)
// The index is valid only for the object file with that size, inode and mtime.
import { hash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { assertLeafSize, MerkleBuilder, merkleLeafCount } from '../merkle.ts';

/** 32 leaves of 2 KiB: a sample costs one 64 KiB read of the object. */
export const INDEX_BLOCK_LEAVES = 32;
/** Hashes per stored group: one 4 KiB page, seven tree levels. */
export const INDEX_GROUP_HASHES = 128;
/**
 * Largest leaf an index is built for, as audits allow (AUDIT_LIMITS.maxLeafSize):
 * a block, read whole to prove one leaf, stays at most 2 MiB.
 */
export const MAX_INDEXED_LEAF_SIZE = 64 * 1024;

export const INDEX_MAGIC = Buffer.from('HMI1', 'latin1');
export const INDEX_TRAILER_SIZE = 72;
export const HASH_SIZE = 32;
export const GROUP_BYTES = INDEX_GROUP_HASHES * HASH_SIZE;
export const EMPTY_ROOT = hash('sha256', Buffer.alloc(0), 'hex');

/** What ties an index to one version of the object file. */
export interface ObjectIdentity {
  size: number;
  ino: bigint;
  mtimeNs: bigint;
}

/** Where each stored level sits in the index file. */
export interface StoredLevel {
  count: number;
  start: number;
}

export function identityOf(info: { size: bigint; ino: bigint; mtimeNs: bigint }): ObjectIdentity {
  return { size: Number(info.size), ino: info.ino, mtimeNs: info.mtimeNs };
}

export function blockCount(size: number, leafSize: number): number {
  return Math.ceil(merkleLeafCount(size, leafSize) / INDEX_BLOCK_LEAVES);
}

/** Tree levels 0, 7, 14, ... above the blocks, up to the first with at most one group; groups of every lower level start on a 4 KiB boundary. */
export function storedLevels(blocks: number): StoredLevel[] {
  const levels: StoredLevel[] = [];
  let start = 0;
  for (let count = blocks; count > 0; count = Math.ceil(count / INDEX_GROUP_HASHES)) {
    levels.push({ count, start });
    if (count <= INDEX_GROUP_HASHES) break;
    start += Math.ceil(count / INDEX_GROUP_HASHES) * GROUP_BYTES;
  }
  return levels;
}

export function indexLength(levels: readonly StoredLevel[]): number {
  const top = levels.at(-1);
  return (top ? top.start + top.count * HASH_SIZE : 0) + INDEX_TRAILER_SIZE;
}

/**
 * The tree over one group (consecutive hashes of one tree level, starting at a
 * multiple of the group size), level by level up to its single top node:
 * RFC 6962 interior nodes, an odd last node promoted unchanged.
 */
export function groupTree(group: Buffer): Buffer[][] {
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

/**
 * Builds an object's index from its bytes, fed in order in pieces of any size.
 * Holds the whole index (about 1/2048 of the object) in memory until it is written.
 */
export class MerkleIndexBuilder {
  readonly size: number;
  readonly leafSize: number;
  readonly #levels: StoredLevel[];
  readonly #file: Buffer;
  readonly #blockBytes: number;
  #block: MerkleBuilder;
  #blocks = 0;
  #fed = 0;
  #root: string | undefined;

  constructor(size: number, leafSize: number) {
    assertLeafSize(leafSize);
    this.size = size;
    this.leafSize = leafSize;
    this.#levels = storedLevels(blockCount(size, leafSize));
    this.#file = Buffer.alloc(indexLength(this.#levels));
    this.#blockBytes = INDEX_BLOCK_LEAVES * leafSize;
    this.#block = new MerkleBuilder(leafSize);
  }

  update(bytes: Uint8Array): void {
    if (this.#root !== undefined || this.#fed + bytes.length > this.size) throw new RangeError(`Merkle index of a ${this.size}-byte object fed ${this.#fed + bytes.length} bytes`);
    for (let offset = 0; offset < bytes.length; ) {
      const length = Math.min(this.#blockBytes - this.#block.size, bytes.length - offset);
      this.#block.update(bytes.subarray(offset, offset + length));
      offset += length;
      if (this.#block.size === this.#blockBytes) this.#endBlock();
    }
    this.#fed += bytes.length;
  }

  /** Root (hex) of the bytes fed; computes the stored levels above the blocks. Only after the last byte. */
  root(): string {
    if (this.#root !== undefined) return this.#root;
    if (this.#fed !== this.size) throw new Error(`Merkle index of a ${this.size}-byte object fed only ${this.#fed} bytes`);
    if (this.#block.size > 0) this.#endBlock();
    const levels = this.#levels;
    for (let k = 1; k < levels.length; k++) {
      const below = levels[k - 1]!;
      for (let group = 0; group < levels[k]!.count; group++) {
        const hashes = this.#file.subarray(below.start + group * GROUP_BYTES, below.start + Math.min(below.count, (group + 1) * INDEX_GROUP_HASHES) * HASH_SIZE);
        groupTree(hashes).at(-1)![0]!.copy(this.#file, levels[k]!.start + group * HASH_SIZE);
      }
    }
    const top = levels.at(-1);
    this.#root = top ? groupTree(this.#file.subarray(top.start, top.start + top.count * HASH_SIZE)).at(-1)![0]!.toString('hex') : EMPTY_ROOT;
    return this.#root;
  }

  /** The index file's bytes, for the object file with this identity (its size must be the one fed). */
  file(identity: ObjectIdentity): Buffer {
    if (identity.size !== this.size) throw new Error(`Merkle index of a ${this.size}-byte object cannot describe a file of ${identity.size} bytes`);
    const root = this.root();
    const trailer = this.#file.subarray(this.#file.length - INDEX_TRAILER_SIZE);
    INDEX_MAGIC.copy(trailer, 0);
    trailer.writeUInt32BE(this.leafSize, 4);
    trailer.writeUInt32BE(INDEX_BLOCK_LEAVES, 8);
    trailer.writeUInt32BE(INDEX_GROUP_HASHES, 12);
    trailer.writeBigUInt64BE(BigInt(identity.size), 16);
    trailer.writeBigUInt64BE(identity.ino, 24);
    trailer.writeBigUInt64BE(identity.mtimeNs, 32);
    // The empty object has no stored level; its root is implied.
    if (this.#levels.length) trailer.write(root, 40, 'hex');
    return this.#file;
  }

  #endBlock(): void {
    this.#file.write(this.#block.digest(), this.#blocks++ * HASH_SIZE, 'hex');
    this.#block = new MerkleBuilder(this.leafSize);
  }
}

/**
 * Write an index file whole: a crash leaves the old one or the new one, and a torn
 * index would fail every audit of an intact object, so it is synced first. The
 * temporary name is unique: an upload and a lazy build may write the same index
 * at once. `stillCurrent`, asked just before the rename, can drop a build whose
 * object was replaced meanwhile, so that it does not cover the replacement's index.
 */
export async function writeIndexFile(path: string, contents: Buffer, stillCurrent?: () => Promise<boolean>): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    const out = await open(temporary, 'wx');
    try {
      await out.writeFile(contents);
      await out.datasync();
    } finally {
      await out.close();
    }
    if (stillCurrent && !(await stillCurrent())) {
      await rm(temporary, { force: true });
      return false;
    }
    await rename(temporary, path);
    return true;
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}
