// The host's upload writer: bytes pass to a worker in slabs, which it hashes and
// writes, directly in whole 4 KiB blocks where the file system allows it and through
// the page cache for the rest, and hands back.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { INDEX_TRAILER_SIZE, indexFileBytes } from '../storage/hoststore/merkle-index-file.ts';
import { hashStoredFile, SLAB_BYTES, UploadWriter } from '../storage/hoststore/upload-writer.ts';
import { declaredFor } from './object-protocol.fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const LEAF = 2048;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-upload-writer-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Feed `data` in pieces whose sizes cycle through `pieces`, as batches of chunks arrive. */
async function feed(writer: UploadWriter, data: Buffer, pieces: number[]): Promise<void> {
  for (let at = 0, i = 0; at < data.byteLength; i++) {
    const length = Math.min(pieces[i % pieces.length]!, data.byteLength - at);
    const half = at + Math.floor(length / 2);
    await writer.write([data.subarray(at, half), data.subarray(half, at + length)]);
    at += length;
  }
}

async function stored(path: string, data: Buffer, offset = 0, pieces = [1 * MiB]): Promise<void> {
  const writer = new UploadWriter(path, `${path}.merkle`, data.byteLength, LEAF, offset);
  await feed(writer, data.subarray(offset), pieces);
  const digests = await writer.finish();
  expect(await readFile(path)).toEqual(data);
  expect(digests.root).toBe(declaredFor(data, LEAF).merkleRoot);
  // The index is keyed to the file as synced: its size and inode sit in the trailer.
  const index = await readFile(`${path}.merkle`);
  expect(index.length).toBe(indexFileBytes(data.byteLength));
  expect(index.readBigUInt64BE(index.length - INDEX_TRAILER_SIZE + 16)).toBe(BigInt(data.byteLength));
  expect(index.readBigUInt64BE(index.length - INDEX_TRAILER_SIZE + 24)).toBe(digests.identity.ino);
}

describe('UploadWriter', () => {
  it('stores objects of sizes around the 4 KiB block and the slab, byte-exact, with their digests', async () => {
    for (const size of [0, 1, 4095, 4096, 4097, SLAB_BYTES, 9 * SLAB_BYTES + 4096 * 3 + 5]) {
      const path = join(dir, `object-${size}`);
      await writeFile(path, '');
      await stored(path, randomBytes(size), 0, [1 * MiB, 1000, 64 * KiB + 3]);
    }
  });

  it('resumes after a prefix of any length, hashing the kept bytes from the file', async () => {
    const data = randomBytes(5 * SLAB_BYTES + 123_457);
    for (const offset of [4096, 5000, SLAB_BYTES - 1, data.byteLength]) {
      const path = join(dir, `resumed-${offset}`);
      await writeFile(path, data.subarray(0, offset));
      await stored(path, data, offset, [300 * KiB]);
    }
  });

  it('keeps every byte received when abandoned, for the next put to resume from', async () => {
    const data = randomBytes(2 * MiB + 999);
    const path = join(dir, 'abandoned');
    await writeFile(path, '');
    const writer = new UploadWriter(path, `${path}.merkle`, data.byteLength, LEAF, 0);
    await feed(writer, data.subarray(0, MiB + 4097), [100 * KiB + 1]);
    await writer.abandon();
    expect((await stat(path)).size).toBe(MiB + 4097);
    // An unfinished index is not kept: the resume hashes from byte 0 and writes it again.
    expect(await stat(`${path}.merkle`).catch(() => undefined)).toBeUndefined();
    expect(await readFile(path)).toEqual(data.subarray(0, MiB + 4097));
    await stored(path, data, MiB + 4097);
  });

  it('refuses bytes beyond the declared size and fails finish() before all arrived', async () => {
    const path = join(dir, 'short');
    await writeFile(path, '');
    const writer = new UploadWriter(path, `${path}.merkle`, 10_000, LEAF, 0);
    await expect(writer.write([randomBytes(10_001)])).rejects.toThrow(RangeError);
    await writer.write([randomBytes(9_000)]);
    await expect(writer.finish()).rejects.toThrow(/ended after 9000 of 10000 bytes/);
  });

  it('reports a partial file that cannot be opened on the next write or finish', async () => {
    const writer = new UploadWriter(join(dir, 'missing', 'partial'), join(dir, 'missing', 'partial.merkle'), 5000, LEAF, 0);
    const failed = await writer.write([randomBytes(5000)]).then(() => writer.finish()).catch((err: Error) => err);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(/ENOENT/);
  });

  it('hashes a whole stored object in turns, so another upload on the shared worker is not held up behind it', async () => {
    const big = join(dir, 'big');
    await writeFile(big, '');
    await truncate(big, 256 * MiB);
    const order: string[] = [];
    const hashing = hashStoredFile(big, 256 * MiB, LEAF, `${big}.merkle`).then(() => order.push('whole object hashed'));
    const small = join(dir, 'small');
    await writeFile(small, '');
    const data = randomBytes(100 * KiB);
    const writer = new UploadWriter(small, `${small}.merkle`, data.byteLength, LEAF, 0);
    await writer.write([data]);
    await writer.finish();
    order.push('small upload stored');
    await hashing;
    expect(order).toEqual(['small upload stored', 'whole object hashed']);
    expect((await stat(`${big}.merkle`)).size).toBe(indexFileBytes(256 * MiB));
  });

  it('hashes a stored file as it is', async () => {
    const data = randomBytes(MiB + 3);
    const path = join(dir, 'kept');
    await writeFile(path, data);
    const digests = await hashStoredFile(path, data.byteLength, LEAF);
    expect(digests.root).toBe(declaredFor(data, LEAF).merkleRoot);
    expect(await readFile(path)).toEqual(data);
  });
});
