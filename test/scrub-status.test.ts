// The owner learns of damage found by a host's scrub through /hearth/status/1:
// three homes on 127.0.0.1, the host running the real HostStore, object and status
// services behind its family gate, the owners storing through /hearth/object/1.
import { mkdtemp, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHearthHost } from '../node/host.ts';
import { FamilyRoster } from '../node/family.ts';
import { pairService } from '../protocol/pair.ts';
import { freeBytesAt, MAX_DAMAGED_IN_STATUS, statusService } from '../protocol/status.ts';
import { merkleRootOfSource, ObjectClient, objectService } from '../protocol/object.ts';
import { MERKLE_LEAF_SIZE } from '../storage/merkle.ts';
import { HostStore, hostedBytes } from '../storage/hoststore/host-store.ts';
import { damagedFor, scrubHostStore } from '../storage/hoststore/scrub.ts';
import { cleanup, newSeed, pairHomes, startHome, TEST_VERSION, type TestHome } from './host-fixture.ts';
import { generatedSource } from './object-protocol.fixture.ts';

interface ScrubbingHost extends TestHome {
  store: HostStore;
  /** Replaces the scrub's answer, to check what an asker accepts. */
  damagedOverride: string[] | undefined;
}

async function startScrubbingHost(): Promise<ScrubbingHost> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-scrub-host-'));
  const seed = newSeed();
  const roster = await FamilyRoster.open(dir);
  const store = new HostStore({ home: dir, quotaFor: (owner) => roster.member(owner)?.quotaWeGrantThem ?? 0 });
  const home = { damagedOverride: undefined as string[] | undefined };
  const node = await createHearthHost({
    seed,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    gate: roster,
    services: {
      pair: pairService({ store: roster, selfName: () => 'host' }),
      status: statusService({
        source: {
          version: TEST_VERSION,
          quotaFor: (peer) => roster.member(peer)?.quotaWeGrantThem ?? 0,
          storedBytesFor: async (peer) => (await store.usage(peer)).used,
          pendingDeletionsFor: async (peer) => (await store.pendingDeletions(peer)).length,
          freeBytes: () => freeBytesAt(dir),
          damagedFor: async (peer) => home.damagedOverride ?? damagedFor(store, peer),
        },
      }),
      object: objectService({ store, isMember: (peer) => roster.isMember(peer.toString()) }),
    },
  });
  return Object.assign(home, {
    name: 'host', dir, seed, roster, node, peerId: node.peerId.toString(), stored: new Map<string, number>(), store,
    stop: async () => {
      await node.stop();
    },
  });
}

async function flipByte(path: string, at: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0]! ^= 0x80;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}

describe('scrub damage in /hearth/status/1', () => {
  const homes: TestHome[] = [];
  let host: ScrubbingHost;
  let alice: TestHome;
  let bob: TestHome;

  beforeEach(async () => {
    host = await startScrubbingHost();
    alice = await startHome({ name: 'alice' });
    bob = await startHome({ name: 'bob' });
    homes.push(host, alice, bob);
    await pairHomes(host, alice, 50_000_000);
    await pairHomes(host, bob, 50_000_000);
  });

  afterEach(async () => {
    await cleanup(homes.splice(0));
  });

  async function putFrom(owner: TestHome, id: string, size: number, seed: number): Promise<void> {
    const source = generatedSource(size, seed);
    const client = new ObjectClient({ node: owner.node, peerId: host.node.peerId });
    await client.put(id, source, { merkleRoot: await merkleRootOfSource(source, MERKLE_LEAF_SIZE), leafSize: MERKLE_LEAF_SIZE });
  }

  it("tells the owner which of its objects the host's scrub found damaged, and only the owner", async () => {
    await putFrom(alice, 'a1', 300_000, 1);
    await putFrom(alice, 'a2', 2_500_000, 2);
    await putFrom(bob, 'b1', 400_000, 3);
    await putFrom(bob, 'a2', 100_000, 4);

    const before = await alice.node.services.status.query(host.node.peerId);
    expect(before).toMatchObject({ damaged: [], damagedTotal: 0, storedBytes: hostedBytes(300_000) + hostedBytes(2_500_000) });

    await flipByte(host.store.objectFile(alice.peerId, 'a2'), 1_234_567);
    const report = await scrubHostStore(host.store);
    expect(report.objects).toBe(4);

    const seenByAlice = await alice.node.services.status.query(host.node.peerId);
    expect(seenByAlice.damaged).toEqual(['a2']);
    expect(seenByAlice.damagedTotal).toBe(1);
    // Bob stored an object with the same id; his copy is intact and he hears of no damage.
    const seenByBob = await bob.node.services.status.query(host.node.peerId);
    expect(seenByBob.damaged).toEqual([]);
    expect(seenByBob.damagedTotal).toBe(0);

    // Alice repairs by putting the object again; the host's answer clears at once.
    await putFrom(alice, 'a2', 2_500_000, 2);
    expect((await alice.node.services.status.query(host.node.peerId)).damaged).toEqual([]);
  });

  it('caps the list in one answer and gives the total', async () => {
    const ids = Array.from({ length: MAX_DAMAGED_IN_STATUS + 500 }, (_, i) => `${String(i).padStart(6, '0')}${'x'.repeat(122)}`);
    host.damagedOverride = ids;
    const status = await alice.node.services.status.query(host.node.peerId);
    expect(status.damaged).toEqual(ids.slice(0, MAX_DAMAGED_IN_STATUS));
    expect(status.damagedTotal).toBe(MAX_DAMAGED_IN_STATUS + 500);
  });

  it('refuses an answer whose damaged list holds something other than object ids', async () => {
    host.damagedOverride = ['../../etc/passwd'];
    await expect(alice.node.services.status.query(host.node.peerId)).rejects.toThrow(/damaged must list at most 1000 object ids/);
  });

  it('hosts that do not scrub answer without the field, as before', async () => {
    await pairHomes(alice, bob);
    const status = await bob.node.services.status.query(alice.node.peerId);
    expect('damaged' in status).toBe(false);
    expect(status.version).toBe(TEST_VERSION);
  });
});
