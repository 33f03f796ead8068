// Three homes as separate daemon processes on 127.0.0.1: A pairs with B and C and
// backs up; both relatives hold every object; A's home is lost; a home recovered
// from A's phrase joins again through B and restores everything with C stopped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearth, hearthJson, hearthOk } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { makeLibrary, snapshotTree, writeFile } from './helpers/library.ts';
import { hostedBytes } from '../storage/hoststore/host-store.ts';

let work: string;
const daemons: RunningDaemon[] = [];
const home = (name: string) => join(work, name);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-family-'));
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  rmSync(work, { recursive: true, force: true });
});

async function daemon(name: string): Promise<RunningDaemon> {
  const d = await startDaemon(home(name));
  daemons.push(d);
  return d;
}

function pair(inviter: string, joiner: string, joinerCallsInviter: string, inviterCallsJoiner: string): Record<string, unknown> {
  const { code } = hearthJson(home(inviter), ['invite', '--name', inviterCallsJoiner]);
  return hearthJson(home(joiner), ['join', code, '--name', joinerCallsInviter]);
}

describe('a family of three homes', () => {
  let phrase: string;
  let library: string;
  let a: RunningDaemon;
  let c: RunningDaemon;
  let totalObjectBytes = 0;

  it('pairs A with B and C through invite codes', async () => {
    for (const name of ['A', 'B', 'C']) {
      const init = hearthJson(home(name), ['init']);
      if (name === 'A') phrase = init.phrase;
      hearthOk(home(name), ['config', 'set', 'name', name]);
      hearthOk(home(name), ['config', 'set', 'replicate.interval', '2s']);
    }
    library = join(work, 'photos');
    makeLibrary(library);
    writeFile(library, 'videos/long.mp4', 5 * 1024 * 1024 + 3, 77);
    hearthOk(home('A'), ['source', 'add', library]);
    hearthOk(home('A'), ['config', 'set', 'volume.size', '4MiB']);
    a = await daemon('A');
    await daemon('B');
    c = await daemon('C');
    expect(pair('A', 'B', 'ann', 'bea').relinked).toBe(false);
    pair('A', 'C', 'ann', 'cal');
    const peersOfA = hearthJson<any[]>(home('A'), ['peers']);
    expect(peersOfA.map((p) => p.name).sort()).toEqual(['bea', 'cal']);
  });

  it('refuses a reused or damaged invite code with one clear line and records nothing', () => {
    const { code } = hearthJson(home('B'), ['invite']);
    hearthJson(home('C'), ['join', code]);
    const rosterOfB = hearthJson<any[]>(home('B'), ['peers']).length;
    const again = hearth(home('A'), ['join', code]);
    expect(again.code).not.toBe(0);
    // One line for the refusal; the daemon may first say it waits for a replication pass under way.
    expect(again.stderr.trim().split('\n').filter((l) => !/waiting for the .* under way to finish/.test(l))).toHaveLength(1);
    expect(again.stderr).toMatch(/already used|expired|closed the connection/);
    const damaged = hearth(home('A'), ['join', code.slice(0, -3) + (code.endsWith('q') ? 'ppp' : 'qqq')]);
    expect(damaged.code).not.toBe(0);
    expect(damaged.stderr).toMatch(/damaged|checksum|malformed/i);
    expect(hearthJson<any[]>(home('B'), ['peers'])).toHaveLength(rosterOfB);
    expect(hearthJson<any[]>(home('A'), ['peers'])).toHaveLength(2);
  });

  it('A backs up and both relatives hold every object', async () => {
    const report = hearthJson(home('A'), ['backup']);
    expect(report.ok).toBe(true);
    expect(report.volumes.length).toBeGreaterThanOrEqual(1);
    await eventually(() => {
      const objects = hearthJson<any[]>(home('A'), ['objects']);
      return objects.every((o) => o.placements.filter((p: any) => p.tier === 'peer').length === 2);
    }, 'every object to be placed at both relatives');
    const objects = hearthJson<any[]>(home('A'), ['objects']);
    // What a relative holds for A: each object and its Merkle index.
    totalObjectBytes = objects.reduce((n, o) => n + hostedBytes(o.size), 0);
    for (const o of objects) expect(o.placements.map((p: any) => p.target).sort()).toEqual([daemons[1]!.peerId, c.peerId].sort());
    for (const relative of ['B', 'C']) {
      const ann = hearthJson<any[]>(home(relative), ['peers']).find((p) => p.peerId === a.peerId);
      expect(ann.bytesWeStoreForThem).toBe(totalObjectBytes);
      expect(ann.catalogRecordsWeHold).toBeGreaterThan(0);
    }
    const own = hearthJson<any[]>(home('A'), ['peers']);
    for (const p of own) expect(p.bytesTheyStoreForUs).toBe(totalObjectBytes);
  });

  it('a new file is staged as a blob at both relatives; once packed, the blob is retired and its deletion delayed by the hosts', async () => {
    writeFile(library, 'new/today.jpg', 200_000, 78);
    const staged = hearthJson(home('A'), ['backup']);
    expect(staged.blobs.stored).toBe(1);
    const blobPlacedTwice = () => hearthJson<any[]>(home('A'), ['objects']).some((o) => o.kind === 'blob' && o.placements.length === 2);
    await eventually(blobPlacedTwice, 'the blob to reach both relatives');
    const packed = hearthJson(home('A'), ['backup', '--pack']);
    expect(packed.volumes).toHaveLength(1);
    await eventually(() => hearthJson<any[]>(home('A'), ['objects']).every((o) => o.kind === 'volume' && o.placements.length === 2), 'the blob to be retired after the volume reached both relatives');
    for (const relative of ['B', 'C']) {
      const ann = hearthJson<any[]>(home(relative), ['peers']).find((p) => p.peerId === a.peerId);
      expect(ann.pendingDeletions).toHaveLength(1);
      expect(new Date(ann.pendingDeletions[0].deleteAt).getTime()).toBeGreaterThan(Date.now() + 29 * 86400_000);
    }
  });

  it('after A is lost, a home recovered from its phrase rejoins through B and restores everything with C stopped', async () => {
    await eventually(() => {
      const held = hearthJson<any[]>(home('B'), ['peers']).find((p) => p.peerId === a.peerId).catalogRecordsWeHold;
      return held === hearthJson(home('A'), ['status']).catalog.head;
    }, 'B to hold all of A\'s catalog');
    await a.stop();
    rmSync(home('A'), { recursive: true, force: true });

    const phraseFile = join(work, 'phrase.txt');
    writeFileSync(phraseFile, phrase);
    const recovered = hearthJson(home('A2'), ['init', '--recover', '--phrase-file', phraseFile]);
    expect(recovered.peerId).toBe(a.peerId);
    await daemon('A2');
    const joined = pair('B', 'A2', 'bea', 'ann');
    expect(joined.relinked).toBe(true);
    expect((joined.recoveredCatalog as any).records).toBeGreaterThan(0);
    expect(hearthJson<any[]>(home('B'), ['peers']).filter((p) => p.peerId === a.peerId)).toHaveLength(1);

    await c.stop();
    const out = join(work, 'restored');
    const res = hearthJson(home('A2'), ['restore', '--to', out]);
    expect(res.failed).toEqual([]);
    const want = snapshotTree(library);
    const got = snapshotTree(join(out, 'photos'));
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [path, entry] of want) expect(got.get(path), path).toEqual(entry);

    const one = join(work, 'one');
    const single = hearthJson(home('A2'), ['restore', 'photos/videos/long.mp4', '--to', one, '--from', 'peer:bea']);
    const size = 5 * 1024 * 1024 + 3;
    expect(single.files).toBe(1);
    expect(single.bytesRead).toBeLessThanOrEqual(size + 256 * 1024);
    expect(snapshotTree(join(one, 'photos')).get('videos/long.mp4')).toEqual(want.get('videos/long.mp4'));
  });
});
