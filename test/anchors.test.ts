// What a home knows about its family's anchors without any network (docs/nat.md):
// the roster's anchor and relay-only marks, kept across a restart, and where a
// relative is dialled. The relay itself is tested in the NAT lab (nat-anchor.test.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addressesToDial } from '../node/anchors.ts';
import { FamilyRoster } from '../node/family.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const member = (peerId: string, name: string) => ({ peerId, name, addrs: [], quotaTheyGrantUs: 1, quotaWeGrantThem: 1 });

describe('anchors in the roster', () => {
  it('marks a member an anchor or relay-only from what it speaks, keeps the marks across a restart, and keeps relay-only ones out of storage', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-anchors-'));
    dirs.push(dir);
    const roster = await FamilyRoster.open(dir);
    for (const [id, name] of [['p-home', 'home'], ['p-anchor', 'anchor'], ['p-server', 'server']]) await roster.recordPeer(member(id!, name!));
    await roster.markSeen('p-anchor', ['/ip4/192.0.2.10/tcp/4001'], { anchor: true, relayOnly: false });
    await roster.markSeen('p-server', ['/ip4/192.0.2.40/tcp/4001'], { anchor: true, relayOnly: true });
    await roster.markSeen('p-home', undefined, { anchor: false, relayOnly: false });

    const reopened = await FamilyRoster.open(dir);
    expect(reopened.anchors().map((m) => m.name).sort()).toEqual(['anchor', 'server']);
    expect(reopened.storageMembers().map((m) => m.name).sort()).toEqual(['anchor', 'home']);
    expect(reopened.member('home')).not.toHaveProperty('anchor');

    // A home that stops relaying (restarted without --announce) loses the mark.
    await reopened.markSeen('p-anchor', undefined, { anchor: false, relayOnly: false });
    expect((await FamilyRoster.open(dir)).anchors().map((m) => m.name)).toEqual(['server']);
  });
});

describe('addressesToDial', () => {
  it("tries a relative's own addresses first, then through every other anchor, once each", () => {
    const anchors = [
      { peerId: 'A1', addrs: ['/ip4/192.0.2.10/tcp/4001', '/ip4/192.0.2.99/tcp/4001/p2p/X/p2p-circuit'] },
      { peerId: 'A2', addrs: ['/ip4/192.0.2.40/tcp/4001'] },
    ];
    const own = ['/ip4/10.2.0.2/tcp/4001', '/ip4/192.0.2.10/tcp/4001/p2p/A1/p2p-circuit'];
    expect(addressesToDial({ peerId: 'B', addrs: own }, anchors)).toEqual([
      ...own,
      '/ip4/192.0.2.40/tcp/4001/p2p/A2/p2p-circuit',
    ]);
    // An anchor is never dialled through itself, nor through a relay of a relay.
    expect(addressesToDial(anchors[0]!, anchors)).toEqual([...anchors[0]!.addrs, '/ip4/192.0.2.40/tcp/4001/p2p/A2/p2p-circuit']);
  });
});
