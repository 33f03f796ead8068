// Hole 4 of issue 10, played against a real daemon: a relative (a libp2p node in
// this process with a real catalog, using Hearth's own catalog and object
// clients) signs as many catalog records as it likes. Its catalog copy at the host
// counts against the quota the host granted: a push past it is refused whole with
// a clear error, and objects get only what the catalog copy leaves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { peerIdFromString } from '@libp2p/peer-id';
import { FamilyRoster } from '../node/family.ts';
import { createHearthHost, type HearthHost } from '../node/host.ts';
import { pairService, type PairService } from '../protocol/pair.ts';
import { CatalogSyncError, catalogSyncService, syncCatalogTo, type CatalogSyncService } from '../protocol/catalog-sync.ts';
import { merkleRootOfSource } from '../protocol/object.ts';
import { freeBytesAt, statusService, type StatusService } from '../protocol/status.ts';
import { Catalog, type CatalogPayload } from '../storage/catalog/catalog.ts';
import { HostCatalogStore, hostedCatalogsPath } from '../storage/hostcatalog/host-catalog-store.ts';
import { deriveKeys } from '../storage/keys.ts';
import { PeerTier } from '../storage/tier/peer.ts';
import { hearthAsync, hearthJson, hearthOk } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon } from './helpers/daemon.ts';

const KiB = 1024;
const QUOTA = 256 * KiB;

let work: string;
let alice: RunningDaemon;
let bob: { node: HearthHost<{ pair: PairService; catalog: CatalogSyncService; status: StatusService }>; catalog: Catalog; store: HostCatalogStore };
const aliceHome = () => join(work, 'alice');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hearth-catalog-quota-'));
  hearthJson(aliceHome(), ['init']);
  hearthOk(aliceHome(), ['config', 'set', 'name', 'alice']);
  alice = await startDaemon(aliceHome());
  const dir = mkdtempSync(join(work, 'bob-'));
  const keys = deriveKeys(randomBytes(32));
  const roster = await FamilyRoster.open(dir);
  const store = await HostCatalogStore.open(hostedCatalogsPath(dir));
  const catalog = await Catalog.open(join(dir, 'catalog'), keys);
  const node = await createHearthHost({
    seed: keys.ed25519Seed,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    gate: roster,
    services: {
      pair: pairService({ store: roster, selfName: () => 'bob' }),
      catalog: catalogSyncService({ store }),
      // Alice's `hearth peers` asks each relative online what it stores for her.
      status: statusService({ source: { version: 'test', quotaFor: () => 0, storedBytesFor: async () => 0, pendingDeletionsFor: async () => 0, freeBytes: () => freeBytesAt(dir) } }),
    },
  });
  bob = { node, catalog, store };
});

afterAll(async () => {
  await alice?.stop();
  await bob?.node.stop();
  await bob?.store.close();
  await bob?.catalog.close();
  rmSync(work, { recursive: true, force: true });
});

/** About `bytes` of catalog records: file versions with long, incompressible paths. */
function records(bytes: number, round: number): CatalogPayload[] {
  const out: CatalogPayload[] = [];
  for (let i = 0; i * 600 < bytes; i++) {
    out.push({
      k: 'file', source: 'photos', path: `${round}/${randomBytes(200).toString('hex')}.jpg`, type: 'file', size: i, mtimeMs: 1.7e12, ctimeMs: 1.7e12,
      ino: i, mode: 0o100644, uid: 1000, gid: 1000, hash: createHash('sha256').update(`${round} ${i}`).digest('hex'), time: 1.75e12 + i,
    });
  }
  return out;
}

async function catalogBytes(): Promise<number> {
  let total = 0;
  for await (const { bytes } of bob.catalog.envelopes()) total += bytes.byteLength;
  return total;
}

/** Alice's view of Bob; asynchronously, so Bob's node in this process can answer her status query meanwhile. */
async function bobAtAlice(): Promise<any> {
  const r = await hearthAsync(aliceHome(), ['peers', '--json']);
  if (r.code !== 0) throw new Error(`hearth peers exited ${r.code}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as any[]).find((p) => p.name === 'bob');
}

describe('a relative\'s catalog copy at a real daemon', () => {
  it('counts against the quota: objects get what it leaves, and a push past the quota is refused whole', async () => {
    const { code } = hearthJson<{ code: string }>(aliceHome(), ['invite', '--name', 'bob', '--quota', `${QUOTA}B`]);
    await bob.node.services.pair.join(code, { quota: 1 });
    const alicePeer = peerIdFromString(alice.peerId);

    // 150 KiB of catalog: within the quota, taken.
    await bob.catalog.append(records(150 * KiB, 1));
    const first = await catalogBytes();
    expect(first).toBeGreaterThan(140 * KiB);
    expect((await syncCatalogTo(bob.node.services.catalog, alicePeer, bob.catalog)).head.seq).toBe(bob.catalog.head().seq);
    expect((await bobAtAlice()).catalogRecordsWeHold).toBe(bob.catalog.head().seq);

    // An object that fits the quota alone, but not beside the catalog copy.
    const object = randomBytes(QUOTA - 100 * KiB);
    const source = { size: object.length, open: (offset: number) => Readable.from([object.subarray(offset)]) };
    const tier = new PeerTier({ name: 'alice', peerId: alicePeer, node: bob.node });
    const put = await tier.put('a'.repeat(64), { ...source, merkleRoot: await merkleRootOfSource(source, 2048), leafSize: 2048 }).then(() => undefined, (err: Error) => err);
    expect(put?.message).toMatch(new RegExp(`needs \\d+ bytes \\(with its Merkle index\\) but \\S+ has ${QUOTA - first} of its`));
    expect((await bobAtAlice()).bytesWeStoreForThem).toBe(0);

    // Another 150 KiB of records would take the copy past the quota: refused, nothing kept.
    const heldSeq = bob.catalog.head().seq;
    await bob.catalog.append(records(150 * KiB, 2));
    const refused = await syncCatalogTo(bob.node.services.catalog, alicePeer, bob.catalog).then(() => undefined, (err: unknown) => err);
    expect(refused).toBeInstanceOf(CatalogSyncError);
    expect((refused as CatalogSyncError).code).toBe('quota');
    expect((refused as CatalogSyncError).message).toMatch(new RegExp(`refused the catalog push: .* over the ${QUOTA} bytes its quota leaves it here .*: ask the host for more quota`));
    expect((refused as CatalogSyncError).message).not.toContain('\n');
    expect(await bobAtAlice()).toMatchObject({ catalogRecordsWeHold: heldSeq, catalogBytesWeHold: first });
  });
});
