// The host's Merkle index file of one object, and building it from the object's
// bytes read in order, in the upload worker (upload-writer-worker.ts): while an
// upload arrives (host-store.ts), or from the stored file for MerkleIndexStore
// (merkle-index.ts), which also reads it to prove leaves. Format, costs and why a
// cache the host wrote itself is safe: docs/audit.md.
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
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { assertLeafSize, MERKLE_LEAF_SIZE, MerkleBuilder, merkleLeafCount } from '../merkle.ts';

/** 32 leaves of 2 KiB: a sample costs one 64 KiB read of the object. */
export const INDEX_BLOCK_LEAVES = 32;
/** Hashes per stored group: one 4 KiB page, seven tree levels. */
export const INDEX_GROUP_HASHES = 128;
/**
 * The one leaf size hosts accept, for puts and audits: what every owner's catalog
 * records (storage/merkle.ts). An owner-chosen leaf would let it size the index
 * (at 1 byte, as large as the object) and the host's work per byte.
 */
export const HOSTED_LEAF_SIZE = MERKLE_LEAF_SIZE;

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

/** Bytes of the index file of a hosted object of `size` bytes (about 1/2048 of it): what the host counts against the owner's quota besides the object. */
export function indexFileBytes(size: number): number {
  return indexLength(storedLevels(blockCount(size, HOSTED_LEAF_SIZE)));
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

/** Where an index builder puts finished groups of hashes: a positioned write into the index file being made. */
export type IndexSink = (hashes: Uint8Array, position: number) => void;

/**
 * Builds an object's index from its bytes, fed in order in pieces of any size.
 * Each group of hashes goes to the sink once it is complete, so the builder holds
 * one 4 KiB group per stored level (and the block being hashed), not the index:
 * the file is written in place at its final offsets (padding included: the sink's
 * file is sized to `length` first, zeros). Without a sink only the root is made.
 */
export class MerkleIndexBuilder {
  readonly size: number;
  readonly leafSize: number;
  /** Bytes of the index file, trailer included. */
  readonly length: number;
  readonly #levels: StoredLevel[];
  readonly #sink: IndexSink | undefined;
  /** The group each stored level is filling, and how many hashes each level has. */
  readonly #groups: Buffer[];
  readonly #counts: number[];
  readonly #blockBytes: number;
  #block: MerkleBuilder;
  #fed = 0;
  #root: string | undefined;

  constructor(size: number, leafSize: number, sink?: IndexSink) {
    assertLeafSize(leafSize);
    this.size = size;
    this.leafSize = leafSize;
    this.#levels = storedLevels(blockCount(size, leafSize));
    this.length = indexLength(this.#levels);
    this.#sink = sink;
    this.#groups = this.#levels.map(() => Buffer.alloc(GROUP_BYTES));
    this.#counts = this.#levels.map(() => 0);
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

  /** Root (hex) of the bytes fed; writes the groups still open. Only after the last byte. */
  root(): string {
    if (this.#root !== undefined) return this.#root;
    if (this.#fed !== this.size) throw new Error(`Merkle index of a ${this.size}-byte object fed only ${this.#fed} bytes`);
    if (this.#block.size > 0) this.#endBlock();
    const top = this.#levels.length - 1;
    if (top < 0) return (this.#root = EMPTY_ROOT);
    for (let k = 0; k < top; k++) if (this.#counts[k]! % INDEX_GROUP_HASHES !== 0) this.#endGroup(k);
    const hashes = this.#groups[top]!.subarray(0, this.#counts[top]! * HASH_SIZE);
    this.#sink?.(hashes, this.#levels[top]!.start);
    this.#root = groupTree(hashes).at(-1)![0]!.toString('hex');
    return this.#root;
  }

  /** The index file's trailer, for the object file with this identity (its size must be the one fed); it goes at length - INDEX_TRAILER_SIZE. */
  trailer(identity: ObjectIdentity): Buffer {
    if (identity.size !== this.size) throw new Error(`Merkle index of a ${this.size}-byte object cannot describe a file of ${identity.size} bytes`);
    const root = this.root();
    const trailer = Buffer.alloc(INDEX_TRAILER_SIZE);
    INDEX_MAGIC.copy(trailer, 0);
    trailer.writeUInt32BE(this.leafSize, 4);
    trailer.writeUInt32BE(INDEX_BLOCK_LEAVES, 8);
    trailer.writeUInt32BE(INDEX_GROUP_HASHES, 12);
    trailer.writeBigUInt64BE(BigInt(identity.size), 16);
    trailer.writeBigUInt64BE(identity.ino, 24);
    trailer.writeBigUInt64BE(identity.mtimeNs, 32);
    // The empty object has no stored level; its root is implied.
    if (this.#levels.length) trailer.write(root, 40, 'hex');
    return trailer;
  }

  #endBlock(): void {
    this.#append(0, Buffer.from(this.#block.digest(), 'hex'));
    this.#block = new MerkleBuilder(this.leafSize);
  }

  #append(level: number, hash: Buffer): void {
    const at = this.#counts[level]!++ % INDEX_GROUP_HASHES;
    hash.copy(this.#groups[level]!, at * HASH_SIZE);
    if (level < this.#levels.length - 1 && at === INDEX_GROUP_HASHES - 1) this.#endGroup(level);
  }

  /** Write the level's group being filled and hand its root to the level above. */
  #endGroup(level: number): void {
    const count = this.#counts[level]!;
    const group = Math.floor((count - 1) / INDEX_GROUP_HASHES);
    const hashes = this.#groups[level]!.subarray(0, (count - group * INDEX_GROUP_HASHES) * HASH_SIZE);
    this.#sink?.(hashes, this.#levels[level]!.start + group * GROUP_BYTES);
    this.#append(level + 1, groupTree(hashes).at(-1)![0]!);
  }
}

/**
 * Put a finished index file (synced by its writer) in place. A crash leaves the old
 * index or the new one; a torn index would fail every audit of an intact object.
 * `stillCurrent`, asked just before the rename, can drop a build whose object was
 * replaced meanwhile, so that it does not cover the replacement's index.
 */
export async function publishIndexFile(temporary: string, path: string, stillCurrent?: () => Promise<boolean>): Promise<boolean> {
  try {
    if (stillCurrent && !(await stillCurrent())) return false;
    await mkdir(dirname(path), { recursive: true });
    await rename(temporary, path);
    return true;
  } finally {
    await rm(temporary, { force: true });
  }
}

/** A unique temporary name beside `path`: an upload and a lazy build may make the same index at once. */
export function temporaryIndexPath(path: string): string {
  return `${path}.tmp-${randomBytes(4).toString('hex')}`;
}
