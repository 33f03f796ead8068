// The host's Merkle index (storage/hoststore/merkle-index.ts), as an upload writes
// it and as a build from the stored file writes it, against the plain RFC 6962
// reference: same roots, proofs that verify and equal what a whole-object pass
// produces, reads of one block per sample, and rebuilds when the object changes.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostStore, HostStoreError } from '../storage/hoststore/host-store.ts';
import { INDEX_BLOCK_LEAVES, MerkleIndexStore } from '../storage/hoststore/merkle-index.ts';
import { MerkleBuilder, merkleLeafCount, merkleProofs, verifyMerkleProof } from '../storage/merkle.ts';
import { readKeptHash } from '../storage/hoststore/kept-hash.ts';
import { referenceRoot } from './merkle-reference.ts';
import { setMtimeNs } from './audit-fixture.ts';
import { declaredFor } from './object-protocol.fixture.ts';

const OWNER = '12D3KooWOwnerOfTheseObjects';
const LEAF = 2048;
const BLOCK = INDEX_BLOCK_LEAVES * LEAF;


let home: string;
let store: HostStore;
let index: MerkleIndexStore;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'hearth-audit-index-'));
  store = new HostStore({ home, quotaFor: () => Infinity, deleteDelay: 0 });
  index = new MerkleIndexStore({ store });
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

/** Store through the host store's upload path, which writes the index for `leafSize` as the bytes arrive. */
async function put(id: string, bytes: Buffer, leafSize = LEAF): Promise<void> {
  const upload = await store.beginPut(OWNER, id, declaredFor(bytes, leafSize));
  if (bytes.length) await upload.write([bytes]);
  await upload.finish();
}

/** As if the object was stored before hosts indexed uploads, or its index was lost. */
async function dropIndex(id: string): Promise<void> {
  await rm(store.indexFile(OWNER, id));
}

async function expectReference(id: string, bytes: Buffer, leafSize: number): Promise<void> {
  const size = bytes.length;
  const object = await index.open(OWNER, id, leafSize);
  try {
    const root = referenceRoot(bytes, leafSize);
    expect(object.root).toBe(root);
    const leafCount = merkleLeafCount(size, leafSize);
    expect(object.leafCount).toBe(leafCount);
    const indices = leafCount <= 200 ? Array.from({ length: leafCount }, (_, i) => i) : [0, 1, 31, 32, 33, 63, 64, 1000, 2047, leafCount - 2, leafCount - 1];
    const proofs = await object.prove(indices);
    const whole = await merkleProofs((i) => bytes.subarray(i * leafSize, (i + 1) * leafSize), leafCount, indices);
    expect(whole.root).toBe(root);
    for (let k = 0; k < indices.length; k++) {
      expect(proofs[k]!.index).toBe(indices[k]);
      expect(proofs[k]!.leaf.equals(bytes.subarray(indices[k]! * leafSize, (indices[k]! + 1) * leafSize))).toBe(true);
      expect(proofs[k]!.path.map((h) => h.toString('hex'))).toEqual(whole.proofs[k]!.path.map((h) => h.toString('hex')));
      expect(verifyMerkleProof(root, indices[k]!, leafCount, proofs[k]!.leaf, proofs[k]!.path)).toBe(true);
    }
  } finally {
    await object.close();
  }
}

describe('Merkle index', () => {
  const cases: Array<[string, number, number]> = [
    ['empty', 0, LEAF],
    ['one byte', 1, LEAF],
    ['one leaf', LEAF, LEAF],
    ['two leaves, short last', LEAF + 1, LEAF],
    ['one full block', BLOCK, LEAF],
    ['a block and a leaf', BLOCK + 10, LEAF],
    ['three blocks', 3 * BLOCK, LEAF],
    ['five blocks and a bit', 5 * BLOCK + 3000, LEAF],
    ['100 blocks and a short block', 100 * BLOCK + 5000, LEAF],
  ];
  for (const [name, size, leafSize] of cases) {
    it(`${name} (${size} bytes, ${leafSize}-byte leaves): root and every proof match the reference, from the upload's index and from a build`, async () => {
      const bytes = randomBytes(size);
      const id = `obj-${size}-${leafSize}`;
      await put(id, bytes, leafSize);
      const uploadIndex = await readFile(store.indexFile(OWNER, id));
      await expectReference(id, bytes, leafSize);
      expect(index.counters.builds).toBe(0);

      await dropIndex(id);
      await expectReference(id, bytes, leafSize);
      expect(index.counters).toMatchObject({ builds: 1, buildBytesRead: size });
      // Both ways give the same file, byte for byte.
      expect((await readFile(store.indexFile(OWNER, id))).equals(uploadIndex)).toBe(true);
    });
  }

  it('is written by the upload, then a proof reads one 64 KiB block of the object and a path of stored hashes', async () => {
    const size = 200 * BLOCK;
    await put('big', randomBytes(size));

    const before = { ...index.counters };
    const object = await index.open(OWNER, 'big', LEAF);
    await object.prove([5000]);
    await object.close();
    expect(index.counters.builds).toBe(0);
    expect(index.counters.buildBytesRead).toBe(0);
    expect(index.counters.objectBytesRead - before.objectBytesRead).toBe(BLOCK);
    // The trailer at open, then one group (a page) per stored level: 200 blocks are stored as 2 groups, and their 2 roots.
    expect(index.counters.indexBytesRead - before.indexBytesRead).toBe(72 + (200 - 128) * 32 + 2 * 32);
    const indexFile = join(home, 'hosted', OWNER, 'merkle', 'bi', 'big');
    expect((await stat(indexFile)).size).toBe(2 * 4096 + 2 * 32 + 72);
  });

  it('three stored levels (a 1 GiB object): every proof checked against a streamed root', async () => {
    const size = 1024 * 1024 * 1024 + 12345;
    const key = randomBytes(16);
    const chunkOf = (i: number): Buffer => createCipheriv('aes-128-ctr', key, Buffer.alloc(16, i)).update(Buffer.alloc(Math.min(8 * 1024 * 1024, size - i * 8 * 1024 * 1024)));
    const chunks = Math.ceil(size / (8 * 1024 * 1024));
    const merkle = new MerkleBuilder(LEAF);
    for (let i = 0; i < chunks; i++) {
      const chunk = chunkOf(i);
      merkle.update(chunk);
    }
    const root = merkle.digest();
    const upload = await store.beginPut(OWNER, 'huge', { size, merkleRoot: root, leafSize: LEAF });
    for (let i = 0; i < chunks; i++) await upload.write([chunkOf(i)]);
    await upload.finish();
    expect(await readKeptHash(join(home, 'hosted'), OWNER, 'huge')).toEqual({ merkleRoot: root, leafSize: LEAF, size });

    const object = await index.open(OWNER, 'huge', LEAF);
    expect(index.counters.builds).toBe(0);
    expect(object.root).toBe(root);
    const leafCount = object.leafCount;
    const last = leafCount - 1;
    // Group, level and object edges: the first and last leaves of blocks, groups of blocks and groups of groups.
    const indices = [0, 31, 32, 128 * 32 - 1, 128 * 32, 128 * 128 * 32 - 1, 128 * 128 * 32, last - 1, last, 123_457, 400_001];
    const proofs = await object.prove(indices);
    await object.close();
    for (const proof of proofs) {
      expect(verifyMerkleProof(root, proof.index, leafCount, proof.leaf, proof.path)).toBe(true);
      expect(verifyMerkleProof(root, proof.index === 0 ? 1 : proof.index - 1, leafCount, proof.leaf, proof.path)).toBe(false);
    }
  }, 120_000);

  it('concurrent opens share one build', async () => {
    await put('shared', randomBytes(10 * BLOCK));
    await dropIndex('shared');
    const objects = await Promise.all(Array.from({ length: 5 }, () => index.open(OWNER, 'shared', LEAF)));
    await Promise.all(objects.map((o) => o.close()));
    expect(index.counters.builds).toBe(1);
  });

  it('follows a repaired object (the upload writes its index), is rebuilt when the object is edited in place, and serves 2 KiB leaves only', async () => {
    const bytes = randomBytes(4 * BLOCK);
    await put('changing', bytes);
    await (await index.open(OWNER, 'changing', LEAF)).close();

    // Damaged in place: the index no longer matches the file's mtime and is built again, from what is there.
    const handle = await open(store.objectFile(OWNER, 'changing'), 'r+');
    await handle.write(Buffer.from([bytes[100]! ^ 0xff]), 0, 1, 100);
    await handle.close();
    let object = await index.open(OWNER, 'changing', LEAF);
    expect(index.counters.builds).toBe(1);
    expect(object.root).not.toBe(referenceRoot(bytes, LEAF));
    await object.close();

    // The owner's repair: the same bytes again, published with the index written while they arrived.
    await put('changing', bytes);
    object = await index.open(OWNER, 'changing', LEAF);
    expect(object.root).toBe(referenceRoot(bytes, LEAF));
    await object.close();
    expect(index.counters.builds).toBe(1);

    // Another leaf size would mean another index, as large as the object at 1-byte leaves: refused.
    for (const leafSize of [1, 1024, 4096]) await expect(index.open(OWNER, 'changing', leafSize)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(store.beginPut(OWNER, 'other', declaredFor(bytes, 1))).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/leafSize must be 2048/) });
    expect(index.counters.builds).toBe(1);
  });

  it('a kept index (same inode, size and mtime) still exposes damage in the block of a sampled leaf', async () => {
    const bytes = randomBytes(8 * BLOCK);
    const root = referenceRoot(bytes, LEAF);
    await put('rotting', bytes);
    await (await index.open(OWNER, 'rotting', LEAF)).close();

    // Bit rot: the bytes change, the file's metadata does not.
    const path = store.objectFile(OWNER, 'rotting');
    const { mtimeNs } = await stat(path, { bigint: true });
    const handle = await open(path, 'r+');
    await handle.write(Buffer.from([bytes[3 * BLOCK + 5]! ^ 1]), 0, 1, 3 * BLOCK + 5);
    await handle.close();
    setMtimeNs(path, mtimeNs);

    const object = await index.open(OWNER, 'rotting', LEAF);
    expect(index.counters.builds).toBe(0);
    expect(object.root).toBe(root);
    const leafCount = object.leafCount;
    const [damagedLeaf, sameBlock, otherBlock] = await object.prove([3 * 32, 3 * 32 + 7, 5 * 32]);
    await object.close();
    expect(verifyMerkleProof(root, damagedLeaf!.index, leafCount, damagedLeaf!.leaf, damagedLeaf!.path)).toBe(false);
    expect(verifyMerkleProof(root, sameBlock!.index, leafCount, sameBlock!.leaf, sameBlock!.path)).toBe(false);
    expect(verifyMerkleProof(root, otherBlock!.index, leafCount, otherBlock!.leaf, otherBlock!.path)).toBe(true);
  });

  it('refuses a missing object with ENOOBJECT and a leaf outside the object', async () => {
    await expect(index.open(OWNER, 'absent', LEAF)).rejects.toMatchObject({ code: 'ENOOBJECT' });
    await expect(index.open(OWNER, 'absent', LEAF)).rejects.toBeInstanceOf(HostStoreError);
    await put('small', randomBytes(3 * LEAF));
    const object = await index.open(OWNER, 'small', LEAF);
    await expect(object.prove([3])).rejects.toThrow(/outside the object's 3 leaves/);
    await object.close();
  });

  it('buildMissing indexes objects that have no index and removes indexes of objects that are gone', async () => {
    await put('aa1', randomBytes(BLOCK + 1));
    await put('bb2', randomBytes(2 * BLOCK));
    await put('cc3', randomBytes(3 * BLOCK));
    expect(await index.buildMissing()).toEqual({ objects: 3, built: 0, removed: 0 });
    await dropIndex('aa1');
    await dropIndex('bb2');
    expect(await index.buildMissing()).toEqual({ objects: 3, built: 2, removed: 0 });
    expect(await index.buildMissing()).toEqual({ objects: 3, built: 0, removed: 0 });
    // A purge removes the index with the object; one lost some other way leaves an orphan.
    await store.delete(OWNER, 'cc3');
    await store.purgeExpired();
    expect(existsSync(store.indexFile(OWNER, 'cc3'))).toBe(false);
    await rm(store.objectFile(OWNER, 'aa1'));
    expect(await index.buildMissing()).toEqual({ objects: 1, built: 0, removed: 1 });
    expect(existsSync(join(home, 'hosted', OWNER, 'merkle', 'aa', 'aa1'))).toBe(false);
    expect((await readFile(join(home, 'hosted', OWNER, 'merkle', 'bb', 'bb2'))).subarray(-72, -68).toString()).toBe('HMI1');
  });
});
