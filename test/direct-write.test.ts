// DirectWriteStream: whole 4 KiB blocks go to the disk directly, the last partial
// block through the page cache; what it finishes is byte-exact and synced, on a disk
// file system and on tmpfs (which may refuse direct I/O).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectWriteStream } from '../storage/direct-write.ts';

const MiB = 1024 * 1024;

const places = [tmpdir(), ...(existsSync('/dev/shm') ? ['/dev/shm'] : [])];

describe.each(places)('DirectWriteStream in %s', (parent) => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(parent, 'hearth-direct-write-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `data` in pieces whose sizes cycle through `pieces` and reads the file back. */
  async function roundTrip(data: Buffer, pieces: number[]): Promise<Buffer> {
    const path = join(dir, 'object');
    const chunks: Buffer[] = [];
    for (let at = 0, i = 0; at < data.length; i++) {
      const length = Math.min(pieces[i % pieces.length]!, data.length - at);
      chunks.push(data.subarray(at, at + length));
      at += length;
    }
    const out = new DirectWriteStream(path);
    await pipeline(Readable.from(chunks), out);
    expect(out.bytesWritten).toBe(data.length);
    return readFile(path);
  }

  it.each([0, 1, 4095, 4096, 4097, MiB - 1, MiB, MiB + 1, 2 * MiB, 3 * MiB + 12345])('writes %i bytes exactly', async (size) => {
    const data = randomBytes(size);
    expect((await roundTrip(data, [65_552, 1, 1_048_576, 4096, 333_333])).equals(data)).toBe(true);
  });

  it('with sparse: true leaves zero blocks as holes, byte-exact, ending in a hole or in data', async () => {
    for (const tail of [0, 100]) {
      const data = Buffer.alloc(9 * MiB + 333 + tail);
      randomBytes(5000).copy(data, 10);
      randomBytes(4096).copy(data, 4 * MiB + 4096);
      if (tail) randomBytes(tail).copy(data, data.length - tail);
      const path = join(dir, `sparse-${tail}`);
      const out = new DirectWriteStream(path, { sparse: true });
      await pipeline(Readable.from([data.subarray(0, 3 * MiB + 5), data.subarray(3 * MiB + 5)]), out);
      expect(out.bytesWritten).toBe(data.length);
      expect((await readFile(path)).equals(data)).toBe(true);
      // Two blocks, one, and the last partial one: far from the 9 MiB written dense.
      expect((await stat(path)).blocks * 512).toBeLessThanOrEqual(64 * 1024);
    }
  });

  it('takes chunks larger than both stages', async () => {
    const data = randomBytes(5 * MiB + 7);
    expect((await roundTrip(data, [5 * MiB]))).toEqual(data);
  });

  it("with flags 'wx' refuses a file that exists, and leaves it as it was", async () => {
    const path = join(dir, 'object');
    await writeFile(path, 'kept');
    await expect(pipeline(Readable.from([Buffer.from('new')]), new DirectWriteStream(path, { flags: 'wx' }))).rejects.toThrow(/EEXIST/);
    expect(await readFile(path, 'utf8')).toBe('kept');
  });

  it('reports a failed disk write (ENOSPC) when it is next met, not as an unhandled rejection', async () => {
    // Only the first describe.each round: /dev/full does not depend on the folder.
    if (parent !== places[0] || !existsSync('/dev/full')) return;
    const out = new DirectWriteStream('/dev/full');
    const errored = new Promise<Error>((resolve) => out.once('error', resolve));
    out.write(randomBytes(MiB));
    // The failing write runs while nothing awaits it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    out.end();
    expect((await errored).message).toMatch(/ENOSPC/);
  });

  it('destroyed mid-write, starts no more writes, and its stages serve the next file intact', async () => {
    const data = randomBytes(6 * MiB);
    const dying = new DirectWriteStream(join(dir, 'dying'));
    dying.on('error', () => {});
    // Several stages in one go: a write is in flight and the next waits for it.
    dying.write(data);
    dying.destroy();
    await new Promise((resolve) => dying.once('close', resolve));
    expect((await readFile(join(dir, 'dying'))).length).toBeLessThan(data.length);
    expect((await roundTrip(data, [3 * MiB + 5]))).toEqual(data);
  });

  it('reports a failed write and closes the file', async () => {
    const out = new DirectWriteStream(join(dir, 'object'));
    const failed = pipeline(
      (async function* () {
        yield randomBytes(3 * MiB);
        throw new Error('the source broke');
      })(),
      out,
    );
    await expect(failed).rejects.toThrow('the source broke');
    expect(out.destroyed).toBe(true);
  });
});
