import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FamilyRoster, MAX_OUTSTANDING_INVITES, ROSTER_FILE, SPENT_INVITE_RETENTION_MS } from '../node/family.ts';
import type { PairedPeer, StoredInvite } from '../protocol/pair.ts';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempHome(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-roster-'));
  dirs.push(dir);
  return dir;
}

function clock(start = Date.parse('2026-11-22T12:00:00Z')): { now: () => Date; advance(ms: number): void } {
  let t = start;
  return { now: () => new Date(t), advance: (ms) => { t += ms; } };
}

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

function peer(id: string, name = id): PairedPeer {
  return { peerId: id, name, addrs: [`/ip4/10.0.0.1/tcp/${id.length}`], quotaTheyGrantUs: 1, quotaWeGrantThem: 2 };
}

function invite(id: string, now: Date, ttlMs = DAY): StoredInvite {
  return { id, secretHash: 'ab'.repeat(32), quota: 10, createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + ttlMs).toISOString() };
}

describe('FamilyRoster', () => {
  it('persists members and invites atomically in a private file', async () => {
    const dir = await tempHome();
    const c = clock();
    const roster = await FamilyRoster.open(dir, { now: c.now });
    await roster.recordPeer(peer('peer-b', 'Bob'));
    await roster.addInvite(invite('i1', c.now()));
    const file = join(dir, ROSTER_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual([ROSTER_FILE]);

    const again = await FamilyRoster.open(dir, { now: c.now });
    expect(again.members()).toEqual([{ ...peer('peer-b', 'Bob'), name: 'Bob', pairedAt: '2026-11-22T12:00:00.000Z', lastSeen: '2026-11-22T12:00:00.000Z' }]);
    expect(again.invites().map((i) => i.id)).toEqual(['i1']);
    expect(again.isMember('peer-b')).toBe(true);
    expect(again.isMember('peer-x')).toBe(false);
  });

  it('refuses a damaged or foreign roster file with one line', async () => {
    const dir = await tempHome();
    await writeFile(join(dir, ROSTER_FILE), '{"version": 1, "members": [');
    await expect(FamilyRoster.open(dir)).rejects.toThrow(/^family roster .*family\.json is damaged \(not JSON\): restore it from a backup/);
    await writeFile(join(dir, ROSTER_FILE), '{"version": 9, "members": [], "invites": []}');
    await expect(FamilyRoster.open(dir)).rejects.toThrow(/unknown layout \(version 9\): update Hearth/);
  });

  it('keeps the file unchanged when a write fails', async () => {
    const dir = await tempHome();
    const roster = await FamilyRoster.open(dir);
    await roster.recordPeer(peer('peer-b'));
    await rm(dir, { recursive: true });
    await expect(roster.recordPeer(peer('peer-c'))).rejects.toThrow(/ENOENT/);
    // The in-memory roster did not run ahead of the (missing) file.
    expect(roster.members().map((m) => m.peerId)).toEqual(['peer-b']);
  });

  it('removes members by name or PeerId, and says so when there is none', async () => {
    const roster = await FamilyRoster.open(await tempHome());
    await roster.recordPeer(peer('peer-b', 'Bob'));
    await roster.recordPeer(peer('peer-c', 'Carol'));
    expect((await roster.removeMember('Bob')).peerId).toBe('peer-b');
    expect((await roster.removeMember('peer-c')).name).toBe('Carol');
    await expect(roster.removeMember('Dave')).rejects.toThrow('no family member is called Dave: see `hearth peers`');
    expect(roster.members()).toEqual([]);
  });

  it('marks members seen with their current addresses', async () => {
    const c = clock();
    const roster = await FamilyRoster.open(await tempHome(), { now: c.now });
    await roster.recordPeer(peer('peer-b'));
    c.advance(HOUR);
    await roster.markSeen('peer-b', ['/ip4/10.0.0.9/tcp/4001']);
    await roster.markSeen('not-a-member');
    expect(roster.member('peer-b')).toMatchObject({ lastSeen: '2026-11-22T13:00:00.000Z', addrs: ['/ip4/10.0.0.9/tcp/4001'] });
  });

  it('admits strangers only while an invite is outstanding, or while joining that inviter', async () => {
    const c = clock();
    const roster = await FamilyRoster.open(await tempHome(), { now: c.now });
    expect(roster.admitsStranger('x')).toBe(false);
    await roster.addInvite(invite('i1', c.now(), HOUR));
    expect(roster.admitsStranger('x')).toBe(true);
    c.advance(HOUR);
    expect(roster.admitsStranger('x')).toBe(false);

    const releaseOne = roster.expectInviter('inviter');
    const releaseTwo = roster.expectInviter('inviter');
    expect(roster.admitsStranger('inviter')).toBe(true);
    expect(roster.admitsStranger('other')).toBe(false);
    releaseOne();
    releaseOne();
    expect(roster.admitsStranger('inviter')).toBe(true);
    releaseTwo();
    expect(roster.admitsStranger('inviter')).toBe(false);
  });

  it('redeems an invite once even when two joiners race for it', async () => {
    const c = clock();
    const roster = await FamilyRoster.open(await tempHome(), { now: c.now });
    await roster.addInvite(invite('i1', c.now()));
    const outcomes = await Promise.all([roster.redeemInvite('i1', peer('peer-b')), roster.redeemInvite('i1', peer('peer-c'))]);
    expect(outcomes.map((o) => o.ok).sort()).toEqual([false, true]);
    expect(outcomes.find((o) => !o.ok)).toEqual({ ok: false, reason: 'used' });
    expect(roster.members()).toHaveLength(1);
    expect(roster.hasOutstandingInvite()).toBe(false);
  });

  it('caps outstanding invites and forgets spent ones after a month', async () => {
    const c = clock();
    const roster = await FamilyRoster.open(await tempHome(), { now: c.now });
    for (let i = 0; i < MAX_OUTSTANDING_INVITES; i++) await roster.addInvite(invite(`i${i}`, c.now(), HOUR));
    await expect(roster.addInvite(invite('one-more', c.now()))).rejects.toThrow(`this home already has ${MAX_OUTSTANDING_INVITES} unused invite codes: wait for some to expire`);
    c.advance(2 * HOUR);
    await roster.addInvite(invite('fresh', c.now()));
    expect(roster.invites()).toHaveLength(MAX_OUTSTANDING_INVITES + 1);
    c.advance(32 * DAY);
    await roster.addInvite(invite('later', c.now()));
    expect(roster.invites().map((i) => i.id)).toEqual(['later']);
  });

  it('a spent code answers only a retry by the member it made, and only until it expires', async () => {
    const c = clock();
    const roster = await FamilyRoster.open(await tempHome(), { now: c.now });
    await roster.addInvite({ ...invite('big', c.now()), quota: 1000 });
    expect(await roster.redeemInvite('big', peer('peer-b'))).toMatchObject({ ok: true, relinked: false });
    // A lost reply: the same member asks again and hears the same yes.
    expect(await roster.redeemInvite('big', peer('peer-b'))).toMatchObject({ ok: true, relinked: true });

    // Removed, Bob replays it: refused, and nothing is recorded.
    await roster.removeMember('peer-b');
    expect(await roster.redeemInvite('big', peer('peer-b'))).toEqual({ ok: false, reason: 'used' });
    expect(roster.members()).toEqual([]);

    // Invited again with a smaller quota, he cannot get the old code's quota back.
    await roster.addInvite({ ...invite('small', c.now()), quota: 10 });
    await roster.redeemInvite('small', { ...peer('peer-b'), quotaWeGrantThem: 10 });
    expect(await roster.redeemInvite('big', { ...peer('peer-b'), quotaWeGrantThem: 1000 })).toEqual({ ok: false, reason: 'used' });
    expect(roster.member('peer-b')).toMatchObject({ quotaWeGrantThem: 10, inviteId: 'small' });

    // Past its expiry a code answers nobody, not even its own member's retry.
    c.advance(3 * DAY);
    expect(await roster.redeemInvite('small', { ...peer('peer-b'), quotaWeGrantThem: 10 })).toEqual({ ok: false, reason: 'expired' });
    expect(roster.mayPair('stranger')).toBe(false);
    expect(roster.mayPair('peer-b')).toBe(true);
  });

  it('prunes spent codes on demand (the daemon does it on its timer) and keeps outstanding ones', async () => {
    const c = clock();
    const dir = await tempHome();
    const roster = await FamilyRoster.open(dir, { now: c.now });
    await roster.addInvite(invite('used', c.now()));
    await roster.redeemInvite('used', peer('peer-b'));
    await roster.addInvite(invite('expired', c.now(), HOUR));
    c.advance(2 * HOUR);
    expect(await roster.pruneInvites()).toBe(0);
    c.advance(SPENT_INVITE_RETENTION_MS - 3 * HOUR);
    await roster.addInvite(invite('fresh', c.now(), 10 * DAY));
    c.advance(2 * HOUR);
    expect(await roster.pruneInvites()).toBe(2);
    expect(await roster.pruneInvites()).toBe(0);
    const reopened = await FamilyRoster.open(dir, { now: c.now });
    expect(reopened.invites().map((i) => i.id)).toEqual(['fresh']);
  });
});
