import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CountingTier } from '../storage/tier/counting.ts';
import { DirTier } from '../storage/tier/dir.ts';
import { RetryTier } from '../storage/tier/retry.ts';
import type { RetryEvent } from '../storage/tier/retry.ts';
import { ObjectNotFoundError, PermanentTierError } from '../storage/tier/tier.ts';
import type { ByteRange, ObjectInfo, ObjectSource, PutReceipt, Tier } from '../storage/tier/tier.ts';

const CHUNK = 64 * 1024;

/** A source over bytes in memory, served in 64 KiB chunks like a file stream would be. */
function bytesSource(bytes: Buffer): ObjectSource & { opens: number } {
  const source = {
    size: bytes.length,
    opens: 0,
    open(offset: number): Readable {
      source.opens++;
      return Readable.from(chunks(bytes.subarray(offset)));
    },
  };
  return source;
}

function* chunks(bytes: Buffer): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += CHUNK) yield bytes.subarray(i, i + CHUNK);
}

async function readAll(stream: Readable): Promise<Buffer> {
  return Buffer.concat(await stream.toArray());
}

async function listAll(tier: Tier): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  // Names and sizes: write times, where a place gives them, are checked where they matter (orphans).
  for await (const { name, size } of tier.list()) out.push({ name, size });
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

let root: string;
let tier: DirTier;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'hearth-tier-'));
  tier = new DirTier({ name: 'usb', root, ownerId: 'home-a' });
});

afterEach(async () => {
  await tier.close();
  await rm(root, { recursive: true, force: true });
});

const nameA = 'ab' + '0'.repeat(62);
const nameB = 'cd' + '1'.repeat(62);

describe('DirTier', () => {
  it('stores objects under hearth/<owner>/objects/<shard>/ and reads them back whole and by range', async () => {
    const bytes = randomBytes(3 * CHUNK + 123);
    await tier.put(nameA, bytesSource(bytes));

    expect(tier.location(nameA)).toBe(join(root, 'hearth', 'home-a', 'objects', 'ab', nameA));
    expect((await stat(tier.location(nameA))).size).toBe(bytes.length);
    expect(await readAll(await tier.get(nameA))).toEqual(bytes);
    expect(await readAll(await tier.get(nameA, { offset: CHUNK - 7, length: CHUNK + 20 }))).toEqual(bytes.subarray(CHUNK - 7, 2 * CHUNK + 13));
    expect(await readAll(await tier.get(nameA, { offset: bytes.length - 5, length: 5 }))).toEqual(bytes.subarray(-5));
    expect(await readAll(await tier.get(nameA, { offset: bytes.length, length: 0 }))).toEqual(Buffer.alloc(0));
    expect(await tier.stat(nameA)).toEqual({ name: nameA, size: bytes.length });
  });

  it('refuses a range past the end with a clear permanent error', async () => {
    await tier.put(nameA, bytesSource(randomBytes(100)));
    const outside: ByteRange[] = [{ offset: 90, length: 11 }, { offset: 101, length: 0 }, { offset: -1, length: 5 }];
    for (const range of outside) {
      await expect(tier.get(nameA, range)).rejects.toThrow(PermanentTierError);
    }
    await expect(tier.get(nameA, { offset: 90, length: 11 })).rejects.toThrow(`range 90+11 is outside object ${nameA} (100 bytes)`);
  });

  it('reports absent objects as ObjectNotFoundError and deletes idempotently', async () => {
    await expect(tier.get(nameA)).rejects.toThrow(ObjectNotFoundError);
    await expect(tier.stat(nameA)).rejects.toThrow(ObjectNotFoundError);
    await tier.put(nameA, bytesSource(randomBytes(10)));
    await tier.delete(nameA);
    await tier.delete(nameA);
    await expect(tier.stat(nameA)).rejects.toThrow(ObjectNotFoundError);
  });

  it('lists every shard, including empty objects, and replaces an object put again', async () => {
    const first = randomBytes(1000);
    await tier.put(nameA, bytesSource(randomBytes(1000)));
    await tier.put(nameA, bytesSource(first));
    await tier.put(nameB, bytesSource(Buffer.alloc(0)));
    expect(await listAll(tier)).toEqual([{ name: nameA, size: 1000 }, { name: nameB, size: 0 }]);
    expect(await readAll(await tier.get(nameA))).toEqual(first);
    expect(await readdir(join(tier.objectsDir, 'ab'))).toEqual([nameA]);
  });

  it('keeps owners apart on a shared disk', async () => {
    const other = new DirTier({ name: 'usb', root, ownerId: 'home-b' });
    await tier.put(nameA, bytesSource(randomBytes(10)));
    expect(await listAll(other)).toEqual([]);
    await expect(other.stat(nameA)).rejects.toThrow(ObjectNotFoundError);
  });

  it('rejects names that would escape the objects directory', () => {
    for (const bad of ['../etc/passwd', 'ab/../../x', '.tmp-abc', 'AB00', 'zz00', '']) {
      expect(() => tier.location(bad)).toThrow(/not valid/);
    }
    expect(() => new DirTier({ name: 'usb', root, ownerId: '..' })).toThrow(/owner id/);
  });

  it('refuses a root that does not exist instead of creating it', async () => {
    const missing = join(root, 'not-mounted');
    const unplugged = new DirTier({ name: 'usb', root: missing, ownerId: 'home-a' });
    await expect(unplugged.put(nameA, bytesSource(randomBytes(10)))).rejects.toThrow(/is not a directory; is the disk mounted/);
    await expect(stat(missing)).rejects.toThrow(/ENOENT/);
    await mkdir(missing);
    await unplugged.put(nameA, bytesSource(randomBytes(10)));
    expect(await unplugged.stat(nameA)).toEqual({ name: nameA, size: 10 });
  });

  it('reports a disk that went away after open instead of recreating its tree', async () => {
    await tier.open();
    await rm(join(root, 'hearth'), { recursive: true });
    await expect(tier.put(nameA, bytesSource(randomBytes(10)))).rejects.toThrow(/is missing; is the disk mounted/);
    await expect(tier.stat(nameA)).rejects.toThrow(/is missing; is the disk mounted/);
    await expect(stat(join(root, 'hearth'))).rejects.toThrow(/ENOENT/);
  });

  it('leaves nothing visible and no temp file when the source fails halfway', async () => {
    const source: ObjectSource = {
      size: 4 * CHUNK,
      open: () =>
        Readable.from(
          (function* () {
            yield randomBytes(CHUNK);
            yield randomBytes(CHUNK);
            throw new Error('disk read failed');
          })(),
        ),
    };
    await expect(tier.put(nameA, source)).rejects.toThrow('disk read failed');
    await expect(tier.stat(nameA)).rejects.toThrow(ObjectNotFoundError);
    expect(await readdir(join(tier.objectsDir, 'ab'))).toEqual([]);
  });

  it('leaves nothing when the put is aborted mid-stream', async () => {
    const abort = new AbortController();
    const source: ObjectSource = {
      size: 3 * CHUNK,
      open: () =>
        Readable.from(
          (async function* () {
            yield randomBytes(CHUNK);
            // Aborting from inside the generator would re-enter it while it runs.
            queueMicrotask(() => abort.abort());
            yield randomBytes(CHUNK);
            yield randomBytes(CHUNK);
          })(),
        ),
    };
    await expect(tier.put(nameA, source, abort.signal)).rejects.toThrow(/abort/i);
    expect(await readdir(join(tier.objectsDir, 'ab'))).toEqual([]);
  });

  it('refuses a source that delivers fewer bytes than it declared', async () => {
    const short: ObjectSource = { size: 100, open: () => Readable.from([randomBytes(60)]) };
    await expect(tier.put(nameA, short)).rejects.toThrow('gave 60 bytes but declared 100');
    expect(await readdir(join(tier.objectsDir, 'ab'))).toEqual([]);
  });

  /** A source whose bytes are a local file; streaming it is a failure. */
  async function fileSource(dir: string, bytes: Buffer, size = bytes.length): Promise<ObjectSource & { path: string }> {
    const path = join(dir, `spooled-${randomBytes(4).toString('hex')}`);
    await writeFile(path, bytes);
    return { size, file: path, path, open: () => { throw new Error('the file should have been taken, not streamed'); } };
  }

  it('takes a local file on the same filesystem as a hard link, never streaming it', async () => {
    const bytes = randomBytes(3 * CHUNK + 5);
    const source = await fileSource(root, bytes);
    await tier.put(nameA, source);
    expect(await readAll(await tier.get(nameA))).toEqual(bytes);
    expect((await stat(tier.location(nameA))).ino).toBe((await stat(source.path)).ino);
    // The spool copy goes away; the object stays whole.
    await rm(source.path);
    expect(await readAll(await tier.get(nameA))).toEqual(bytes);
    expect(await readdir(join(tier.objectsDir, 'ab'))).toEqual([nameA]);
  });

  const otherDevice = '/dev/shm';
  it.skipIf(!existsSync(otherDevice) || statSync(otherDevice).dev === statSync(tmpdir()).dev)('copies a local file from another filesystem', async () => {
    const dir = await mkdtemp(join(otherDevice, 'hearth-tier-'));
    try {
      const bytes = randomBytes(2 * CHUNK);
      const source = await fileSource(dir, bytes);
      await tier.put(nameA, source);
      expect(await readAll(await tier.get(nameA))).toEqual(bytes);
      expect((await stat(tier.location(nameA))).dev).not.toBe((await stat(source.path)).dev);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a local file of another size than declared, or one that is gone, leaving nothing', async () => {
    await expect(tier.put(nameA, await fileSource(root, randomBytes(60), 100))).rejects.toThrow('gave 60 bytes but declared 100');
    await expect(tier.put(nameA, { size: 1, file: join(root, 'gone'), open: () => Readable.from([Buffer.of(1)]) })).rejects.toThrow(/ENOENT/);
    expect(await readdir(join(tier.objectsDir, 'ab'))).toEqual([]);
  });

  it('ignores temp files a crash left behind, and cleans the stale ones on open', async () => {
    await tier.put(nameA, bytesSource(randomBytes(10)));
    const shard = join(tier.objectsDir, 'ab');
    const stale = join(shard, '.tmp-0123456789abcdef');
    const inFlight = join(shard, '.tmp-fedcba9876543210');
    await writeFile(stale, randomBytes(500));
    await writeFile(inFlight, randomBytes(500));
    const anHourAgo = new Date(Date.now() - 60 * 60 * 1000);
    await utimes(stale, anHourAgo, anHourAgo);

    expect(await listAll(tier)).toEqual([{ name: nameA, size: 10 }]);
    await new DirTier({ name: 'usb', root, ownerId: 'home-a' }).open();
    expect((await readdir(shard)).sort()).toEqual(['.tmp-fedcba9876543210', nameA]);
  });
});

/**
 * A test double of a remote tier (a peer or a cloud bucket over a flaky link): it
 * stores into a real DirTier but fails the first `failures` calls with the given
 * error. A failing put first reads part of its source, as a dropped upload would.
 */
class FlakyTier implements Tier {
  readonly kind = 'peer' as const;
  readonly name = 'flaky';
  calls = 0;
  private readonly store: Tier;
  private readonly failures: number;
  private readonly error: () => Error;

  constructor(store: Tier, failures: number, error: () => Error = () => Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })) {
    this.store = store;
    this.failures = failures;
    this.error = error;
  }

  private async fail(before?: () => Promise<void>): Promise<void> {
    this.calls++;
    if (this.calls > this.failures) return;
    await before?.();
    throw this.error();
  }

  location(name: string): string {
    return this.store.location(name);
  }
  async put(name: string, source: ObjectSource, signal?: AbortSignal): Promise<PutReceipt | void> {
    await this.fail(async () => {
      for await (const _ of source.open(0)) break;
    });
    return this.store.put(name, source, signal);
  }
  async get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    await this.fail();
    return this.store.get(name, range, signal);
  }
  async stat(name: string): Promise<ObjectInfo> {
    await this.fail();
    return this.store.stat(name);
  }
  async *list(): AsyncIterable<ObjectInfo> {
    await this.fail();
    yield* this.store.list();
  }
  async delete(name: string): Promise<void> {
    await this.fail();
    return this.store.delete(name);
  }
  close(): Promise<void> {
    return this.store.close();
  }
}

describe('RetryTier', () => {
  it('retries transient failures of every operation and opens the source afresh for each put', async () => {
    const bytes = randomBytes(2 * CHUNK + 5);
    const source = bytesSource(bytes);
    const events: RetryEvent[] = [];
    const flakyPut = new FlakyTier(tier, 2);
    await new RetryTier(flakyPut, { baseDelayMs: 1, onRetry: (e) => events.push(e) }).put(nameA, source);
    expect(flakyPut.calls).toBe(3);
    expect(source.opens).toBe(3);
    expect(events.map((e) => [e.operation, e.attempt, e.delayMs])).toEqual([['put', 1, 1], ['put', 2, 2]]);

    const retrying = (failures: number) => new RetryTier(new FlakyTier(tier, failures), { baseDelayMs: 1 });
    expect(await readAll(await retrying(2).get(nameA, { offset: 3, length: CHUNK }))).toEqual(bytes.subarray(3, CHUNK + 3));
    expect(await retrying(4).stat(nameA)).toEqual({ name: nameA, size: bytes.length });
    expect(await listAll(retrying(1))).toEqual([{ name: nameA, size: bytes.length }]);
    await retrying(3).delete(nameA);
    await expect(tier.stat(nameA)).rejects.toThrow(ObjectNotFoundError);
  });

  it('gives up after the configured attempts with the last error, backing off exponentially up to the cap', async () => {
    const flaky = new FlakyTier(tier, 100);
    const delays: number[] = [];
    const retry = new RetryTier(flaky, { attempts: 6, baseDelayMs: 1, maxDelayMs: 5, onRetry: (e) => delays.push(e.delayMs) });
    await expect(retry.stat(nameA)).rejects.toThrow('connection reset');
    expect(flaky.calls).toBe(6);
    expect(delays).toEqual([1, 2, 4, 5, 5]);
  });

  it('never retries permanent errors', async () => {
    const full = new FlakyTier(tier, 100, () => new PermanentTierError('target is full'));
    await expect(new RetryTier(full, { baseDelayMs: 1 }).put(nameA, bytesSource(randomBytes(10)))).rejects.toThrow('target is full');
    expect(full.calls).toBe(1);

    const absent = new FlakyTier(tier, 0);
    await expect(new RetryTier(absent, { baseDelayMs: 1 }).stat(nameA)).rejects.toThrow(ObjectNotFoundError);
    expect(absent.calls).toBe(1);
  });

  it('stops waiting and retrying when aborted', async () => {
    const flaky = new FlakyTier(tier, 100);
    const abort = new AbortController();
    // A delay no test would sit out: only the abort can end the wait.
    const retry = new RetryTier(flaky, { baseDelayMs: 3_600_000, onRetry: () => abort.abort() });
    await expect(retry.get(nameA, undefined, abort.signal)).rejects.toThrow(/abort/i);
    expect(flaky.calls).toBe(1);

    const before = new FlakyTier(tier, 0);
    await expect(new RetryTier(before).put(nameA, bytesSource(randomBytes(10)), abort.signal)).rejects.toThrow(/abort/i);
    expect(before.calls).toBe(0);
  });
});

describe('CountingTier', () => {
  it('counts requests and the bytes that actually flowed, ranges included', async () => {
    const counting = new CountingTier(tier);
    const bytes = randomBytes(5 * CHUNK + 17);
    await counting.put(nameA, bytesSource(bytes));
    await counting.put(nameB, bytesSource(randomBytes(300)));
    expect(await readAll(await counting.get(nameA))).toEqual(bytes);
    expect(await readAll(await counting.get(nameA, { offset: 1000, length: 2 * CHUNK }))).toEqual(bytes.subarray(1000, 1000 + 2 * CHUNK));
    await counting.stat(nameA);
    await listAll(counting);
    await counting.delete(nameB);
    await expect(counting.get(nameB)).rejects.toThrow(ObjectNotFoundError);

    expect(counting.counts()).toEqual({
      put: 2,
      get: 3,
      stat: 1,
      list: 1,
      delete: 1,
      bytesPut: bytes.length + 300,
      bytesGot: bytes.length + 2 * CHUNK,
    });
  });

  it('counts a put the inner tier took from a local file as all its bytes', async () => {
    const counting = new CountingTier(tier);
    const path = join(root, 'spooled');
    await writeFile(path, randomBytes(1234));
    await counting.put(nameA, { size: 1234, file: path, open: () => { throw new Error('not streamed'); } });
    expect(counting.counts()).toMatchObject({ put: 1, bytesPut: 1234 });
  });

  it('counts only the bytes that moved before a put failed, and passes the failure on', async () => {
    const counting = new CountingTier(tier);
    const failing: ObjectSource = {
      size: 4 * CHUNK,
      open: () =>
        Readable.from(
          (function* () {
            yield randomBytes(CHUNK);
            throw new Error('source went away');
          })(),
        ),
    };
    await expect(counting.put(nameA, failing)).rejects.toThrow('source went away');
    expect(counting.counts().bytesPut).toBe(CHUNK);
  });

  it('passes a read error of the inner stream on to the reader', async () => {
    const counting = new CountingTier(tier);
    await counting.put(nameA, bytesSource(randomBytes(4 * CHUNK)));
    const abort = new AbortController();
    const stream = await counting.get(nameA, undefined, abort.signal);
    abort.abort();
    await expect(readAll(stream)).rejects.toThrow(/abort/i);
  });
});
