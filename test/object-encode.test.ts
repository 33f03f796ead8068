import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createHmac, randomBytes, randomInt } from 'node:crypto';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ageEncryptedSize } from '../storage/age/index.ts';
import { ageSecretKeyString, x25519PublicFromSecret } from '../storage/keys.ts';
import { MerkleBuilder } from '../storage/merkle.ts';
import { encodeObject, ObjectEncoderPool, objectId, type EncodedObject } from '../storage/objects/encode.ts';
import { referenceRoot } from './merkle-reference.ts';

const secret = randomBytes(32);
const recipient = x25519PublicFromSecret(secret);
let dir: string;
let keyFile: string;
let pool: ObjectEncoderPool;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-object-'));
  keyFile = join(dir, 'key.txt');
  writeFileSync(keyFile, `${ageSecretKeyString(secret)}\n`);
  pool = new ObjectEncoderPool();
});
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `bytes` as a stream of randomly sized pieces. */
function streamOf(bytes: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let off = 0; off < bytes.length; ) {
    const n = randomInt(1, 300000);
    pieces.push(bytes.subarray(off, off + n));
    off += n;
  }
  return Readable.from(pieces);
}

let fileCounter = 0;
async function encodeToFile(plain: Buffer, leafSize?: number): Promise<{ result: EncodedObject; file: Buffer; path: string }> {
  const path = join(dir, `object-${fileCounter++}.age`);
  const result = await pool.encode({ plaintext: streamOf(plain), recipient, output: createWriteStream(path), leafSize });
  return { result, file: readFileSync(path), path };
}

function ageDecrypt(path: string): Buffer {
  return execFileSync('age', ['-d', '-i', keyFile, path], { maxBuffer: 64 * 1024 * 1024 });
}

function expectMatchesIndependentComputation(plain: Buffer, file: Buffer, result: EncodedObject, leafSize = 2048): void {
  expect(result.plainSize).toBe(plain.length);
  expect(result.plainDigest).toBe(createHash('sha256').update(plain).digest('hex'));
  expect(result.encryptedSize).toBe(file.length);
  expect(result.encryptedSize).toBe(ageEncryptedSize(plain.length));
  expect(result.leafSize).toBe(leafSize);
  expect(result.merkleRoot).toBe(referenceRoot(file, leafSize));
}

/**
 * `pieces` x 64 KiB of plaintext and an output that takes 1 ms per write; maxLag() is
 * the most bytes read but not yet written at any time, which backpressure bounds.
 */
function slowOutputOf(pieces: number): { plaintext: Readable; output: Writable; maxLag: () => number } {
  let pulled = 0;
  let written = 0;
  let maxLag = 0;
  const piece = randomBytes(64 * 1024);
  async function* input() {
    for (let i = 0; i < pieces; i++) {
      pulled += piece.length;
      yield piece;
    }
  }
  const output = new Writable({
    write(chunk: Buffer, _e, callback) {
      written += chunk.length;
      maxLag = Math.max(maxLag, pulled - written);
      setTimeout(callback, 1);
    },
  });
  return { plaintext: Readable.from(input()), output, maxLag: () => maxLag };
}

/** Ids of this process's threads (Linux): a new worker shows up as a new id. */
function threadIds(): string[] {
  return readdirSync('/proc/self/task');
}

describe('encodeObject', () => {
  const MiB = 1024 * 1024;
  for (const size of [0, 1, 100000, 256 * 1024, 256 * 1024 + 1, MiB, 3 * MiB + 5, 20 * MiB + 65536]) {
    it(`${size} bytes: sha256, size and Merkle root match, and age -d restores the input`, async () => {
      const plain = randomBytes(size);
      const { result, file, path } = await encodeToFile(plain);
      expectMatchesIndependentComputation(plain, file, result);
      expect(ageDecrypt(path).equals(plain)).toBe(true);
    });
  }

  it('records and uses another leaf size', async () => {
    const plain = randomBytes(2 * MiB + 3);
    for (const leafSize of [4096, 1000]) {
      const { result, file } = await encodeToFile(plain, leafSize);
      expectMatchesIndependentComputation(plain, file, result, leafSize);
    }
  });

  it('names plaintext that has a digest of its own by that digest, asked once all was filled', async () => {
    for (const size of [1000, 3 * MiB + 5]) {
      const plain = randomBytes(size);
      let filled = 0;
      const digest = createHash('sha256').update('own').digest('hex');
      const source = {
        fill(target: Uint8Array): number {
          const n = Math.min(target.length, size - filled);
          target.set(plain.subarray(filled, filled + n));
          filled += n;
          return n;
        },
        digest(): string {
          if (filled < size) throw new Error('digest asked before the end');
          return digest;
        },
      };
      const path = join(dir, `object-${fileCounter++}.age`);
      const result = await pool.encode({ plaintext: source, recipient, output: createWriteStream(path) });
      expect(result.plainDigest).toBe(digest);
      expect(result.plainSize).toBe(size);
      expect(result.merkleRoot).toBe(referenceRoot(readFileSync(path), 2048));
      expect(ageDecrypt(path).equals(plain)).toBe(true);
    }
  });

  it('reuses one pair of workers for many objects, several at once', async () => {
    await encodeToFile(randomBytes(2 * MiB));
    const threads = new Set(threadIds());
    const seen = new Set<string>();
    const sampler = setInterval(() => threadIds().forEach((id) => seen.add(id)), 2);
    try {
      const inputs = Array.from({ length: 60 }, (_, i) => randomBytes(i % 3 === 0 ? randomInt(300000, 2 * MiB) : randomInt(0, 5000)));
      for (let i = 0; i < inputs.length; i += 6) {
        const batch = inputs.slice(i, i + 6);
        const outputs = await Promise.all(batch.map((plain) => encodeToFile(plain)));
        outputs.forEach(({ result, file }, j) => expectMatchesIndependentComputation(batch[j]!, file, result));
      }
    } finally {
      clearInterval(sampler);
    }
    expect(seen.size).toBeGreaterThan(0);
    expect([...seen].filter((id) => !threads.has(id))).toEqual([]);
  });

  it('works through the shared pool, whose idle workers let the process exit', () => {
    const script = join(dir, 'shared-pool.ts');
    const encodeModule = fileURLToPath(new URL('../storage/objects/encode.ts', import.meta.url));
    writeFileSync(
      script,
      `import { PassThrough } from 'node:stream';
import { Readable } from 'node:stream';
import { encodeObject } from ${JSON.stringify(encodeModule)};
const output = new PassThrough();
output.resume();
const result = await encodeObject({ plaintext: Readable.from([Buffer.alloc(3 * 1024 * 1024, 7)]), recipient: Buffer.from(${JSON.stringify(recipient.toString('hex'))}, 'hex'), output });
console.log(result.plainDigest);
`,
    );
    const child = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
    expect(child.stderr).toBe('');
    expect(child.signal).toBeNull();
    expect(child.status).toBe(0);
    expect(child.stdout.trim()).toBe(createHash('sha256').update(Buffer.alloc(3 * 1024 * 1024, 7)).digest('hex'));
  });

  it('rejects a bad recipient, a failing input and a failing output, and the pool keeps working', async () => {
    const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
    for (const size of [10, 2 * MiB]) {
      await expect(pool.encode({ plaintext: Readable.from([randomBytes(size)]), recipient: randomBytes(31), output: sink() })).rejects.toThrow(
        /32-byte X25519 public key/,
      );
    }

    async function* failingInput() {
      yield randomBytes(3 * MiB);
      throw new Error('disk read failed');
    }
    const output = sink();
    await expect(pool.encode({ plaintext: Readable.from(failingInput()), recipient, output })).rejects.toThrow('disk read failed');
    expect(output.destroyed).toBe(true);

    let writes = 0;
    const failingOutput = new Writable({ write: (_c, _e, cb) => (++writes > 5 ? cb(new Error('disk full')) : cb()) });
    await expect(pool.encode({ plaintext: Readable.from([randomBytes(8 * MiB)]), recipient, output: failingOutput })).rejects.toThrow('disk full');

    const plain = randomBytes(3 * MiB);
    const { result, file } = await encodeToFile(plain);
    expectMatchesIndependentComputation(plain, file, result);
  });

  it('holds back reading while the output is slow', async () => {
    const slow = slowOutputOf(1024);
    const result = await pool.encode({ plaintext: slow.plaintext, recipient, output: slow.output });
    expect(result.plainSize).toBe(64 * MiB);
    // 4 batches in flight, one being filled and the input's read-ahead; without backpressure most of the 64 MiB.
    expect(slow.maxLag()).toBeLessThan(12 * MiB);
  });

  it('keeps memory flat for a 5 GiB input', async () => {
    const block = randomBytes(MiB);
    const blocks = 5 * 1024;
    let pulled = 0;
    function* input() {
      for (let i = 0; i < blocks; i++) {
        pulled += block.length;
        yield block;
      }
    }
    const builder = new MerkleBuilder();
    let written = 0;
    let maxLag = 0;
    const output = new Writable({
      write(chunk: Buffer, _e, callback) {
        builder.update(chunk);
        written += chunk.length;
        maxLag = Math.max(maxLag, pulled - written);
        callback();
      },
    });
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    try {
      const result = await pool.encode({ plaintext: Readable.from(input()), recipient, output });
      expect(result.plainSize).toBe(blocks * MiB);
      expect(result.encryptedSize).toBe(ageEncryptedSize(blocks * MiB));
      expect(result.merkleRoot).toBe(builder.digest());
    } finally {
      clearInterval(sampler);
    }
    expect(maxLag).toBeLessThan(32 * MiB);
    // Measured ~100 MB over the idle baseline (GC slack of three isolates); data size does not enter.
    expect(peak - baseline).toBeLessThan(512 * MiB);
  });
});

describe('encoding inline, on the calling thread', () => {
  const MiB = 1024 * 1024;

  it('gives what the workers give, starting no thread, for any size', async () => {
    const fresh = new ObjectEncoderPool();
    const threads = new Set(threadIds());
    const seen = new Set<string>();
    const sampler = setInterval(() => threadIds().forEach((id) => seen.add(id)), 2);
    try {
      for (const size of [0, MiB, 3 * MiB + 5, 20 * MiB + 65536]) {
        const plain = randomBytes(size);
        const path = join(dir, `object-${fileCounter++}.age`);
        const result = await fresh.encode({ plaintext: streamOf(plain), recipient, output: createWriteStream(path), inline: true });
        const file = readFileSync(path);
        expectMatchesIndependentComputation(plain, file, result);
        expect(ageDecrypt(path).equals(plain)).toBe(true);
      }
    } finally {
      clearInterval(sampler);
      await fresh.close();
    }
    expect([...seen].filter((id) => !threads.has(id))).toEqual([]);
  });

  it('holds back reading while the output is slow, and rejects a failing output', async () => {
    const slow = slowOutputOf(512);
    const result = await pool.encode({ plaintext: slow.plaintext, recipient, output: slow.output, inline: true });
    expect(result.plainSize).toBe(32 * MiB);
    // One batch being sealed, the output's buffer and the input's read-ahead; without backpressure most of the 32 MiB.
    expect(slow.maxLag()).toBeLessThan(4 * MiB);

    let writes = 0;
    const failingOutput = new Writable({ write: (_c, _e, cb) => setImmediate(() => (++writes > 5 ? cb(new Error('disk full')) : cb())) });
    await expect(pool.encode({ plaintext: Readable.from([randomBytes(8 * MiB)]), recipient, output: failingOutput, inline: true })).rejects.toThrow('disk full');
  });
});

describe('objectId', () => {
  it('is hex HMAC-SHA256 of the raw plaintext digest under the naming key', () => {
    const namingKey = randomBytes(32);
    const digest = createHash('sha256').update('photo').digest();
    const expected = createHmac('sha256', namingKey).update(digest).digest('hex');
    expect(objectId(namingKey, digest.toString('hex'))).toBe(expected);
    expect(objectId(namingKey, digest.toString('hex').toUpperCase())).toBe(expected);
    expect(objectId(randomBytes(32), digest.toString('hex'))).not.toBe(expected);
    expect(() => objectId(namingKey, 'abc')).toThrow(/64 hex digits/);
  });
});

describe('encodeObject without a pool', () => {
  it('uses the shared pool', async () => {
    const plain = randomBytes(1024 * 1024);
    const chunks: Buffer[] = [];
    const result = await encodeObject({ plaintext: Readable.from([plain]), recipient, output: new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }) });
    expectMatchesIndependentComputation(plain, Buffer.concat(chunks), result);
  });
});
