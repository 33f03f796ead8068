// SHA-256 Merkle tree over an object's encrypted bytes, for audits: the owner keeps
// only the root; a host proves it holds sampled leaves by sending them with their
// paths. The tree is RFC 6962's Merkle Tree Hash (Certificate Transparency) over
// fixed-size leaves (docs/object-format.md):
//   leaf  = SHA-256(0x00 || leaf bytes)       (the last leaf may be short)
//   node  = SHA-256(0x01 || left || right)
//   an odd node at the end of a level is promoted unchanged;
//   the empty object's root is SHA-256("").
import { hash } from 'node:crypto';

export const MERKLE_LEAF_SIZE = 2048;
const HASH_SIZE = 32;

// Hashes are carried as 32-character binary (latin1) strings: crypto.hash returns those
// several times faster than Buffers (0.26 vs 0.7-1.2 us for a node), and an object
// has about as many nodes as leaves.
type Digest = string;

const EMPTY_ROOT: Digest = hash('sha256', Buffer.alloc(0), 'binary');

export function assertLeafSize(leafSize: number): void {
  if (!Number.isInteger(leafSize) || leafSize < 1) throw new Error(`Merkle leaf size must be a positive integer, got ${leafSize}`);
}

export function merkleLeafCount(size: number, leafSize: number = MERKLE_LEAF_SIZE): number {
  assertLeafSize(leafSize);
  return Math.ceil(size / leafSize);
}

function leafDigest(leaf: Uint8Array): Digest {
  const prefixed = Buffer.allocUnsafe(leaf.length + 1);
  prefixed[0] = 0;
  prefixed.set(leaf, 1);
  return hash('sha256', prefixed, 'binary');
}

// One scratch buffer for every interior node: the input is always 65 bytes.
const nodeInput = Buffer.alloc(1 + 2 * HASH_SIZE, 1);

function nodeDigest(left: Digest, right: Digest): Digest {
  nodeInput.write(left, 1, 'binary');
  nodeInput.write(right, 1 + HASH_SIZE, 'binary');
  return hash('sha256', nodeInput, 'binary');
}

type MergeObserver = (left: Digest, right: Digest, leftStart: number, rightStart: number, end: number) => void;

/**
 * The right edge of a growing tree: levels[h] holds the root of a complete subtree of
 * 2^h leaves, present exactly when bit h of the leaf count is set.
 */
class Frontier {
  readonly #levels: (Digest | undefined)[] = [];
  readonly #observe: MergeObserver | undefined;
  #count = 0;

  constructor(observe?: MergeObserver) {
    this.#observe = observe;
  }

  push(leafHash: Digest): void {
    let carry = leafHash;
    let height = 0;
    this.#count++;
    for (let left = this.#levels[0]; left; left = this.#levels[++height]) {
      const span = 2 ** height;
      this.#observe?.(left, carry, this.#count - 2 * span, this.#count - span, this.#count);
      carry = nodeDigest(left, carry);
      this.#levels[height] = undefined;
    }
    this.#levels[height] = carry;
  }

  /** Folds the complete subtrees from the right, which promotes odd nodes unchanged. */
  root(): Digest {
    let acc: Digest | undefined;
    let accStart = this.#count;
    for (let height = 0; height < this.#levels.length; height++) {
      const left = this.#levels[height];
      if (!left) continue;
      const leftStart = accStart - 2 ** height;
      if (acc) {
        this.#observe?.(left, acc, leftStart, accStart, this.#count);
        acc = nodeDigest(left, acc);
      } else {
        acc = left;
      }
      accStart = leftStart;
    }
    return acc ?? EMPTY_ROOT;
  }
}

/** Incremental root over bytes fed in pieces of any size. */
export class MerkleBuilder {
  readonly leafSize: number;
  readonly #frontier = new Frontier();
  // The leaf being filled, after its 0x00 domain prefix, so each leaf is one hash call.
  readonly #leaf: Buffer;
  #fill = 0;
  #size = 0;

  constructor(leafSize: number = MERKLE_LEAF_SIZE) {
    assertLeafSize(leafSize);
    this.leafSize = leafSize;
    this.#leaf = Buffer.alloc(1 + leafSize);
  }

  /** Bytes fed so far. */
  get size(): number {
    return this.#size;
  }

  update(bytes: Uint8Array): void {
    this.#size += bytes.length;
    const leafSize = this.leafSize;
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(leafSize - this.#fill, bytes.length - off);
      this.#leaf.set(bytes.subarray(off, off + n), 1 + this.#fill);
      this.#fill += n;
      off += n;
      if (this.#fill === leafSize) {
        this.#frontier.push(hash('sha256', this.#leaf, 'binary'));
        this.#fill = 0;
      }
    }
  }

  /** Root as hex. Call once, after the last update. */
  digest(): string {
    if (this.#fill > 0) {
      this.#frontier.push(hash('sha256', this.#leaf.subarray(0, 1 + this.#fill), 'binary'));
      this.#fill = 0;
    }
    return Buffer.from(this.#frontier.root(), 'binary').toString('hex');
  }
}

export interface MerkleProof {
  index: number;
  leaf: Buffer;
  /** Sibling hashes from the leaf up to the root (levels where the node was promoted have none). */
  path: Buffer[];
}

/**
 * Reads leaf `index` of the object. merkleProofs calls it once per leaf, in ascending
 * order, so it may be backed by one sequential read of the object.
 */
export type LeafReader = (index: number) => Uint8Array | Promise<Uint8Array>;

/** Proofs for several leaves from one pass over the object; `root` is the hex root it computed. */
export async function merkleProofs(readLeaf: LeafReader, leafCount: number, indices: readonly number[]): Promise<{ root: string; proofs: MerkleProof[] }> {
  for (const index of indices) {
    if (!Number.isInteger(index) || index < 0 || index >= leafCount) throw new RangeError(`leaf ${index} is outside the object's ${leafCount} leaves`);
  }
  const targets = [...new Set(indices)].sort((a, b) => a - b);
  const paths = new Map<number, Buffer[]>(targets.map((index) => [index, []]));
  const leaves = new Map<number, Buffer>();
  // Appends `sibling` to the path of every target in [start, end), found by binary search.
  const extend = (start: number, end: number, sibling: Digest): void => {
    let lo = 0;
    let hi = targets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (targets[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < targets.length && targets[i]! < end; i++) paths.get(targets[i]!)!.push(Buffer.from(sibling, 'binary'));
  };
  const frontier = new Frontier((left, right, leftStart, rightStart, end) => {
    extend(leftStart, rightStart, right);
    extend(rightStart, end, left);
  });
  for (let index = 0; index < leafCount; index++) {
    const leaf = await readLeaf(index);
    if (paths.has(index)) leaves.set(index, Buffer.from(leaf));
    frontier.push(leafDigest(leaf));
  }
  const root = Buffer.from(frontier.root(), 'binary').toString('hex');
  return { root, proofs: indices.map((index) => ({ index, leaf: leaves.get(index)!, path: [...paths.get(index)!] })) };
}

/** The path (sibling hashes, leaf to root) proving leaf `index`. */
export async function merkleProof(readLeaf: LeafReader, leafCount: number, index: number): Promise<Buffer[]> {
  const { proofs } = await merkleProofs(readLeaf, leafCount, [index]);
  return proofs[0]!.path;
}

/** Checks that `leafBytes` is leaf `leafIndex` of the `leafCount`-leaf tree with root `root` (hex or raw). */
export function verifyMerkleProof(
  root: string | Uint8Array,
  leafIndex: number,
  leafCount: number,
  leafBytes: Uint8Array,
  path: readonly Uint8Array[],
): boolean {
  if (!Number.isInteger(leafIndex) || leafIndex < 0 || leafIndex >= leafCount) return false;
  const expected = (typeof root === 'string' ? Buffer.from(root, 'hex') : Buffer.from(root)).toString('binary');
  // RFC 9162 section 2.1.3.2: walk up with the leaf's index and the last index.
  let index = leafIndex;
  let last = leafCount - 1;
  let acc = leafDigest(leafBytes);
  for (const siblingBytes of path) {
    if (siblingBytes.length !== HASH_SIZE || last === 0) return false;
    const sibling = Buffer.from(siblingBytes).toString('binary');
    if (index % 2 === 1 || index === last) {
      acc = nodeDigest(sibling, acc);
      // Skip the levels where this node was promoted without a sibling.
      while (index % 2 === 0 && index !== 0) {
        index = Math.floor(index / 2);
        last = Math.floor(last / 2);
      }
    } else {
      acc = nodeDigest(acc, sibling);
    }
    index = Math.floor(index / 2);
    last = Math.floor(last / 2);
  }
  return last === 0 && acc === expected;
}
