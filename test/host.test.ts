import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Multiaddr } from '@multiformats/multiaddr';
import { FamilyRoster } from '../node/family.ts';
import { peerIdFromString } from '@libp2p/peer-id';
import { createHearthHost, DHT_PROTOCOL, type FamilyGate } from '../node/host.ts';
import { PAIR_PROTOCOL } from '../protocol/pair.ts';
import { STATUS_PROTOCOL } from '../protocol/status.ts';
import { cleanup, newSeed, startHome, TEST_VERSION, type TestHome } from './host-fixture.ts';

const homes: TestHome[] = [];
afterEach(async () => {
  await cleanup(homes.splice(0));
});

async function home(name: string, options: Omit<Parameters<typeof startHome>[0], 'name'> = {}): Promise<TestHome> {
  const h = await startHome({ name, ...options });
  homes.push(h);
  return h;
}

/** Record `b` in `a`'s roster as if they had paired; with addresses, also in `a`'s peer store. */
async function knows(a: TestHome, b: TestHome, withAddrs = true): Promise<void> {
  await a.roster.recordPeer({
    peerId: b.peerId,
    name: b.name,
    addrs: withAddrs ? [addrOf(b).decapsulateCode(421).toString()] : [],
    quotaTheyGrantUs: 100,
    quotaWeGrantThem: 200,
  });
  if (withAddrs) await a.node.peerStore.merge(b.node.peerId, { multiaddrs: [addrOf(b)] });
}

function addrOf(h: TestHome): Multiaddr {
  return h.node.getMultiaddrs()[0]!;
}

async function rejects(promise: Promise<unknown>): Promise<boolean> {
  try {
    await promise;
    return false;
  } catch {
    return true;
  }
}

/** Poll a condition a bounded number of times. */
async function eventually<T>(probe: () => Promise<T | undefined>, tries = 100, pauseMs = 50): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(pauseMs);
  }
  throw new Error(`condition not met after ${tries} tries`);
}

describe('Hearth libp2p host', () => {
  it('derives the same PeerId from the same seed, a different one from another seed', async () => {
    const seed = newSeed();
    const gate: FamilyGate = { isMember: () => false, admitsStranger: () => false };
    const one = await createHearthHost({ seed, listen: ['/ip4/127.0.0.1/tcp/0'], gate });
    const two = await createHearthHost({ seed: Buffer.from(seed), listen: ['/ip4/127.0.0.1/tcp/0'], gate });
    const other = await createHearthHost({ seed: newSeed(), listen: ['/ip4/127.0.0.1/tcp/0'], gate });
    try {
      expect(two.peerId.equals(one.peerId)).toBe(true);
      expect(other.peerId.equals(one.peerId)).toBe(false);
      expect(one.peerId.type).toBe('Ed25519');
      // The DHT speaks only Hearth's private protocol, never the public IPFS one.
      expect(one.getProtocols()).toContain(DHT_PROTOCOL);
      expect(one.getProtocols().filter((p) => p.includes('/kad/'))).toEqual([DHT_PROTOCOL]);
    } finally {
      await Promise.all([one.stop(), two.stop(), other.stop()]);
    }
    await expect(createHearthHost({ seed: Buffer.alloc(31), listen: [], gate })).rejects.toThrow(/32 bytes/);
  });

  it('refuses a stranger before any protocol runs, while a member can ask for status', async () => {
    const alice = await home('alice');
    const member = await home('member');
    const stranger = await home('stranger');
    await knows(alice, member);
    await knows(member, alice);
    // The stranger believes Alice is family, so its own gater lets it dial her.
    await knows(stranger, alice);

    alice.stored.set(member.peerId, 12345);
    const status = await member.node.services.status.query(alice.node.peerId);
    expect(status).toMatchObject({ version: TEST_VERSION, quotaBytes: 200, storedBytes: 12345, pendingDeletions: 0 });
    expect(status.freeBytes).toBeGreaterThan(0);

    for (const protocol of [STATUS_PROTOCOL, PAIR_PROTOCOL, DHT_PROTOCOL, '/ipfs/id/1.0.0']) {
      expect(await rejects(stranger.node.dialProtocol(addrOf(alice), protocol)), protocol).toBe(true);
    }
    expect(await rejects(stranger.node.services.status.query(alice.node.peerId))).toBe(true);
    expect(alice.node.getConnections(stranger.node.peerId)).toEqual([]);

    // The member is still served. (Over its open connection: libp2p limits new
    // inbound connections per IP address, and every test home is 127.0.0.1.)
    alice.stored.set(member.peerId, 54321);
    expect((await member.node.services.status.query(alice.node.peerId)).storedBytes).toBe(54321);

    // And the other way: Alice's own gater will not dial the stranger.
    expect(await rejects(alice.node.dial(addrOf(stranger)))).toBe(true);
  });

  it('while an invite is open a stranger may connect, but reaches only pair, and is dropped after the grace period', async () => {
    const alice = await home('alice', { strangerGraceMs: 1500 });
    const bob = await home('bob');
    const stranger = await home('stranger');
    await knows(alice, bob);
    await knows(bob, alice);
    await knows(stranger, alice);
    await alice.node.services.pair.invite({ quota: 1 });

    await stranger.node.dial(addrOf(alice));
    await eventually(async () => (alice.node.getConnections(stranger.node.peerId).length === 1 ? true : undefined));
    // Status and the DHT reset the stranger's streams; Bob's address stays secret.
    expect(await rejects(stranger.node.services.status.query(alice.node.peerId))).toBe(true);
    const dhtStream = await stranger.node.dialProtocol(alice.node.peerId, DHT_PROTOCOL);
    await eventually(async () => (dhtStream.status !== 'open' ? true : undefined));
    expect(dhtStream.status).not.toBe('closed');
    expect(await rejects(stranger.node.peerRouting.findPeer(bob.node.peerId, { signal: AbortSignal.timeout(5000) }))).toBe(true);
    // Nor does Alice's DHT tell her family about the stranger.
    await bob.node.dial(addrOf(alice));
    expect(await rejects(bob.node.peerRouting.findPeer(stranger.node.peerId, { signal: AbortSignal.timeout(5000) }))).toBe(true);
    // The pair protocol itself is reachable.
    const pairStream = await stranger.node.dialProtocol(alice.node.peerId, PAIR_PROTOCOL);
    expect(pairStream.protocol).toBe(PAIR_PROTOCOL);
    pairStream.abort(new Error('test done'));

    await eventually(async () => (alice.node.getConnections(stranger.node.peerId).length === 0 ? true : undefined));
  });

  it('private DHT: C finds B\'s address by PeerId through A, then reaches B', async () => {
    const a = await home('a');
    const b = await home('b');
    const c = await home('c');
    await knows(a, b);
    await knows(a, c);
    await knows(b, a);
    await knows(b, c);
    await knows(c, a);
    await knows(c, b, false);

    await b.node.dial(addrOf(a));
    await c.node.dial(addrOf(a));
    expect(await c.node.peerStore.has(b.node.peerId) ? (await c.node.peerStore.get(b.node.peerId)).addresses : []).toEqual([]);

    const found = await eventually(async () => {
      const info = await c.node.peerRouting.findPeer(b.node.peerId, { signal: AbortSignal.timeout(2000) });
      return info.multiaddrs.length > 0 ? info : undefined;
    });
    expect(found.multiaddrs.map((ma) => ma.toString())).toContain(addrOf(b).decapsulateCode(421).toString());
    expect((await c.node.services.status.query(peerIdFromString(b.peerId))).quotaBytes).toBe(200);
  });

  it('puts known relatives\' addresses in the peer store so they can be dialled by PeerId', async () => {
    const bob = await home('bob');
    const dir = await mkdtemp(join(tmpdir(), 'hearth-alice-'));
    const before = await FamilyRoster.open(dir);
    await before.recordPeer({ peerId: bob.peerId, name: 'bob', addrs: [addrOf(bob).decapsulateCode(421).toString()], quotaTheyGrantUs: 1, quotaWeGrantThem: 1 });
    const alice = await home('alice', { dir });
    await knows(bob, alice);
    expect((await alice.node.services.status.query(bob.node.peerId)).version).toBe(TEST_VERSION);
  });
});
