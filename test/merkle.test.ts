import { createHash, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MERKLE_LEAF_SIZE, MerkleBuilder, merkleLeafCount, merkleProof, merkleProofs, verifyMerkleProof } from '../storage/merkle.ts';
import { referenceLeaves, referenceRoot } from './merkle-reference.ts';

function rootOf(bytes: Buffer, leafSize: number, pieceSizes: number[]): string {
  const builder = new MerkleBuilder(leafSize);
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = pieceSizes[i % pieceSizes.length]!;
    builder.update(bytes.subarray(off, off + n));
    off += n;
  }
  expect(builder.size).toBe(bytes.length);
  return builder.digest();
}

describe('MerkleBuilder', () => {
  it('matches RFC 6962 tree hashing for every leaf count up to 70, whatever the update sizes', () => {
    const leafSize = 16;
    for (let size = 0; size <= 70 * leafSize; size += randomInt(1, 24)) {
      const bytes = randomBytes(size);
      const expected = referenceRoot(bytes, leafSize);
      expect(rootOf(bytes, leafSize, [size || 1])).toBe(expected);
      expect(rootOf(bytes, leafSize, [1, 5, 16, 33])).toBe(expected);
    }
  });

  it('defaults to 2 KiB leaves and matches the reference on a few MB', () => {
    expect(MERKLE_LEAF_SIZE).toBe(2048);
    const bytes = randomBytes(3 * 1024 * 1024 + 777);
    expect(rootOf(bytes, MERKLE_LEAF_SIZE, [65552, 16, 1000000])).toBe(referenceRoot(bytes, MERKLE_LEAF_SIZE));
  });

  it('has SHA-256 of nothing as the empty root, and distinguishes a leaf from its hash', () => {
    expect(new MerkleBuilder().digest()).toBe(createHash('sha256').digest('hex'));
    const leaf = randomBytes(64);
    const oneLeaf = rootOf(leaf, 64, [64]);
    // Two leaves whose concatenation equals... a leaf: domain prefixes keep them apart.
    expect(rootOf(leaf, 32, [64])).not.toBe(oneLeaf);
  });

  it('counts leaves', () => {
    expect(merkleLeafCount(0)).toBe(0);
    expect(merkleLeafCount(1)).toBe(1);
    expect(merkleLeafCount(2048)).toBe(1);
    expect(merkleLeafCount(2049)).toBe(2);
    expect(merkleLeafCount(100, 10)).toBe(10);
  });
});

describe('Merkle proofs', () => {
  it('verify for every leaf of every tree up to 40 leaves', async () => {
    const leafSize = 8;
    for (let count = 1; count <= 40; count++) {
      const bytes = randomBytes(count * leafSize - randomInt(leafSize));
      const leaves = referenceLeaves(bytes, leafSize);
      const root = referenceRoot(bytes, leafSize);
      const all = leaves.map((_, i) => i);
      const { root: computed, proofs } = await merkleProofs((i) => leaves[i]!, count, all);
      expect(computed).toBe(root);
      for (const proof of proofs) {
        expect(proof.leaf.equals(leaves[proof.index]!)).toBe(true);
        expect(proof.path.length).toBeLessThanOrEqual(Math.ceil(Math.log2(count)));
        expect(verifyMerkleProof(root, proof.index, count, proof.leaf, proof.path)).toBe(true);
      }
    }
  });

  it('fail when the leaf, a path hash, the index, the count or the root is altered', async () => {
    const leafSize = 2048;
    const bytes = randomBytes(37 * leafSize + 100);
    const count = merkleLeafCount(bytes.length, leafSize);
    const leaves = referenceLeaves(bytes, leafSize);
    const root = referenceRoot(bytes, leafSize);
    for (const index of [0, 5, 31, 36, 37]) {
      const path = await merkleProof((i) => leaves[i]!, count, index);
      const leaf = Buffer.from(leaves[index]!);
      expect(verifyMerkleProof(root, index, count, leaf, path)).toBe(true);
      expect(verifyMerkleProof(Buffer.from(root, 'hex'), index, count, leaf, path)).toBe(true);

      const badLeaf = Buffer.from(leaf);
      badLeaf[randomInt(badLeaf.length)]! ^= 0x80;
      expect(verifyMerkleProof(root, index, count, badLeaf, path)).toBe(false);
      expect(verifyMerkleProof(root, index, count, leaf.subarray(0, leaf.length - 1), path)).toBe(false);
      for (let level = 0; level < path.length; level++) {
        const badPath = path.map((h) => Buffer.from(h));
        badPath[level]![randomInt(32)]! ^= 1;
        expect(verifyMerkleProof(root, index, count, leaf, badPath)).toBe(false);
      }
      expect(verifyMerkleProof(root, index, count, leaf, path.slice(1))).toBe(false);
      expect(verifyMerkleProof(root, index, count, leaf, [...path, path[0]!])).toBe(false);
      expect(verifyMerkleProof(root, (index + 1) % count, count, leaf, path)).toBe(false);
      // The verifier takes the leaf count from the catalog; a wrong one changes the last leaf's path shape.
      if (index === count - 1) expect(verifyMerkleProof(root, index, count + 1, leaf, path)).toBe(false);
      expect(verifyMerkleProof(root, index, count, leaf, path.map((h) => h.subarray(1)))).toBe(false);
      expect(verifyMerkleProof(createHash('sha256').update('x').digest('hex'), index, count, leaf, path)).toBe(false);
    }
    expect(verifyMerkleProof(root, count, count, leaves[0]!, [])).toBe(false);
  });

  it('reads each leaf once, in order, and answers many samples in one pass', async () => {
    const leafSize = 64;
    const bytes = randomBytes(1000 * leafSize);
    const leaves = referenceLeaves(bytes, leafSize);
    const reads: number[] = [];
    const samples = [999, 0, 500, 500, 77, 512, 511];
    const { proofs } = await merkleProofs(async (i) => (reads.push(i), leaves[i]!), leaves.length, samples);
    expect(reads).toEqual(leaves.map((_, i) => i));
    expect(proofs.map((p) => p.index)).toEqual(samples);
    const root = referenceRoot(bytes, leafSize);
    for (const proof of proofs) expect(verifyMerkleProof(root, proof.index, leaves.length, proof.leaf, proof.path)).toBe(true);
    await expect(merkleProofs((i) => leaves[i]!, leaves.length, [1000])).rejects.toThrow(RangeError);
  });
});
