import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGE_X25519_HEADER_SIZE,
  AgeEncryptStream,
  CHUNK_SIZE,
  SEALED_CHUNK_SIZE,
  ageEncryptedSize,
  decryptRange,
  encryptedRangeFor,
} from '../storage/age/index.ts';
import { ageRecipientString, x25519PublicFromSecret } from '../storage/keys.ts';

const secret = randomBytes(32);
const recipient = x25519PublicFromSecret(secret);
const CHUNKS_START = AGE_X25519_HEADER_SIZE + 16;

async function encrypt(plain: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([plain]), new AgeEncryptStream(recipient), new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}

async function collect(stream: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const piece of stream) out.push(piece as Buffer);
  return Buffer.concat(out);
}

/** A source over `file` that records every read and serves it in small pieces. */
function recordingSource(file: Buffer) {
  const reads: { offset: number; length: number }[] = [];
  let bytesServed = 0;
  return {
    reads,
    get bytesServed() {
      return bytesServed;
    },
    read(offset: number, length: number): Readable {
      reads.push({ offset, length });
      const bytes = file.subarray(offset, offset + length);
      bytesServed += bytes.length;
      const pieces: Buffer[] = [];
      for (let off = 0; off < bytes.length; off += 10007) pieces.push(bytes.subarray(off, off + 10007));
      return Readable.from(pieces);
    },
  };
}

async function rangeOf(file: Buffer, plainOffset: number, plainLength: number, identity: Uint8Array = secret) {
  const source = recordingSource(file);
  const stream = await decryptRange({ read: (o, l) => source.read(o, l), encryptedSize: file.length, identity, plainOffset, plainLength });
  return { bytes: await collect(stream), source };
}

describe('encryptedRangeFor', () => {
  const plainSize = 3 * CHUNK_SIZE + 100;
  const encryptedSize = ageEncryptedSize(plainSize);

  it('covers whole chunks from the one holding the first byte to the one holding the last', () => {
    expect(encryptedRangeFor({ plainOffset: 0, plainLength: 1, encryptedSize })).toEqual({
      offset: CHUNKS_START,
      length: SEALED_CHUNK_SIZE,
      firstChunk: 0,
      finalChunk: 3,
      skip: 0,
    });
    expect(encryptedRangeFor({ plainOffset: CHUNK_SIZE - 1, plainLength: 2, encryptedSize })).toEqual({
      offset: CHUNKS_START,
      length: 2 * SEALED_CHUNK_SIZE,
      firstChunk: 0,
      finalChunk: 3,
      skip: CHUNK_SIZE - 1,
    });
    expect(encryptedRangeFor({ plainOffset: 3 * CHUNK_SIZE + 5, plainLength: 95, encryptedSize })).toEqual({
      offset: CHUNKS_START + 3 * SEALED_CHUNK_SIZE,
      length: 100 + 16,
      firstChunk: 3,
      finalChunk: 3,
      skip: 5,
    });
  });

  it('is empty for an empty range and refuses one past the end', () => {
    expect(encryptedRangeFor({ plainOffset: plainSize, plainLength: 0, encryptedSize }).length).toBe(0);
    expect(() => encryptedRangeFor({ plainOffset: plainSize - 1, plainLength: 2, encryptedSize })).toThrow(RangeError);
    expect(() => encryptedRangeFor({ plainOffset: -1, plainLength: 1, encryptedSize })).toThrow(RangeError);
  });

  it('refuses sizes no age file can have', () => {
    expect(() => encryptedRangeFor({ plainOffset: 0, plainLength: 0, encryptedSize: CHUNKS_START + 5 })).toThrow(/not a possible size/);
    expect(() => encryptedRangeFor({ plainOffset: 0, plainLength: 0, encryptedSize: CHUNKS_START + SEALED_CHUNK_SIZE + 16 })).toThrow(/not a possible size/);
  });
});

describe('decryptRange', () => {
  const plainSize = 5 * CHUNK_SIZE + 12345;
  let plain: Buffer;
  let file: Buffer;
  beforeAll(async () => {
    plain = randomBytes(plainSize);
    file = await encrypt(plain);
  });

  const check = async (plainOffset: number, plainLength: number): Promise<void> => {
    const { bytes, source } = await rangeOf(file, plainOffset, plainLength);
    expect(bytes.equals(plain.subarray(plainOffset, plainOffset + plainLength))).toBe(true);
    // One header read of exactly header + nonce, then (unless empty) one read of the covering chunks.
    const plan = encryptedRangeFor({ plainOffset, plainLength, encryptedSize: file.length });
    expect(source.reads[0]).toEqual({ offset: 0, length: CHUNKS_START });
    expect(source.reads.slice(1)).toEqual(plan.length === 0 ? [] : [{ offset: plan.offset, length: plan.length }]);
    const chunks = plainLength === 0 ? 0 : Math.floor((plainOffset + plainLength - 1) / CHUNK_SIZE) - Math.floor(plainOffset / CHUNK_SIZE) + 1;
    expect(source.bytesServed).toBeLessThanOrEqual(CHUNKS_START + chunks * SEALED_CHUNK_SIZE);
  };

  it('returns exact bytes at chunk boundaries, across them, in the final chunk, and empty ranges', async () => {
    const cases: [number, number][] = [
      [0, 0],
      [0, 1],
      [0, plainSize],
      [CHUNK_SIZE - 1, 1],
      [CHUNK_SIZE - 1, 2],
      [CHUNK_SIZE, CHUNK_SIZE],
      [CHUNK_SIZE - 10, CHUNK_SIZE + 20],
      [2 * CHUNK_SIZE + 7, 3 * CHUNK_SIZE],
      [5 * CHUNK_SIZE, 12345],
      [plainSize - 1, 1],
      [plainSize, 0],
      [300000, 0],
    ];
    for (const [offset, length] of cases) await check(offset, length);
  });

  it('returns exact bytes for 200 random ranges', async () => {
    for (let i = 0; i < 200; i++) {
      const offset = randomInt(plainSize + 1);
      const length = randomInt(Math.min(plainSize - offset, i % 2 ? 300000 : 3000) + 1);
      await check(offset, length);
    }
  });

  it('handles a file whose final chunk is full', async () => {
    const fullPlain = randomBytes(3 * CHUNK_SIZE);
    const fullFile = await encrypt(fullPlain);
    for (const [offset, length] of [[2 * CHUNK_SIZE, CHUNK_SIZE], [3 * CHUNK_SIZE - 1, 1], [0, 3 * CHUNK_SIZE], [CHUNK_SIZE + 3, 10]] as const) {
      const { bytes } = await rangeOf(fullFile, offset, length);
      expect(bytes.equals(fullPlain.subarray(offset, offset + length))).toBe(true);
    }
  });

  it('reads ranges of files the age CLI made', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-age-range-'));
    try {
      const path = join(dir, 'plain');
      writeFileSync(path, plain);
      const cliFile = execFileSync('age', ['-r', ageRecipientString(recipient), path], { maxBuffer: 16 * 1024 * 1024 });
      const { bytes } = await rangeOf(cliFile, CHUNK_SIZE - 3, 2 * CHUNK_SIZE);
      expect(bytes.equals(plain.subarray(CHUNK_SIZE - 3, 3 * CHUNK_SIZE - 3))).toBe(true);

      // Three recipients: the header outgrows the first read and is read on.
      const others = [randomBytes(32), randomBytes(32)].map((s) => ageRecipientString(x25519PublicFromSecret(s)));
      const bigHeader = execFileSync('age', ['-r', others[0]!, '-r', others[1]!, '-r', ageRecipientString(recipient), path], { maxBuffer: 16 * 1024 * 1024 });
      const big = await rangeOf(bigHeader, 4 * CHUNK_SIZE + 1, 70000);
      expect(big.bytes.equals(plain.subarray(4 * CHUNK_SIZE + 1, 4 * CHUNK_SIZE + 70001))).toBe(true);
      expect(big.source.reads.length).toBe(3);
      expect(big.source.reads[1]!.offset).toBe(CHUNKS_START);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails on a tampered chunk inside the range, a wrong size, a short read, or a wrong identity', async () => {
    const tampered = Buffer.from(file);
    tampered[CHUNKS_START + SEALED_CHUNK_SIZE + 500]! ^= 1;
    await expect(rangeOf(tampered, CHUNK_SIZE, 10)).rejects.toThrow(/chunk 1 failed authentication/);
    // A range outside the tampered chunk does not read it, so it still succeeds.
    expect((await rangeOf(tampered, 0, 10)).bytes.equals(plain.subarray(0, 10))).toBe(true);

    // A recorded size one chunk short makes chunk 4 look final: its last-chunk flag is wrong.
    const short = file.subarray(0, CHUNKS_START + 5 * SEALED_CHUNK_SIZE);
    await expect(rangeOf(short, 4 * CHUNK_SIZE, 10)).rejects.toThrow(/chunk 4 failed authentication/);

    const lying = {
      read: (offset: number, length: number) => Readable.from([file.subarray(offset, offset + Math.max(length - 1, CHUNKS_START))]),
      encryptedSize: file.length,
      identity: secret,
    };
    await expect(collect(await decryptRange({ ...lying, plainOffset: 0, plainLength: 100 }))).rejects.toThrow(/returned \d+ bytes where \d+ were asked/);

    await expect(rangeOf(file, 0, 10, randomBytes(32))).rejects.toThrow(/not encrypted to this identity/);
  });
});
