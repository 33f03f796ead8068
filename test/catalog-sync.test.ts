// /hearth/catalog/1 between real Hearth hosts on 127.0.0.1: homes paired through
// invite codes, each with a real catalog (keys from deriveKeys) and a real
// HostCatalogStore on disk.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PeerId, Stream } from '@libp2p/interface';
import { afterEach, describe, expect, it } from 'vitest';
import { FamilyRoster } from '../node/family.ts';
import { createHearthHost, type HearthHost } from '../node/host.ts';
import { pairService, type PairService } from '../protocol/pair.ts';
import { StreamReader, encodeFrame, encodeJsonFrame } from '../protocol/messages.ts';
import {
  CATALOG_PROTOCOL, CatalogSyncError, catalogSyncService, recoverCatalogFrom, syncCatalogTo,
  type CatalogSyncCode, type CatalogSyncService,
} from '../protocol/catalog-sync.ts';
import { deriveKeys, type HomeKeys } from '../storage/keys.ts';
import {
  Catalog, MAX_ENVELOPE_BYTES, ZERO_HASH, encodeEnvelope, envelopeHash, type CatalogPayload, type ChainHead, type FilePayload,
} from '../storage/catalog/catalog.ts';
import { HostCatalogStore, hostedCatalogsPath } from '../storage/hostcatalog/host-catalog-store.ts';

interface Home {
  name: string;
  dir: string;
  entropy: Buffer;
  keys: HomeKeys;
  roster: FamilyRoster;
  node: HearthHost<{ pair: PairService; catalog: CatalogSyncService }>;
  peerId: PeerId;
  store: HostCatalogStore;
  catalog: Catalog;
  stop(): Promise<void>;
}

const homes: Home[] = [];
const extraDirs: string[] = [];

afterEach(async () => {
  await Promise.all(homes.splice(0).map((h) => h.stop().catch(() => undefined)));
  await Promise.all(extraDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A home with the pair and catalog services; `entropy` stands for its recovery phrase. */
async function startHome(name: string, entropy: Buffer = randomBytes(32)): Promise<Home> {
  const dir = await mkdtemp(join(tmpdir(), `hearth-catalog-sync-${name}-`));
  extraDirs.push(dir);
  const keys = deriveKeys(entropy);
  const roster = await FamilyRoster.open(dir);
  const store = await HostCatalogStore.open(hostedCatalogsPath(dir));
  const catalog = await Catalog.open(join(dir, 'catalog'), keys);
  const node = await createHearthHost({
    seed: keys.ed25519Seed,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    gate: roster,
    services: {
      pair: pairService({ store: roster, selfName: () => name }),
      // The smallest batch allowed, so a log of a few thousand records needs several.
      catalog: catalogSyncService({ store, maxBatchBytes: MAX_ENVELOPE_BYTES }),
    },
  });
  let stopped = false;
  const home: Home = {
    name, dir, entropy, keys, roster, node, peerId: node.peerId, store, catalog,
    async stop() {
      if (stopped) return;
      stopped = true;
      await node.stop();
      await Promise.all([store.close(), catalog.close()]);
    },
  };
  homes.push(home);
  return home;
}

async function pair(inviter: Home, joiner: Home): Promise<void> {
  const { code } = await inviter.node.services.pair.invite({ quota: 1_000_000 });
  await joiner.node.services.pair.join(code, { quota: 1_000_000 });
}

function file(i: number, version = 0): FilePayload {
  return {
    k: 'file', source: 'photos', path: `${2020 + (i % 5)}/album ${Math.floor(i / 100)}/IMG_${String(i).padStart(5, '0')}.jpg`,
    type: 'file', size: 2_000_000 + i + version, mtimeMs: 1.7e12 + i * 1000 + version, ctimeMs: 1.7e12 + i * 1000 + version,
    ino: 10_000 + i, mode: 0o100644, uid: 1000, gid: 1000,
    hash: createHash('sha256').update(`photo ${i} v${version}`).digest('hex'), time: 1.75e12 + version * 1000 + i,
  };
}

/** A backup run's worth of records: new files, new versions of some earlier ones, a few deletions. */
function run(round: number, files: number): CatalogPayload[] {
  const base = round * 10_000;
  const time = 1.75e12 + round * 10_000_000;
  const out: CatalogPayload[] = [{ k: 'run', run: `r${round}`, phase: 'start', time }];
  for (let i = 0; i < files; i++) out.push(file(base + i));
  for (let i = 0; round > 0 && i < 20; i++) out.push({ ...file(i * 7, round), time: time + i });
  for (let i = 0; round > 0 && i < 10; i++) out.push({ k: 'delete', source: 'photos', path: file(i * 11 + 1).path, time: time + 100 + i });
  // The run's volume, so its versions are restorable (snapshot() lists only those).
  const contents = out.flatMap((p, i) => (p.k === 'file' ? [{ hash: p.hash!, offset: 2048 * i, length: p.size }] : []));
  out.push({ k: 'object', id: `volume-r${round}`, kind: 'volume', name: `r${round}.iso`, size: 1, plainSize: 1, merkleRoot: '0'.repeat(64), leafSize: 1024, contents, time: time + 900 });
  out.push({ k: 'run', run: `r${round}`, phase: 'end', time: time + 1000, ok: true });
  return out;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function envelopesOf(catalog: Catalog, fromSeq = 1): Promise<Buffer[]> {
  return (await collect(catalog.envelopes(fromSeq))).map((e) => e.bytes);
}

/** Everything observable of the log `host` keeps for `owner`. */
async function heldBy(host: Home, owner: Home): Promise<{ head: ChainHead; bytes: number; digest: string }> {
  const digest = createHash('sha256');
  for await (const bytes of host.store.read(owner.peerId.toString())) digest.update(bytes);
  return { head: await host.store.head(owner.peerId.toString()), bytes: await host.store.bytes(owner.peerId.toString()), digest: digest.digest('hex') };
}

async function syncRefusal(promise: Promise<unknown>): Promise<{ code: CatalogSyncCode; hostHead: ChainHead; message: string }> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof CatalogSyncError)) throw new Error(`expected a CatalogSyncError, got ${String(err)}`);
  return { code: err.code, hostHead: err.hostHead, message: err.message };
}

async function rejects(promise: Promise<unknown>): Promise<boolean> {
  return promise.then(() => false, () => true);
}

/** Resolves with the stream's status once it has closed for good. */
function closed(stream: Stream): Promise<string> {
  if (stream.status !== 'open') return Promise.resolve(stream.status);
  return new Promise((resolve) => stream.addEventListener('close', () => resolve(stream.status), { once: true }));
}

describe('/hearth/catalog/1', () => {
  it('pushes a log of thousands of records over several rounds; a recovered home pulls it back whole', async () => {
    const entropy = randomBytes(32);
    const alice = await startHome('alice', entropy);
    const bob = await startHome('bob');
    await pair(alice, bob);
    const service = alice.node.services.catalog;

    expect(await service.head(bob.peerId)).toEqual({ seq: 0, hash: ZERO_HASH });
    let pushed = 0;
    for (const [round, files] of [[0, 2500], [1, 600], [2, 400]] as const) {
      await alice.catalog.append(run(round, files));
      const result = await syncCatalogTo(service, bob.peerId, alice.catalog);
      pushed += result.added;
      expect(result.head).toEqual(alice.catalog.head());
      expect(await bob.store.head(alice.peerId.toString())).toEqual(alice.catalog.head());
    }
    const records = alice.catalog.head().seq;
    expect(records).toBeGreaterThan(3500);
    expect(pushed).toBe(records);
    const all = await envelopesOf(alice.catalog);
    // More than one batch's worth went over: the host refuses any single batch this big.
    expect(all.reduce((sum, b) => sum + b.length, 0)).toBeGreaterThan(MAX_ENVELOPE_BYTES);
    expect(await bob.store.bytes(alice.peerId.toString())).toBe(all.reduce((sum, b) => sum + b.length, 0));
    // Nothing new: nothing sent.
    expect((await syncCatalogTo(service, bob.peerId, alice.catalog)).added).toBe(0);

    const snapshot = await collect(alice.catalog.snapshot());
    const history = await alice.catalog.history('photos', file(0).path);
    expect(snapshot.length).toBeGreaterThan(3000);
    await alice.stop();
    await rm(alice.dir, { recursive: true, force: true });

    // The same phrase on a new machine: same PeerId, empty catalog; it joins Bob again.
    const recovered = await startHome('alice', entropy);
    expect(recovered.peerId.equals(alice.peerId)).toBe(true);
    await pair(bob, recovered);
    const result = await recoverCatalogFrom(recovered.node.services.catalog, bob.peerId, recovered.catalog);
    expect(result).toEqual({ head: { seq: records, hash: envelopeHash(all[records - 1]!) }, pulled: records });
    expect(await collect(recovered.catalog.snapshot())).toEqual(snapshot);
    expect(await recovered.catalog.history('photos', file(0).path)).toEqual(history);
    expect(await recovered.catalog.verify()).toEqual({ ok: true, records });
    expect(await envelopesOf(recovered.catalog)).toEqual(all);
    // Recovering again finds nothing more, and the recovered home carries on syncing.
    expect((await recoverCatalogFrom(recovered.node.services.catalog, bob.peerId, recovered.catalog)).pulled).toBe(0);
    await recovered.catalog.append(run(3, 10));
    expect((await syncCatalogTo(recovered.node.services.catalog, bob.peerId, recovered.catalog)).head).toEqual(recovered.catalog.head());
  });

  it('refuses forged, out-of-order, forked and rolled-back records; the host\'s copy stays as it was', async () => {
    const alice = await startHome('alice');
    const bob = await startHome('bob');
    const mallory = deriveKeys(randomBytes(32));
    await pair(alice, bob);
    const service = alice.node.services.catalog;
    await alice.catalog.append(run(0, 50));
    await syncCatalogTo(service, bob.peerId, alice.catalog);
    await alice.catalog.append(run(1, 5));
    const all = await envelopesOf(alice.catalog);
    const hostHead = await service.head(bob.peerId);
    const before = await heldBy(bob, alice);
    const headOf = (seq: number): ChainHead => ({ seq, hash: envelopeHash(all[seq - 1]!) });
    const payload = (i: number) => Buffer.from(JSON.stringify(file(9000 + i)));
    const next = hostHead.seq + 1;

    const forged = await syncRefusal(service.push(bob.peerId, hostHead, [encodeEnvelope(next, hostHead.hash, payload(1), mallory)]));
    expect(forged).toMatchObject({ code: 'signature', hostHead });
    expect(forged.message).toMatch(/bad signature/);
    expect((await syncRefusal(service.push(bob.peerId, hostHead, [all[next]!]))).code).toBe('gap');
    // An old position, re-signed by the owner with other content.
    const replayed = encodeEnvelope(20, envelopeHash(all[18]!), payload(2), alice.keys);
    expect((await syncRefusal(service.push(bob.peerId, hostHead, [replayed]))).code).toBe('fork');
    // The log as it stood at record 20, continued another way: a rollback of 21..head.
    const rollback = await syncRefusal(service.push(bob.peerId, headOf(20), [encodeEnvelope(21, envelopeHash(all[19]!), payload(3), alice.keys)]));
    expect(rollback.code).toBe('replay');
    expect(rollback.message).toMatch(/never rolls a log back/);
    expect(await heldBy(bob, alice)).toEqual(before);

    // The owner's own side notices a diverging or older catalog before sending anything.
    const stale = await Catalog.open(join(alice.dir, 'stale-catalog'), alice.keys);
    try {
      await stale.append(run(0, 10));
      expect((await syncRefusal(syncCatalogTo(service, bob.peerId, stale))).code).toBe('behind');
      await stale.append(run(7, 200));
      expect((await syncRefusal(syncCatalogTo(service, bob.peerId, stale))).code).toBe('fork');
    } finally {
      await stale.close();
    }
    expect(await heldBy(bob, alice)).toEqual(before);

    // The genuine records are still taken.
    expect((await syncCatalogTo(service, bob.peerId, alice.catalog)).head).toEqual(alice.catalog.head());
  });

  it('serves each member only its own log, and no protocol at all to a stranger', async () => {
    const alice = await startHome('alice');
    const bob = await startHome('bob');
    const carol = await startHome('carol');
    const stranger = await startHome('stranger');
    await pair(alice, bob);
    await pair(bob, carol);
    await alice.catalog.append(run(0, 100));
    await syncCatalogTo(alice.node.services.catalog, bob.peerId, alice.catalog);
    const aliceHeld = await heldBy(bob, alice);

    // Carol asks Bob for "the" log and gets hers: nothing.
    expect(await carol.node.services.catalog.head(bob.peerId)).toEqual({ seq: 0, hash: ZERO_HASH });
    expect(await collect(carol.node.services.catalog.pull(bob.peerId, 1))).toEqual([]);
    // Alice's records pushed by Carol are checked against Carol's key.
    const aliceRecords = await envelopesOf(alice.catalog);
    const asCarol = await syncRefusal(carol.node.services.catalog.push(bob.peerId, { seq: 0, hash: ZERO_HASH }, aliceRecords.slice(0, 10)));
    expect(asCarol.code).toBe('signature');
    expect(await bob.store.head(carol.peerId.toString())).toEqual({ seq: 0, hash: ZERO_HASH });
    expect((await collect(alice.node.services.catalog.pull(bob.peerId, 1))).length).toBe(aliceHeld.head.seq);

    // A stranger admitted while Bob has an invite open reaches the connection, not the protocol.
    await bob.node.services.pair.invite({ quota: 1 });
    // The stranger believes Bob is family, so its own gater lets it dial him.
    await stranger.roster.recordPeer({ peerId: bob.peerId.toString(), name: 'bob', addrs: [], quotaTheyGrantUs: 1, quotaWeGrantThem: 1 });
    await stranger.node.peerStore.merge(bob.peerId, { multiaddrs: bob.node.getMultiaddrs() });
    await stranger.node.dial(bob.node.getMultiaddrs()[0]!);
    await stranger.catalog.append(run(0, 5));
    expect(await rejects(stranger.node.services.catalog.head(bob.peerId))).toBe(true);
    expect(await rejects(syncCatalogTo(stranger.node.services.catalog, bob.peerId, stranger.catalog))).toBe(true);
    expect(await rejects(stranger.node.services.catalog.push(bob.peerId, { seq: 0, hash: ZERO_HASH }, await envelopesOf(stranger.catalog)))).toBe(true);
    expect(await rejects(collect(stranger.node.services.catalog.pull(bob.peerId, 1)))).toBe(true);
    expect(await bob.store.head(stranger.peerId.toString())).toEqual({ seq: 0, hash: ZERO_HASH });
    expect(await heldBy(bob, alice)).toEqual(aliceHeld);
  });

  it('resets a stream with an oversized or malformed message and keeps serving', async () => {
    const alice = await startHome('alice');
    const bob = await startHome('bob');
    await pair(alice, bob);
    const service = alice.node.services.catalog;
    await alice.catalog.append(run(0, 30));
    await syncCatalogTo(service, bob.peerId, alice.catalog);
    await alice.catalog.append(run(1, 5));
    const hostHead = await service.head(bob.peerId);
    const nextRecord = (await envelopesOf(alice.catalog, hostHead.seq + 1))[0]!;
    const before = await heldBy(bob, alice);

    const attempts: Array<{ what: string; frames: Uint8Array[] }> = [
      // A request whose length prefix alone is over the limit (10 MiB): no body follows.
      { what: 'oversized request', frames: [Uint8Array.of(0x80, 0x80, 0x80, 0x05)] },
      { what: 'batch over the limit', frames: [encodeJsonFrame({ op: 'push', from: hostHead, count: 5, bytes: MAX_ENVELOPE_BYTES + 1 }, 1024)] },
      // A record longer than the batch it was declared in.
      { what: 'record past its batch', frames: [encodeJsonFrame({ op: 'push', from: hostHead, count: 1, bytes: 100 }, 1024), encodeFrame(nextRecord)] },
      { what: 'unknown op', frames: [encodeJsonFrame({ op: 'truncate', to: 1 }, 1024)] },
      { what: 'not JSON', frames: [encodeFrame(Buffer.from('{"op": "head"'))] },
    ];
    for (const { what, frames } of attempts) {
      const stream = await alice.node.dialProtocol(bob.peerId, CATALOG_PROTOCOL);
      const reader = new StreamReader(stream);
      for (const frame of frames) stream.send(frame);
      await expect(reader.readFrame(4096), what).rejects.toThrow();
      expect(await closed(stream), what).toBe('reset');
      reader.detach();
    }
    expect(await heldBy(bob, alice)).toEqual(before);

    // A pull abandoned after a few records resets its stream too; the host is unharmed.
    let taken = 0;
    for await (const record of service.pull(bob.peerId, 1)) {
      expect(record.length).toBeGreaterThan(0);
      if (++taken === 3) break;
    }
    expect(await service.head(bob.peerId)).toEqual(hostHead);
    expect((await syncCatalogTo(service, bob.peerId, alice.catalog)).head).toEqual(alice.catalog.head());
    expect(peerIdFromString(bob.peerId.toString()).equals(bob.peerId)).toBe(true);
  });
});
