// HostCatalogStore on a real LevelDB, fed real catalog records signed with keys
// from deriveKeys: what a host accepts, what it refuses, and that a refusal leaves
// the held log exactly as it was.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deriveKeys, type HomeKeys } from '../storage/keys.ts';
import { Catalog, CatalogChainError, ZERO_HASH, encodeEnvelope, envelopeHash, type ChainErrorCode, type FilePayload } from '../storage/catalog/catalog.ts';
import { CatalogQuotaError, HostCatalogStore } from '../storage/hostcatalog/host-catalog-store.ts';

interface Owner {
  keys: HomeKeys;
  peerId: string;
  catalog: Catalog;
}

let tmp: string;
let store: HostCatalogStore;
const catalogs: Catalog[] = [];

beforeEach(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'hearth-hostcatalog-'));
  store = await HostCatalogStore.open(join(tmp, 'hosted-catalogs'));
});

afterEach(async () => {
  await Promise.all(catalogs.splice(0).map((c) => c.close().catch(() => undefined)));
  await store.close().catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
});

function file(i: number): FilePayload {
  return {
    k: 'file', source: 'photos', path: `album/IMG_${String(i).padStart(5, '0')}.jpg`, type: 'file', size: 1000 + i,
    mtimeMs: 1.7e12 + i, ctimeMs: 1.7e12 + i, ino: i, mode: 0o100644, uid: 1000, gid: 1000,
    hash: createHash('sha256').update(`photo ${i}`).digest('hex'), time: 1.75e12 + i,
  };
}

async function newOwner(name: string): Promise<Owner> {
  const keys = deriveKeys(randomBytes(32));
  const catalog = await Catalog.open(join(tmp, name), keys);
  catalogs.push(catalog);
  return { keys, peerId: peerIdFromPublicKey(publicKeyFromRaw(keys.ed25519Public)).toString(), catalog };
}

async function appendFiles(owner: Owner, from: number, count: number): Promise<void> {
  await owner.catalog.append(Array.from({ length: count }, (_, i) => file(from + i)));
}

async function envelopes(owner: Owner, fromSeq = 1, toSeq = Infinity): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const { seq, bytes } of owner.catalog.envelopes(fromSeq)) if (seq <= toSeq) out.push(bytes);
  return out;
}

/** Everything observable of an owner's held log, to show a refusal changed nothing. */
async function held(owner: string): Promise<{ head: unknown; bytes: number; records: number; digest: string }> {
  const digest = createHash('sha256');
  let records = 0;
  for await (const bytes of store.read(owner)) {
    digest.update(bytes);
    records++;
  }
  return { head: await store.head(owner), bytes: await store.bytes(owner), records, digest: digest.digest('hex') };
}

async function refusal(promise: Promise<unknown>): Promise<ChainErrorCode> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof CatalogChainError)) throw new Error(`expected a CatalogChainError, got ${String(err)}`);
  return err.code;
}

describe('HostCatalogStore', () => {
  it('stores an owner\'s log pushed in several batches, survives a reopen, and reads it back in order', async () => {
    const owner = await newOwner('a');
    await appendFiles(owner, 0, 1200);
    const all = await envelopes(owner);
    expect(await store.head(owner.peerId)).toEqual({ seq: 0, hash: ZERO_HASH });

    expect(await store.append(owner.peerId, all.slice(0, 500))).toEqual({ head: { seq: 500, hash: envelopeHash(all[499]!) }, added: 500 });
    expect((await store.append(owner.peerId, all.slice(500, 1000), { from: await store.head(owner.peerId) })).added).toBe(500);
    await store.append(owner.peerId, all.slice(1000));
    expect(await store.head(owner.peerId)).toEqual(owner.catalog.head());
    expect(await store.bytes(owner.peerId)).toBe(all.reduce((sum, b) => sum + b.length, 0));

    await store.close();
    store = await HostCatalogStore.open(join(tmp, 'hosted-catalogs'));
    expect(await store.head(owner.peerId)).toEqual(owner.catalog.head());
    const back: Buffer[] = [];
    for await (const bytes of store.read(owner.peerId, 1001)) back.push(bytes);
    expect(back).toEqual(all.slice(1000));
    const range: Buffer[] = [];
    for await (const bytes of store.read(owner.peerId, 10, 12)) range.push(bytes);
    expect(range).toEqual(all.slice(9, 12));
  });

  it('takes a re-push of records it holds as a no-op, and an overlapping push as the new records only', async () => {
    const owner = await newOwner('a');
    await appendFiles(owner, 0, 30);
    const all = await envelopes(owner);
    await store.append(owner.peerId, all.slice(0, 20));
    const before = await held(owner.peerId);

    expect(await store.append(owner.peerId, all.slice(0, 20))).toEqual({ head: before.head, added: 0 });
    expect(await store.append(owner.peerId, all.slice(4, 20), { from: { seq: 4, hash: envelopeHash(all[3]!) } })).toEqual({ head: before.head, added: 0 });
    expect(await held(owner.peerId)).toEqual(before);

    const overlap = await store.append(owner.peerId, all.slice(14), { from: { seq: 14, hash: envelopeHash(all[13]!) } });
    expect(overlap).toEqual({ head: owner.catalog.head(), added: 10 });
  });

  it('refuses forged, misplaced, forked and rolled-back records, each leaving the held log unchanged', async () => {
    const owner = await newOwner('a');
    const other = await newOwner('b');
    await appendFiles(owner, 0, 40);
    await appendFiles(other, 0, 5);
    const all = await envelopes(owner);
    await store.append(owner.peerId, all.slice(0, 30));
    const before = await held(owner.peerId);
    const head = owner.catalog.head();
    const headOf = (seq: number) => ({ seq, hash: envelopeHash(all[seq - 1]!) });
    const payload = (i: number) => Buffer.from(JSON.stringify(file(1000 + i)));

    // Signed with another home's key, though it extends the chain correctly.
    const forged = encodeEnvelope(31, envelopeHash(all[29]!), payload(1), other.keys);
    expect(await refusal(store.append(owner.peerId, [forged]))).toBe('signature');
    // At a position the host already holds, a forged record is still a forgery.
    expect(await refusal(store.append(owner.peerId, [encodeEnvelope(12, envelopeHash(all[10]!), payload(0), other.keys)]))).toBe('signature');
    // Another owner's genuine records are not this owner's.
    expect(await refusal(store.append(owner.peerId, await envelopes(other)))).toBe('signature');
    // And an owner's records are refused under another owner's name.
    expect(await refusal(store.append(other.peerId, all.slice(0, 3)))).toBe('signature');
    // Record 32 before 31.
    expect(await refusal(store.append(owner.peerId, [all[31]!]))).toBe('gap');
    expect(await refusal(store.append(owner.peerId, [all[30]!, all[32]!]))).toBe('gap');
    // A new record 31 that follows some record 30 other than the held one.
    expect(await refusal(store.append(owner.peerId, [encodeEnvelope(31, envelopeHash(forged), payload(2), owner.keys)]))).toBe('fork');
    // A replayed old position with new content, properly signed and chained.
    expect(await refusal(store.append(owner.peerId, [encodeEnvelope(12, envelopeHash(all[10]!), payload(3), owner.keys)]))).toBe('fork');
    // Continuing from a record the host does not hold, or from beyond its head.
    expect(await refusal(store.append(owner.peerId, [all[30]!], { from: { seq: 30, hash: envelopeHash(forged) } }))).toBe('fork');
    expect(await refusal(store.append(owner.peerId, [all[35]!], { from: headOf(35) }))).toBe('gap');
    // Rollback: the owner's log as it stood at record 10, continued differently, or not at all.
    expect(await refusal(store.append(owner.peerId, [encodeEnvelope(11, envelopeHash(all[9]!), payload(4), owner.keys)], { from: headOf(10) }))).toBe('replay');
    expect(await refusal(store.append(owner.peerId, all.slice(10, 20), { from: headOf(10) }))).toBe('replay');
    expect(await refusal(store.append(owner.peerId, [], { from: headOf(10) }))).toBe('replay');
    // Not a record at all.
    expect(await refusal(store.append(owner.peerId, [randomBytes(300)]))).toBe('malformed');
    // All or nothing: two good records, then a forged one.
    const bad = encodeEnvelope(33, envelopeHash(all[31]!), payload(5), other.keys);
    expect(await refusal(store.append(owner.peerId, [all[30]!, all[31]!, bad]))).toBe('signature');

    expect(await held(owner.peerId)).toEqual(before);
    expect(await store.head(other.peerId)).toEqual({ seq: 0, hash: ZERO_HASH });
    // The genuine continuation is still accepted afterwards.
    expect((await store.append(owner.peerId, all.slice(30), { from: headOf(30) })).head).toEqual(head);
  });

  it('serialises concurrent pushes of one owner and keeps owners apart', async () => {
    const a = await newOwner('a');
    const b = await newOwner('b');
    await appendFiles(a, 0, 50);
    await appendFiles(b, 100, 50);
    const aRecords = await envelopes(a);
    const bRecords = await envelopes(b);
    const results = await Promise.allSettled([
      store.append(a.peerId, aRecords.slice(0, 25)),
      store.append(a.peerId, aRecords.slice(25)),
      store.append(b.peerId, bRecords),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(await store.head(a.peerId)).toEqual(a.catalog.head());
    expect(await store.head(b.peerId)).toEqual(b.catalog.head());
    expect((await held(a.peerId)).records).toBe(50);
  });

  it('refuses an owner that is not an Ed25519 PeerId', async () => {
    await expect(store.head('not-a-peer-id')).rejects.toThrow(/is not a PeerId/);
    await expect(store.append('not-a-peer-id', [])).rejects.toThrow(/is not a PeerId/);
  });

  it('refuses, whole, a push that would take the copy past maxBytes; records already held cost nothing', async () => {
    const owner = await newOwner('bounded');
    await appendFiles(owner, 0, 20);
    const all = await envelopes(owner);
    const size = (list: Buffer[]) => list.reduce((n, b) => n + b.byteLength, 0);
    const firstTen = all.slice(0, 10);
    await store.append(owner.peerId, firstTen, { maxBytes: size(firstTen) });
    expect(await store.bytes(owner.peerId)).toBe(size(firstTen));
    // The same records again, under the same bound: nothing new, nothing refused.
    expect((await store.append(owner.peerId, firstTen, { maxBytes: size(firstTen) })).added).toBe(0);
    const err = await store.append(owner.peerId, all.slice(10), { maxBytes: size(all) - 1 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CatalogQuotaError);
    expect((err as Error).message).toMatch(new RegExp(`catalog ${size(all)} bytes, over the ${size(all) - 1} bytes its quota leaves it here \\(${size(firstTen)} held\\): ask the host for more quota`));
    expect(await store.head(owner.peerId)).toMatchObject({ seq: 10 });
    expect(await store.bytes(owner.peerId)).toBe(size(firstTen));
    expect((await store.append(owner.peerId, all.slice(10), { maxBytes: size(all) })).head.seq).toBe(20);
  });
});
