// The replicator sends an object from the cheapest copy it has without reading it
// first: the receiving host checks the catalog's Merkle root, refuses a damaged
// copy, and the replicator then sends the next copy. Real pieces: an owner libp2p
// node with the catalog service, a host with the object service over a HostStore,
// a LevelDB catalog, a directory target and an outbox on disk.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { tcp } from '@libp2p/tcp';
import { createLibp2p, type Libp2p } from 'libp2p';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FamilyRoster } from '../node/family.ts';
import { familyPing } from '../node/host.ts';
import { Replicator } from '../node/replicator.ts';
import { catalogSyncService, type CatalogSyncService } from '../protocol/catalog-sync.ts';
import { Catalog } from '../storage/catalog/catalog.ts';
import { HostCatalogStore } from '../storage/hostcatalog/host-catalog-store.ts';
import { deriveKeys } from '../storage/keys.ts';
import { DirTier } from '../storage/tier/dir.ts';
import { declaredFor, startHost, type TestHost } from './object-protocol.fixture.ts';

const MiB = 1024 * 1024;
const DAY = 24 * 60 * 60 * 1000;

describe('replicator sources', () => {
  let dir: string;
  let owner: Libp2p<{ catalog: CatalogSyncService }>;
  let host: TestHost;
  let catalog: Catalog;
  let catalogs: HostCatalogStore;
  let disk: DirTier;
  let replicator: Replicator;
  let roster: FamilyRoster;
  const outbox = (): string => join(dir, 'outbox');

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hearth-replicator-'));
    catalogs = await HostCatalogStore.open(join(dir, 'catalogs'));
    owner = await createLibp2p({
      privateKey: await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(31)),
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { catalog: catalogSyncService({ store: catalogs }), ping: familyPing() },
    });
    host = await startHost(32, () => [owner.peerId], { home: join(dir, 'host'), quotaFor: () => Infinity });
    await mkdir(join(dir, 'owner'));
    roster = await FamilyRoster.open(join(dir, 'owner'));
    await roster.recordPeer({
      peerId: host.node.peerId.toString(),
      name: 'H',
      addrs: host.node.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/[^/]+$/, '')),
      quotaTheyGrantUs: 1e12,
      quotaWeGrantThem: 0,
    });
    catalog = await Catalog.open(join(dir, 'catalog'), deriveKeys(randomBytes(32)));
    await mkdir(join(dir, 'disk'));
    await mkdir(outbox());
    disk = new DirTier({ name: 'disk', root: join(dir, 'disk'), ownerId: owner.peerId.toString() });
    replicator = new Replicator({
      host: owner,
      roster,
      catalog,
      catalogSync: owner.services.catalog,
      damagedAt: async () => [],
      outboxDir: outbox(),
      localTiers: () => [disk],
      policy: () => ({ peers: 1, cold: 'never', fallbackAfterMs: 0 }),
      unreachableAfter: () => DAY,
      log: () => {},
    });
  });

  afterEach(async () => {
    await owner.stop();
    await host.stop();
    await catalog.close();
    await catalogs.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** An object the catalog knows, with a copy in the outbox and one on the directory target (each good or damaged). */
  async function objectWithCopies(id: string, copies: { outbox: 'good' | 'damaged'; disk: 'good' | 'damaged' }): Promise<Buffer> {
    const data = randomBytes(3 * MiB + 5);
    const damaged = Buffer.from(data);
    damaged[MiB]! ^= 0x04;
    await writeFile(join(outbox(), id), copies.outbox === 'good' ? data : damaged);
    const bytes = copies.disk === 'good' ? data : damaged;
    await disk.put(id, { size: bytes.length, open: (offset) => Readable.from([bytes.subarray(offset)]) });
    const { merkleRoot, leafSize } = declaredFor(data);
    const time = Date.now();
    await catalog.append([
      { k: 'object', id, kind: 'volume', name: `${id}.iso`, size: data.length, plainSize: data.length, merkleRoot, leafSize, contents: [], time },
      { k: 'place', id, tier: 'dir', target: 'disk', location: disk.location(id), time },
    ]);
    return data;
  }

  async function heldByHost(id: string): Promise<Buffer> {
    return readFile(host.store.objectFile(owner.peerId.toString(), id));
  }

  it('sends the outbox copy when the directory target holds a damaged one', async () => {
    const data = await objectWithCopies('aa01', { outbox: 'good', disk: 'damaged' });
    const report = await replicator.run();
    expect(report.placed).toEqual([{ id: 'aa01', peer: 'H' }]);
    expect(report.failed.filter((f) => f.id)).toEqual([]);
    expect((await heldByHost('aa01')).equals(data)).toBe(true);
    expect(report.sent).toMatchObject({ objects: 1, bytes: data.length });
  });

  it('a damaged outbox copy is refused by the host, and the copy on the directory target is sent instead', async () => {
    const data = await objectWithCopies('bb02', { outbox: 'damaged', disk: 'good' });
    const report = await replicator.run();
    expect(report.failed.filter((f) => f.id)).toEqual([]);
    expect(report.placed).toEqual([{ id: 'bb02', peer: 'H' }]);
    // The outbox copy is damaged: these bytes came from the directory target's file.
    expect((await heldByHost('bb02')).equals(data)).toBe(true);
    const placements = (await catalog.placements('bb02')).map((p) => p.target).sort();
    expect(placements).toEqual(['disk', host.node.peerId.toString()].sort());
  });

  it('when every copy is damaged nothing is placed and the failure names each refusal', async () => {
    await objectWithCopies('cc03', { outbox: 'damaged', disk: 'damaged' });
    const report = await replicator.run();
    expect(report.placed).toEqual([]);
    expect(report.pending).toBe(1);
    const failure = report.failed.find((f) => f.id === 'cc03');
    expect(failure?.peer).toBe('H');
    // Placements name relatives by PeerId, and so do the tiers the replicator puts through.
    const refusal = `peer ${host.node.peerId}: object cc03: the received bytes have Merkle root [0-9a-f]{64} \\(2048-byte leaves\\) but the owner declared [0-9a-f]{64}; the upload was discarded, send it again`;
    expect(failure?.error).toMatch(new RegExp(`^no healthy copy to send from: ${refusal}; ${refusal}$`));
    await expect(host.store.stat(owner.peerId.toString(), 'cc03')).rejects.toMatchObject({ code: 'ENOOBJECT' });
    expect((await catalog.placements('cc03')).map((p) => p.target)).toEqual(['disk']);
  });

  it('a relative asked whether it answers by two callers at once, and again at once, answers each', async () => {
    // libp2p allows one outbound ping stream per connection: a second ping while
    // one is open (or still closing) fails at once without reaching the relative.
    const member = roster.members()[0]!;
    expect(await Promise.all([replicator.reach(member), replicator.reach(member), replicator.reach(member)])).toEqual([true, true, true]);
    for (let i = 0; i < 5; i++) expect(await replicator.reach(member)).toBe(true);
  });

  it('a relative asked whether it answers by two callers at once, and again at once, answers each', async () => {
    // libp2p allows one outbound ping stream per connection by default: a second
    // ping while one is open fails at once without reaching the relative.
    const member = roster.members()[0]!;
    expect(await Promise.all([replicator.reach(member), replicator.reach(member), replicator.reach(member)])).toEqual([true, true, true]);
    for (let i = 0; i < 5; i++) expect(await replicator.reach(member)).toBe(true);
  });

  it('a relative answers while the connection monitor\'s heartbeat ping is open on the same connection', async () => {
    const member = roster.members()[0]!;
    expect(await replicator.reach(member)).toBe(true);
    // What the heartbeat holds every 10 s: an outbound stream of the ping protocol.
    const heartbeat = await owner.dialProtocol(host.node.peerId, '/ipfs/ping/1.0.0');
    try {
      expect(await replicator.reach(member)).toBe(true);
    } finally {
      heartbeat.abort(new Error('test over'));
    }
  });
});
