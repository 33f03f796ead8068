import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open as openFile, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_DELETE_DELAY, HostStore, HostStoreError, hostedBytes, type Upload } from '../storage/hoststore/host-store.ts';
import { readKeptHash } from '../storage/hoststore/kept-hash.ts';
import { MerkleIndexStore } from '../storage/hoststore/merkle-index.ts';
import { merkleLeafCount, verifyMerkleProof } from '../storage/merkle.ts';
import { declaredFor } from './object-protocol.fixture.ts';

const OWNER = '12D3KooWOwnerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const OTHER = '12D3KooWOtherBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const DAY = 24 * 60 * 60 * 1000;


/** Write data in pieces of at most `piece` bytes. */
async function writeAll(upload: Upload, data: Buffer, piece = 64 * 1024): Promise<void> {
  for (let at = 0; at < data.byteLength; at += piece) await upload.write([data.subarray(at, at + piece)]);
}

async function put(store: HostStore, owner: string, id: string, data: Buffer): Promise<void> {
  const upload = await store.beginPut(owner, id, declaredFor(data));
  await writeAll(upload, data.subarray(upload.offset));
  await upload.finish();
}

/**
 * The object's index is the one its upload wrote (opening it builds nothing), its
 * root is the owner's, and proofs from it verify; the scrub keeps that root.
 */
async function expectIndexedAndHashed(store: HostStore, id: string, data: Buffer): Promise<void> {
  const index = new MerkleIndexStore({ store });
  const declared = declaredFor(data);
  const object = await index.open(OWNER, id, declared.leafSize);
  try {
    expect(index.counters).toMatchObject({ builds: 0, buildBytesRead: 0 });
    expect(object.root).toBe(declared.merkleRoot);
    const leafCount = merkleLeafCount(data.byteLength, declared.leafSize);
    const indices = [0, Math.floor(leafCount / 2), leafCount - 1];
    for (const proof of await object.prove(indices)) {
      expect(verifyMerkleProof(declared.merkleRoot, proof.index, leafCount, proof.leaf, proof.path)).toBe(true);
    }
  } finally {
    await object.close();
  }
  expect(await readKeptHash(join(home, 'hosted'), OWNER, id)).toEqual(declared);
}

async function errorOf(promise: Promise<unknown>): Promise<HostStoreError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostStoreError);
  return err as HostStoreError;
}

let home: string;

describe('HostStore', () => {
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

  it('publishes an object only after its Merkle root checks out, under objects/<2 chars>/<id>, with its index and hash', async () => {
    const data = randomBytes(300_000);
    const upload = await store.beginPut(OWNER, 'c0ffee', declaredFor(data));
    expect(upload.offset).toBe(0);
    const partial = join(home, 'hosted', OWNER, 'partial', 'c0ffee');
    await writeAll(upload, data.subarray(0, 100_000));
    expect(JSON.parse(await readFile(`${partial}.json`, 'utf8'))).toEqual(declaredFor(data));
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
    await expectIndexedAndHashed(store, 'c0ffee', data);
  });

  it('discards an upload whose bytes do not match the declared Merkle root; nothing becomes visible', async () => {
    const data = randomBytes(50_000);
    const declared = declaredFor(data);
    // The same bytes but one: only the leaf holding it differs.
    const other = Buffer.from(data);
    other[40_000]! ^= 1;
    const upload = await store.beginPut(OWNER, 'bad1', declared);
    await writeAll(upload, other);
    const err = await errorOf(upload.finish());
    expect(err.code).toBe('EHASH');
    expect(err.message).toBe(`object bad1: the received bytes have Merkle root ${declaredFor(other).merkleRoot} (2048-byte leaves) but the owner declared ${declared.merkleRoot}; the upload was discarded, send it again`);
    expect(await readdir(join(home, 'hosted', OWNER, 'partial'))).toEqual([]);
    await expect(store.stat(OWNER, 'bad1')).rejects.toMatchObject({ code: 'ENOOBJECT' });
    for (const dir of ['objects', 'merkle', 'hashes']) expect(existsSync(join(home, 'hosted', OWNER, dir))).toBe(false);
    expect(await store.usage(OWNER)).toEqual({ used: 0, quota: Infinity, pendingDeletionBytes: 0 });
  });

  it('refuses a put declaring any leaf size but the 2 KiB every catalog records', async () => {
    const data = randomBytes(10);
    for (const leafSize of [0, 1, 1.5, 1024, 4096, 64 * 1024 + 1]) {
      const err = await errorOf(store.beginPut(OWNER, 'leaf1', { ...declaredFor(data), leafSize }));
      expect(err.code).toBe('EINVAL');
      expect(err.message).toBe(`object leafSize must be 2048 (the Merkle leaf every Hearth catalog records), got ${leafSize}`);
    }
    expect(existsSync(join(home, 'hosted'))).toBe(false);
  });

  it('resumes from the bytes kept by an abandoned upload, also after a restart; verifies and indexes the whole object', async () => {
    // Several index blocks (64 KiB each), and a resume point inside one of them and inside a leaf.
    const data = randomBytes(1_000_000);
    const first = await store.beginPut(OWNER, 'aa01', declaredFor(data));
    await writeAll(first, data.subarray(0, 412_345));
    await first.abandon();

    store = open();
    const second = await store.beginPut(OWNER, 'aa01', declaredFor(data));
    expect(second.offset).toBe(412_345);
    await writeAll(second, data.subarray(412_345));
    await second.finish();
    expect(await buffer((await store.read(OWNER, 'aa01')).stream)).toEqual(data);
    await expectIndexedAndHashed(store, 'aa01', data);
  });

  it('re-reads the kept bytes on resume: damage to them is caught by the root check', async () => {
    const data = randomBytes(300_000);
    const first = await store.beginPut(OWNER, 'aa03', declaredFor(data));
    await writeAll(first, data.subarray(0, 200_000));
    await first.abandon();
    const partial = await openFile(join(home, 'hosted', OWNER, 'partial', 'aa03'), 'r+');
    await partial.write(Buffer.from([data[1000]! ^ 1]), 0, 1, 1000);
    await partial.close();

    const second = await store.beginPut(OWNER, 'aa03', declaredFor(data));
    expect(second.offset).toBe(200_000);
    await writeAll(second, data.subarray(200_000));
    expect((await errorOf(second.finish())).code).toBe('EHASH');
    await expect(store.stat(OWNER, 'aa03')).rejects.toMatchObject({ code: 'ENOOBJECT' });
    // Discarded: the next attempt starts over and succeeds.
    const third = await store.beginPut(OWNER, 'aa03', declaredFor(data));
    expect(third.offset).toBe(0);
    await writeAll(third, data);
    await third.finish();
    await expectIndexedAndHashed(store, 'aa03', data);
  });

  it('restarts from zero when the owner declares a different object for a kept partial', async () => {
    const data = randomBytes(100_000);
    const first = await store.beginPut(OWNER, 'aa02', declaredFor(data));
    await writeAll(first, data.subarray(0, 40_000));
    await first.abandon();

    const other = randomBytes(90_000);
    const second = await store.beginPut(OWNER, 'aa02', declaredFor(other));
    expect(second.offset).toBe(0);
    await writeAll(second, other);
    await second.finish();
    expect(await buffer((await store.read(OWNER, 'aa02')).stream)).toEqual(other);
  });

  it('refuses a put over quota before writing anything, counting unfinished uploads and Merkle indexes', async () => {
    // An object of up to 64 KiB has a one-hash index: 32 bytes and the 72-byte trailer.
    expect(hostedBytes(600)).toBe(704);
    const quota = hostedBytes(600) + hostedBytes(300);
    quotas.set(OWNER, quota);
    const err = await errorOf(store.beginPut(OWNER, 'q1', { ...declaredFor(Buffer.alloc(0)), size: quota - 103 }));
    expect(err.code).toBe('EQUOTA');
    expect(err.message).toBe(`object q1 needs ${quota + 1} bytes (with its Merkle index) but ${OWNER} has ${quota} of its ${quota}-byte quota left; ask the host for more or free space first`);
    expect(existsSync(join(home, 'hosted'))).toBe(false);

    await put(store, OWNER, 'q1', randomBytes(600));
    // An unfinished upload reserves its whole declared size.
    const q2 = declaredFor(randomBytes(300));
    const running = await store.beginPut(OWNER, 'q2', q2);
    expect((await store.usage(OWNER)).used).toBe(quota);
    expect((await errorOf(store.beginPut(OWNER, 'q3', { ...declaredFor(Buffer.alloc(0)), size: 1 }))).code).toBe('EQUOTA');
    await running.abandon();
    // Resuming the same upload does not count it twice.
    await (await store.beginPut(OWNER, 'q2', q2)).abandon();
    expect((await store.usage(OWNER)).used).toBe(quota);
    // Another owner has its own quota.
    await put(store, OTHER, 'q1', randomBytes(5000));

    // Accounting survives a restart.
    store = open();
    expect(await store.usage(OWNER)).toEqual({ used: quota, quota, pendingDeletionBytes: 0 });
    // Deleting an unfinished upload frees its reservation at once.
    await store.delete(OWNER, 'q2');
    expect((await store.usage(OWNER)).used).toBe(hostedBytes(600));
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
    const both = hostedBytes(2000) + hostedBytes(3000);
    expect(await store.usage(OWNER)).toEqual({ used: both, quota: Infinity, pendingDeletionBytes: both });
    expect(await buffer((await store.read(OWNER, 'd1')).stream)).toEqual(a);

    // The identical object put again: no bytes flow and the deletion is cancelled.
    const again = await store.beginPut(OWNER, 'd2', declaredFor(b));
    expect(again.alreadyStored).toBe(true);
    expect(again.offset).toBe(b.byteLength);
    await again.finish();
    expect(await store.stat(OWNER, 'd2')).toEqual({ name: 'd2', size: 3000 });

    now = firstRequest + 30 * DAY - 1;
    expect(await store.purgeExpired()).toEqual([]);
    expect(existsSync(store.indexFile(OWNER, 'd1'))).toBe(true);
    now += 1;
    expect(await store.purgeExpired()).toEqual([{ owner: OWNER, name: 'd1', size: 2000 }]);
    expect(existsSync(join(home, 'hosted', OWNER, 'objects', 'd1', 'd1'))).toBe(false);
    expect(existsSync(store.indexFile(OWNER, 'd1'))).toBe(false);
    expect(await readKeptHash(join(home, 'hosted'), OWNER, 'd1')).toBeUndefined();
    expect(await readdir(join(home, 'hosted', OWNER, 'deletions'))).toEqual([]);
    expect(await store.usage(OWNER)).toEqual({ used: hostedBytes(3000), quota: Infinity, pendingDeletionBytes: 0 });
  });

  it('refuses other bytes under a stored id; a repair replaces a damaged copy only once the new bytes verify, its deletion left pending', async () => {
    const data = randomBytes(4000);
    await put(store, OWNER, 'e1', data);
    const deleteAt = await store.delete(OWNER, 'e1');
    for (const other of [Buffer.alloc(0), randomBytes(4000), randomBytes(5000)]) {
      const err = await errorOf(store.beginPut(OWNER, 'e1', declaredFor(other)));
      expect(err.code).toBe('EEXIST');
      expect(err.message).toBe(`object e1 is already stored here with other content (4000 bytes, Merkle root ${declaredFor(data).merkleRoot}); object ids name their content, so a stored id keeps its bytes and this put is refused`);
    }

    const file = store.objectFile(OWNER, 'e1');
    const handle = await openFile(file, 'r+');
    await handle.write(Buffer.from([data[10]! ^ 1]), 0, 1, 10);
    await handle.close();
    const damaged = await readFile(file);
    const upload = await store.beginPut(OWNER, 'e1', declaredFor(data));
    expect(upload.alreadyStored).toBe(false);
    await writeAll(upload, data.subarray(0, 1000));
    // Readers still see the old bytes until the new ones are verified.
    expect(await buffer((await store.read(OWNER, 'e1')).stream)).toEqual(damaged);
    await writeAll(upload, data.subarray(1000));
    await upload.finish();
    expect(await buffer((await store.read(OWNER, 'e1')).stream)).toEqual(data);
    await expectIndexedAndHashed(store, 'e1', data);
    expect(await store.stat(OWNER, 'e1')).toEqual({ name: 'e1', size: 4000, deleteAt });
    expect((await store.usage(OWNER)).used).toBe(hostedBytes(4000));
  });

  it('lets a newer put of the same object take over from a running one', async () => {
    const data = randomBytes(200_000);
    const first = await store.beginPut(OWNER, 'f1', declaredFor(data));
    await writeAll(first, data.subarray(0, 70_000));
    let aborted: unknown;
    // The protocol handler ends the superseded upload when its signal fires.
    first.signal.addEventListener('abort', () => {
      aborted = first.signal.reason;
      void first.abandon();
    });
    const second = await store.beginPut(OWNER, 'f1', declaredFor(data));
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
      expect((await errorOf(store.beginPut(OWNER, id, declaredFor(Buffer.alloc(1))))).code).toBe('EINVAL');
    }
    expect((await errorOf(store.stat('../../etc', 'aa'))).code).toBe('EINVAL');
    expect((await stat(join(home, 'hosted'))).isDirectory()).toBe(true);
  });
});
