// Hole 1 of issue 10, played against a real daemon: a removed relative (a libp2p
// node in this process, using Hearth's own pair client) must not get back in by
// replaying its old invite code, must lose its open connection, and strangers get
// one try at /hearth/pair/1, and only while a code is outstanding.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { PairRefusedError } from '../protocol/pair.ts';
import { encodeInvite, parseInvite } from '../protocol/invite.ts';
import { hearthJson, hearthOk } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { cleanup, startHome, type TestHome } from './host-fixture.ts';

let work: string;
let alice: RunningDaemon;
const homes: TestHome[] = [];
const aliceHome = () => join(work, 'alice');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hearth-revoke-'));
  hearthJson(aliceHome(), ['init']);
  hearthOk(aliceHome(), ['config', 'set', 'name', 'alice']);
  alice = await startDaemon(aliceHome());
});

afterAll(async () => {
  await alice?.stop();
  await cleanup(homes.splice(0));
  rmSync(work, { recursive: true, force: true });
});

async function home(name: string): Promise<TestHome> {
  const h = await startHome({ name });
  homes.push(h);
  return h;
}

function invite(name: string, quota = '1MiB'): string {
  return hearthJson<{ code: string }>(aliceHome(), ['invite', '--name', name, '--quota', quota]).code;
}

const alicePeers = () => hearthJson<Array<{ name: string; peerId: string; quotaWeGrantThem: number }>>(aliceHome(), ['peers']);
const connectedTo = (h: TestHome) => h.node.getConnections(peerIdFromString(alice.peerId)).filter((c) => c.status === 'open').length;

/**
 * Every node here dials from 127.0.0.1, and libp2p refuses more than 5 inbound
 * connections a second from one host (inboundConnectionThreshold): each dial
 * waits until 250 ms after the previous one.
 */
let lastDial = 0;
async function paced<T>(dial: () => Promise<T>): Promise<T> {
  const wait = lastDial + 250 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  lastDial = Date.now();
  return dial();
}

async function refusal(promise: () => Promise<unknown>): Promise<PairRefusedError> {
  try {
    await paced(promise);
  } catch (err) {
    if (err instanceof PairRefusedError) return err;
    throw err;
  }
  throw new Error('the join was accepted');
}

describe('a removed relative and strangers at a real daemon', () => {
  it('peers rm closes the removed relative\'s connection; its old code, replayed, re-links nothing', async () => {
    const bob = await home('bob');
    const code = invite('bob', '1MiB');
    await paced(() => bob.node.services.pair.join(code, { quota: 1 }));
    expect(alicePeers().map((p) => p.name)).toEqual(['bob']);
    // Bob, now a member, keeps a connection to Alice, as a relative's daemon does.
    await paced(() => bob.node.dial(multiaddr(alice.addrs[0]!)));
    expect(connectedTo(bob)).toBe(1);

    expect(hearthOk(aliceHome(), ['peers', 'rm', 'bob'])).toBe(`removed bob (${bob.peerId})\n`);
    await eventually(() => connectedTo(bob) === 0, 'Alice to close the removed relative\'s connection', 20, 250);

    // No code outstanding: the gate refuses Bob before any protocol runs.
    const replay = await refusal(() => bob.node.services.pair.join(code, { quota: 1 }));
    expect(replay.reason).toBe('not-admitted');
    // A fresh dial: the dialer's Noise handshake completes before Alice's gater
    // refuses it, so Bob sees the connection open an instant, and nothing runs on it.
    await paced(() => bob.node.dial(multiaddr(alice.addrs[0]!))).catch(() => undefined);
    await expect(paced(() => bob.node.services.status.query(peerIdFromString(alice.peerId), { signal: AbortSignal.timeout(5000) }))).rejects.toThrow();
    await eventually(() => connectedTo(bob) === 0, 'Alice\'s gater to refuse the removed relative', 20, 250);
    expect(alicePeers()).toEqual([]);

    // With a code outstanding for someone else, Bob gets as far as the pair
    // protocol, hears that his code is spent, and is cut off.
    const other = invite('someone else');
    const spent = await refusal(() => bob.node.services.pair.join(code, { quota: 1 }));
    expect(spent.reason, spent.message).toBe('used');
    expect(spent.message).toMatch(/already used/);
    expect(alicePeers()).toEqual([]);

    // A new code from Alice brings him back, with that code's quota.
    await paced(() => bob.node.services.pair.join(other, { quota: 1 }));
    expect(alicePeers()).toEqual([expect.objectContaining({ peerId: bob.peerId, quotaWeGrantThem: 1024 ** 2 })]);
    hearthOk(aliceHome(), ['peers', 'rm', 'someone else']);
  });

  it('a stranger with a wrong proof is cut off after one try, long before the grace period', async () => {
    const carol = await home('carol');
    const real = parseInvite(invite('dave'));
    const forged = encodeInvite({ ...real, secret: Buffer.alloc(16, 9) });
    const release = carol.roster.expectInviter(alice.peerId);
    try {
      await paced(() => carol.node.dial(multiaddr(alice.addrs[0]!)));
      const wrong = await refusal(() => carol.node.services.pair.join(forged, { quota: 1 }));
      expect(wrong.reason).toBe('unknown');
      // Alice closed the connection herself (Carol's join keeps one it found open).
      await eventually(() => connectedTo(carol) === 0, 'Alice to cut the stranger', 20, 250);
      // Cut off is not banned: with the real code, on a new connection, she joins.
      await paced(() => carol.node.services.pair.join(encodeInvite(real), { quota: 1 }));
    } finally {
      release();
    }
    expect(alicePeers().map((p) => p.peerId)).toEqual([carol.peerId]);
    hearthOk(aliceHome(), ['peers', 'rm', 'dave']);
  });

  it('a stranger connected while a code was outstanding cannot reach /hearth/pair/1 once it is used', async () => {
    const eve = await home('eve');
    const dave = await home('dave');
    const code = invite('dave');
    const release = eve.roster.expectInviter(alice.peerId);
    try {
      await paced(() => eve.node.dial(multiaddr(alice.addrs[0]!)));
      await paced(() => dave.node.services.pair.join(code, { quota: 1 }));
      // The only code is spent: over her open connection Eve hears nothing at all.
      const late = await refusal(() => eve.node.services.pair.join(code, { quota: 1 }));
      expect(late.reason).toBe('not-admitted');
      await eventually(() => connectedTo(eve) === 0, 'Alice to cut the stranger', 20, 250);
    } finally {
      release();
    }
    expect(alicePeers().map((p) => p.peerId)).toEqual([dave.peerId]);
  });
});
