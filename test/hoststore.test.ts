import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_DELETE_DELAY, HostStore, HostStoreError, type Upload } from '../storage/hoststore/host-store.ts';

const OWNER = '12D3KooWOwnerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const OTHER = '12D3KooWOtherBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const DAY = 24 * 60 * 60 * 1000;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Write data in pieces of at most `piece` bytes. */
async function writeAll(upload: Upload, data: Buffer, piece = 64 * 1024): Promise<void> {
  for (let at = 0; at < data.byteLength; at += piece) await upload.write([data.subarray(at, at + piece)]);
}

async function put(store: HostStore, owner: string, id: string, data: Buffer): Promise<void> {
  const upload = await store.beginPut(owner, id, data.byteLength, sha256(data));
  await writeAll(upload, data.subarray(upload.offset));
  await upload.finish();
}

async function errorOf(promise: Promise<unknown>): Promise<HostStoreError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostStoreError);
  return err as HostStoreError;
}

describe('HostStore', () => {
  let home: string;
  let now: number;
  let quotas: Map<string, number>;
  let store: HostStore;
  const open = (): HostStore => new HostStore({ home, quotaFor: (owner) => quotas.get(owner) ?? Infinity, now: () => now });

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'hearth-hoststore-'));
    now = Date.UTC(2026, 10, 1);
    quotas = new Map();
    store = open();
  });

  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('publishes an object only after its hash checks out, under objects/<2 chars>/<id>', async () => {
    const data = randomBytes(300_000);
    const upload = await store.beginPut(OWNER, 'c0ffee', data.byteLength, sha256(data));
    expect(upload.offset).toBe(0);
    const partial = join(home, 'hosted', OWNER, 'partial', 'c0ffee');
    await writeAll(upload, data.subarray(0, 100_000));
    expect(JSON.parse(await readFile(`${partial}.json`, 'utf8'))).toEqual({ size: data.byteLength, sha256: sha256(data) });
    await expect(store.stat(OWNER, 'c0ffee')).rejects.toMatchObject({ code: 'ENOOBJECT' });
    await writeAll(upload, data.subarray(100_000));
    await upload.finish();

    expect(await readFile(join(home, 'hosted', OWNER, 'objects', 'c0', 'c0ffee'))).toEqual(data);
    expect(existsSync(partial)).toBe(false);
    expect(existsSync(`${partial}.json`)).toBe(false);
    const read = await store.read(OWNER, 'c0ffee', { offset: 10, length: 20 });
    expect(read).toMatchObject({ size: data.byteLength, offset: 10, length: 20 });
    expect(await buffer(read.stream)).toEqual(data.subarray(10, 30));
    // Owners are kept apart.
    await expect(store.stat(OTHER, 'c0ffee')).rejects.toMatchObject({ code: 'ENOOBJECT' });
  });

  it('discards an upload whose bytes do not match the declared hash', async () => {
    const data = randomBytes(50_000);
    const upload = await store.beginPut(OWNER, 'bad1', data.byteLength, sha256(Buffer.from('something else')));
    await writeAll(upload, data);
    const err = await errorOf(upload.finish());
    expect(err.code).toBe('EHASH');
    expect(err.message).toMatch(/^object bad1: the received bytes hash to [0-9a-f]{64} but the owner declared [0-9a-f]{64}; the upload was discarded, send it again$/);
    expect(await readdir(join(home, 'hosted', OWNER, 'partial'))).toEqual([]);
    expect(await store.usage(OWNER)).toEqual({ used: 0, quota: Infinity, pendingDeletionBytes: 0 });
  });

  it('resumes from the bytes kept by an abandoned upload, also after a restart', async () => {
    const data = randomBytes(1_000_000);
    const first = await store.beginPut(OWNER, 'aa01', data.byteLength, sha256(data));
    await writeAll(first, data.subarray(0, 412_345));
    await first.abandon();

    store = open();
    const second = await store.beginPut(OWNER, 'aa01', data.byteLength, sha256(data));
    expect(second.offset).toBe(412_345);
    await writeAll(second, data.subarray(412_345));
    await second.finish();
    expect(await buffer((await store.read(OWNER, 'aa01')).stream)).toEqual(data);
  });

  it('restarts from zero when the owner declares a different object for a kept partial', async () => {
    const data = randomBytes(100_000);
    const first = await store.beginPut(OWNER, 'aa02', data.byteLength, sha256(data));
    await writeAll(first, data.subarray(0, 40_000));
    await first.abandon();

    const other = randomBytes(90_000);
    const second = await store.beginPut(OWNER, 'aa02', other.byteLength, sha256(other));
    expect(second.offset).toBe(0);
    await writeAll(second, other);
    await second.finish();
    expect(await buffer((await store.read(OWNER, 'aa02')).stream)).toEqual(other);
  });

  it('refuses a put over quota before writing anything, counting unfinished uploads and replacements', async () => {
    quotas.set(OWNER, 1000);
    const err = await errorOf(store.beginPut(OWNER, 'q1', 1001, sha256(Buffer.alloc(0))));
    expect(err.code).toBe('EQUOTA');
    expect(err.message).toBe(`object q1 needs 1001 bytes but ${OWNER} has 1000 of its 1000-byte quota left; ask the host for more or free space first`);
    expect(existsSync(join(home, 'hosted'))).toBe(false);

    await put(store, OWNER, 'q1', randomBytes(600));
    // An unfinished upload reserves its whole declared size.
    const running = await store.beginPut(OWNER, 'q2', 300, sha256(randomBytes(300)));
    expect((await store.usage(OWNER)).used).toBe(900);
    expect((await errorOf(store.beginPut(OWNER, 'q3', 101, sha256(Buffer.alloc(0))))).code).toBe('EQUOTA');
    await running.abandon();
    // Resuming the same upload does not count it twice; replacing q1 counts only the difference.
    await (await store.beginPut(OWNER, 'q2', 300, sha256(randomBytes(300)))).abandon();
    await put(store, OWNER, 'q1', randomBytes(700));
    expect((await store.usage(OWNER)).used).toBe(1000);
    // Another owner has its own quota.
    await put(store, OTHER, 'q1', randomBytes(5000));

    // Accounting survives a restart.
    store = open();
    expect(await store.usage(OWNER)).toEqual({ used: 1000, quota: 1000, pendingDeletionBytes: 0 });
    // Deleting an unfinished upload frees its reservation at once.
    await store.delete(OWNER, 'q2');
    expect((await store.usage(OWNER)).used).toBe(700);
  });

  it('delays deletes: the earliest request counts, a put cancels, purge removes after the delay', async () => {
    expect(store.deleteDelay).toBe(DEFAULT_DELETE_DELAY);
    const a = randomBytes(2000);
    const b = randomBytes(3000);
    await put(store, OWNER, 'd1', a);
    await put(store, OWNER, 'd2', b);
    expect(await store.delete(OWNER, 'd1')).toBe(now + 30 * DAY);
    const firstRequest = now;
    now += DAY;
    expect(await store.delete(OWNER, 'd1')).toBe(firstRequest + 30 * DAY);
    expect(await store.delete(OWNER, 'd2')).toBe(now + 30 * DAY);
    expect(await store.delete(OWNER, 'absent')).toBeUndefined();

    expect(await store.pendingDeletions(OWNER)).toEqual([
      { name: 'd1', size: 2000, requestedAt: firstRequest, deleteAt: firstRequest + 30 * DAY },
      { name: 'd2', size: 3000, requestedAt: now, deleteAt: now + 30 * DAY },
    ]);
    expect(await store.usage(OWNER)).toEqual({ used: 5000, quota: Infinity, pendingDeletionBytes: 5000 });
    expect(await buffer((await store.read(OWNER, 'd1')).stream)).toEqual(a);

    // The identical object put again: no bytes flow and the deletion is cancelled.
    const again = await store.beginPut(OWNER, 'd2', b.byteLength, sha256(b));
    expect(again.alreadyStored).toBe(true);
    expect(again.offset).toBe(b.byteLength);
    await again.finish();
    expect(await store.stat(OWNER, 'd2')).toEqual({ name: 'd2', size: 3000 });

    now = firstRequest + 30 * DAY - 1;
    expect(await store.purgeExpired()).toEqual([]);
    now += 1;
    expect(await store.purgeExpired()).toEqual([{ owner: OWNER, name: 'd1', size: 2000 }]);
    expect(existsSync(join(home, 'hosted', OWNER, 'objects', 'd1', 'd1'))).toBe(false);
    expect(await readdir(join(home, 'hosted', OWNER, 'deletions'))).toEqual([]);
    expect(await store.usage(OWNER)).toEqual({ used: 3000, quota: Infinity, pendingDeletionBytes: 0 });
  });

  it('replaces an object with different bytes under the same id atomically, cancelling its deletion', async () => {
    const before = randomBytes(4000);
    const after = randomBytes(4000);
    await put(store, OWNER, 'e1', before);
    await store.delete(OWNER, 'e1');
    const upload = await store.beginPut(OWNER, 'e1', after.byteLength, sha256(after));
    expect(upload.alreadyStored).toBe(false);
    await writeAll(upload, after.subarray(0, 1000));
    // Readers still see the old bytes until the new ones are verified.
    expect(await buffer((await store.read(OWNER, 'e1')).stream)).toEqual(before);
    await writeAll(upload, after.subarray(1000));
    await upload.finish();
    expect(await buffer((await store.read(OWNER, 'e1')).stream)).toEqual(after);
    expect(await store.pendingDeletions(OWNER)).toEqual([]);
    expect((await store.usage(OWNER)).used).toBe(4000);
  });

  it('lets a newer put of the same object take over from a running one', async () => {
    const data = randomBytes(200_000);
    const first = await store.beginPut(OWNER, 'f1', data.byteLength, sha256(data));
    await writeAll(first, data.subarray(0, 70_000));
    let aborted: unknown;
    // The protocol handler ends the superseded upload when its signal fires.
    first.signal.addEventListener('abort', () => {
      aborted = first.signal.reason;
      void first.abandon();
    });
    const second = await store.beginPut(OWNER, 'f1', data.byteLength, sha256(data));
    expect((aborted as HostStoreError).code).toBe('ESUPERSEDED');
    await expect(first.write([data.subarray(70_000, 80_000)])).rejects.toThrow();
    expect(second.offset).toBe(70_000);
    await writeAll(second, data.subarray(70_000));
    await second.finish();
    expect(await buffer((await store.read(OWNER, 'f1')).stream)).toEqual(data);
  });

  it('lists objects with their pending deletions, and rejects names that could leave the directory', async () => {
    await put(store, OWNER, 'bb', randomBytes(10));
    await put(store, OWNER, 'aa', randomBytes(20));
    await put(store, OWNER, 'ab', randomBytes(0));
    await store.delete(OWNER, 'ab');
    const listed = [];
    for await (const info of store.list(OWNER)) listed.push(info);
    expect(listed).toEqual([
      { name: 'aa', size: 20 },
      { name: 'ab', size: 0, deleteAt: now + 30 * DAY },
      { name: 'bb', size: 10 },
    ]);
    expect(await store.owners()).toEqual([OWNER]);
    for (const id of ['../x', 'a/b', '.hidden', '', 'x'.repeat(129)]) {
      expect((await errorOf(store.beginPut(OWNER, id, 1, sha256(Buffer.alloc(1))))).code).toBe('EINVAL');
    }
    expect((await errorOf(store.stat('../../etc', 'aa'))).code).toBe('EINVAL');
    expect((await stat(join(home, 'hosted'))).isDirectory()).toBe(true);
  });
});
