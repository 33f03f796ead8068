import { afterEach, describe, expect, it } from 'vitest';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { lpStream } from '@libp2p/utils';
import { PAIR_PROTOCOL, PairRefusedError } from '../protocol/pair.ts';
import { encodeInvite, InviteCodeError, parseInvite } from '../protocol/invite.ts';
import { ROSTER_FILE } from '../node/family.ts';
import { cleanup, newSeed, startHome, type TestHome } from './host-fixture.ts';
import { eventually } from './helpers/daemon.ts';

const homes: TestHome[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await cleanup(homes.splice(0), dirs.splice(0));
});

async function home(name: string, options: Omit<Parameters<typeof startHome>[0], 'name'> = {}): Promise<TestHome> {
  const h = await startHome({ name, ...options });
  homes.push(h);
  return h;
}

/** A clock a test can move. */
function movableClock(start = Date.parse('2026-11-22T12:00:00Z')): { now: () => Date; advance(ms: number): void } {
  let t = start;
  return { now: () => new Date(t), advance: (ms) => { t += ms; } };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('/hearth/pair/1', () => {
  it('pairs two homes through an invite code; both rosters record each other', async () => {
    const alice = await home('alice');
    const bob = await home('bob');
    const { code, invite } = await alice.node.services.pair.invite({ name: 'Bob', quota: 5_000_000 });
    expect(code.startsWith('hearth1')).toBe(true);
    expect(invite.addrs.every((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true);

    const joined = await bob.node.services.pair.join(code, { quota: 7_000_000 });
    expect(joined).toMatchObject({ peerId: alice.peerId, name: 'alice', quotaTheyGrantUs: 5_000_000, quotaWeGrantThem: 7_000_000, relinked: false });

    expect(alice.roster.members()).toEqual([expect.objectContaining({
      name: 'Bob', peerId: bob.peerId, quotaTheyGrantUs: 7_000_000, quotaWeGrantThem: 5_000_000,
      addrs: bob.node.getMultiaddrs().map((ma) => ma.toString().replace(/\/p2p\/.*$/, '')),
    })]);
    expect(bob.roster.members()).toEqual([expect.objectContaining({
      name: 'alice', peerId: alice.peerId, quotaTheyGrantUs: 5_000_000, quotaWeGrantThem: 7_000_000, addrs: invite.addrs,
    })]);
    expect(alice.roster.invites()[0]).toMatchObject({ usedBy: bob.peerId });

    // Persisted, private, and read back by a fresh roster.
    const file = join(alice.dir, ROSTER_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const onDisk = JSON.parse(await readFile(file, 'utf8')) as { members: Array<{ peerId: string }>; invites: Array<Record<string, unknown>> };
    expect(onDisk.members.map((m) => m.peerId)).toEqual([bob.peerId]);
    expect(JSON.stringify(onDisk)).not.toContain(invite.secret.toString('hex'));

    // Members can now talk: status works both ways.
    expect((await bob.node.services.status.query(alice.node.peerId)).quotaBytes).toBe(5_000_000);
    expect((await alice.node.services.status.query(bob.node.peerId)).quotaBytes).toBe(7_000_000);
  });

  it('a code works once: another home is refused and nothing is recorded', async () => {
    const alice = await home('alice');
    const bob = await home('bob');
    const carol = await home('carol');
    const { code } = await alice.node.services.pair.invite({ quota: 1 });
    await bob.node.services.pair.join(code, { quota: 1 });

    // With no code outstanding, Alice's gater no longer admits strangers at all.
    const closed = await rejection(carol.node.services.pair.join(code, { quota: 1 }));
    expect(closed).toBeInstanceOf(PairRefusedError);
    expect((closed as PairRefusedError).reason).toBe('not-admitted');
    expect(closed.message).toMatch(/^the inviting home closed the connection: this code was already used or has expired/);

    // With another code outstanding, Carol gets in as far as the pair protocol and hears why.
    await alice.node.services.pair.invite({ quota: 1 });
    const used = await rejection(carol.node.services.pair.join(code, { quota: 1 }));
    expect(used).toBeInstanceOf(PairRefusedError);
    expect((used as PairRefusedError).reason).toBe('used');
    expect(used.message).toBe('this invite code was already used (codes work once): ask for a new one');

    expect(carol.roster.members()).toEqual([]);
    expect(alice.roster.members().map((m) => m.peerId)).toEqual([bob.peerId]);
  });

  it('the joiner that used a code may repeat the join (its first reply may have been lost)', async () => {
    const alice = await home('alice');
    const bob = await home('bob');
    const { code } = await alice.node.services.pair.invite({ quota: 1 });
    await bob.node.services.pair.join(code, { quota: 1 });
    const again = await bob.node.services.pair.join(code, { quota: 2 });
    expect(again.relinked).toBe(true);
    expect(alice.roster.members()).toEqual([expect.objectContaining({ peerId: bob.peerId, quotaTheyGrantUs: 2 })]);
    expect(bob.roster.members()).toHaveLength(1);
  });

  it('a code is judged by the clock that made it: refused when expired there, saying how far the clocks differ; accepted, with a warning, when only the joiner\'s clock says it expired', async () => {
    const aliceClock = movableClock();
    const bobClock = movableClock();
    const alice = await home('alice', { now: aliceClock.now });
    const bob = await home('bob', { now: bobClock.now });
    const { code } = await alice.node.services.pair.invite({ quota: 1, ttlMs: 60 * 60 * 1000 });

    // Alice's clock runs 2 h ahead of Bob's: the code looks valid to him, but not to her.
    // (A second, fresh invite keeps Alice's gate open to strangers meanwhile.)
    aliceClock.advance(2 * 60 * 60 * 1000);
    await alice.node.services.pair.invite({ quota: 1 });
    const late = await rejection(bob.node.services.pair.join(code, { quota: 1 }));
    expect(late).toBeInstanceOf(PairRefusedError);
    expect((late as PairRefusedError).reason).toBe('expired');
    expect(late.message).toBe("this invite code expired at 2026-11-22T13:00:00.000Z: ask for a new one (the clocks differ: this computer's clock is 2 h behind the inviting home's; codes expire by the inviting home's clock)");
    expect(alice.roster.members()).toEqual([]);
    expect(bob.roster.members()).toEqual([]);

    // Now Bob's clock runs 3 h 10 min ahead of Alice's: a fresh code looks expired
    // to him, but Alice made it and takes it; Bob is told his clock is off.
    const { code: fresh } = await alice.node.services.pair.invite({ quota: 1, ttlMs: 60 * 60 * 1000 });
    bobClock.advance((2 + 3) * 60 * 60 * 1000 + 10 * 60 * 1000);
    const joined = await bob.node.services.pair.join(fresh, { quota: 1 });
    expect(joined.clockWarning).toBe("the clocks differ: this computer's clock is 3 h 10 min ahead of the inviting home's");
    expect(bob.roster.members()).toHaveLength(1);
  });

  it('a code from another home, or with a wrong secret, is refused as unknown', async () => {
    const alice = await home('alice');
    const bob = await home('bob');
    const { invite } = await alice.node.services.pair.invite({ quota: 1 });
    const forged = encodeInvite({ ...invite, secret: Buffer.alloc(16, 7) });
    const err = await rejection(bob.node.services.pair.join(forged, { quota: 1 }));
    expect((err as PairRefusedError).reason).toBe('unknown');
    expect(err.message).toMatch(/does not know this invite code/);
    expect(alice.roster.members()).toEqual([]);
    expect(bob.roster.members()).toEqual([]);
    // The real invite is still usable afterwards.
    expect(alice.roster.hasOutstandingInvite()).toBe(true);
  });

  it('malformed and damaged codes are refused with one clear line, before anything is dialled', async () => {
    const alice = await home('alice');
    const bob = await home('bob');
    const { code } = await alice.node.services.pair.invite({ quota: 1 });
    const position = 20;
    const swapped = code.slice(0, position) + (code[position] === 'q' ? 'p' : 'q') + code.slice(position + 1);
    const cases: Array<[string, string, RegExp]> = [
      [swapped, 'damaged', /^invite code is damaged \(checksum mismatch\): copy it again$/],
      [code.slice(0, -3), 'damaged', /checksum mismatch/],
      [code.replace('hearth1', 'hearth1b'), 'damaged', /checksum mismatch/],
      ['hello world', 'malformed', /^invite code is malformed \(it must start with "hearth1"\)/],
      ['hearth1qq', 'malformed', /too short/],
    ];
    for (const [text, kind, message] of cases) {
      const err = await rejection(bob.node.services.pair.join(text, { quota: 1 }));
      expect(err).toBeInstanceOf(InviteCodeError);
      expect((err as InviteCodeError).kind).toBe(kind);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('\n');
    }
    expect(bob.node.getConnections()).toEqual([]);
    expect(alice.roster.members()).toEqual([]);
    expect(bob.roster.members()).toEqual([]);
    // Line-wrapped and upper-cased copies still parse.
    const wrapped = code.toUpperCase().replace(/(.{40})/g, '$1\n  ');
    expect(parseInvite(wrapped).inviter).toBe(alice.peerId);
  });

  it('a recovered home (same seed, new node, empty home) is re-linked, not duplicated', async () => {
    const alice = await home('alice');
    const seed = newSeed();
    const bob = await home('bob', { seed });
    const first = await alice.node.services.pair.invite({ name: 'Bob', quota: 10 });
    await bob.node.services.pair.join(first.code, { quota: 20 });
    const pairedAt = alice.roster.member(bob.peerId)!.pairedAt;
    await bob.stop();

    const recovered = await home('bob-recovered', { seed });
    expect(recovered.peerId).toBe(bob.peerId);
    expect(recovered.roster.members()).toEqual([]);
    const second = await alice.node.services.pair.invite({ quota: 30 });
    const joined = await recovered.node.services.pair.join(second.code, { quota: 40 });
    expect(joined.relinked).toBe(true);

    expect(alice.roster.members()).toHaveLength(1);
    expect(alice.roster.members()[0]).toMatchObject({
      name: 'Bob', peerId: bob.peerId, pairedAt, quotaWeGrantThem: 30, quotaTheyGrantUs: 40,
      addrs: recovered.node.getMultiaddrs().map((ma) => ma.toString().replace(/\/p2p\/.*$/, '')),
    });
    expect(recovered.roster.members()).toEqual([expect.objectContaining({ peerId: alice.peerId, name: 'alice', quotaTheyGrantUs: 30 })]);
  });

  it('an oversized or malformed pair request resets the stream and ends the stranger\'s connection; a new one may join', async () => {
    const alice = await home('alice');
    const bob = await home('bob');
    const { code } = await alice.node.services.pair.invite({ quota: 1 });
    const release = bob.roster.expectInviter(alice.peerId);
    try {
      for (const bad of [Buffer.from([0xff, 0xff, 0x03, 0x20]), Buffer.from([5, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b])]) {
        const stream = await bob.node.dialProtocol(alice.node.getMultiaddrs()[0]!, PAIR_PROTOCOL);
        stream.send(bad);
        const err = await rejection(lpStream(stream).read({ signal: AbortSignal.timeout(5000) }));
        expect(err.name).toBe('StreamResetError');
        await eventually(() => bob.node.getConnections(alice.node.peerId).length === 0, 'Alice to end the connection', 40, 100);
      }
    } finally {
      release();
    }
    expect(alice.roster.members()).toEqual([]);
    expect((await bob.node.services.pair.join(code, { quota: 1 })).peerId).toBe(alice.peerId);
  });

  it('a stranger gets one pair stream at a time: a second one opened alongside is refused', async () => {
    const alice = await home('alice');
    const bob = await home('bob');
    await alice.node.services.pair.invite({ quota: 1 });
    const release = bob.roster.expectInviter(alice.peerId);
    try {
      const first = await bob.node.dialProtocol(alice.node.getMultiaddrs()[0]!, PAIR_PROTOCOL);
      const request = Buffer.from(JSON.stringify({ proof: '00'.repeat(32), name: 'bob', quota: 1, addrs: [] }));
      const second = await bob.node.dialProtocol(alice.node.peerId, PAIR_PROTOCOL).then(async (stream) => {
        const lp = lpStream(stream);
        try {
          await lp.write(request);
          await lp.read({ signal: AbortSignal.timeout(5000) });
          return 'answered';
        } catch (err) {
          return (err as Error).name;
        }
      }, (err: Error) => err.name);
      expect(second).not.toBe('answered');
      expect(first.status).toBe('open');
    } finally {
      release();
    }
  });

  it('two homes with the same name get distinct roster names', async () => {
    const alice = await home('alice');
    const one = await home('grandma');
    const two = await home('grandma');
    for (const joiner of [one, two]) {
      const { code } = await alice.node.services.pair.invite({ quota: 1 });
      await joiner.node.services.pair.join(code, { quota: 1 });
    }
    expect(alice.roster.members().map((m) => m.name)).toEqual(['grandma', 'grandma-2']);
  });
});
