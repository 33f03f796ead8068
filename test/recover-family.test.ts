// Recovery brings back the whole family: three homes as daemon processes on
// 127.0.0.1. A (named, with a source, a target and settings) pairs with B and C and
// backs up; A's home is lost; a home recovered from its phrase joins through B alone
// and gets back its name, sources, targets, settings and C, which it re-links with
// by itself and reads from. Also: the phrase is shown again, a misspelled word named.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearth, hearthJson, hearthOk, madeDir } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';

let work: string;
const daemons: RunningDaemon[] = [];
const home = (name: string) => join(work, name);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-recover-family-'));
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

function pair(inviter: string, joiner: string, joinerCallsInviter: string, inviterCallsJoiner: string): Record<string, any> {
  const { code } = hearthJson(home(inviter), ['invite', '--name', inviterCallsJoiner]);
  return hearthJson(home(joiner), ['join', code, '--name', joinerCallsInviter]);
}

describe('recovering a home brings back its settings and its family', () => {
  it('through one relative, re-links the other by itself and keeps its placements', async () => {
    let phrase = '';
    for (const name of ['A', 'B', 'C']) {
      const init = hearthJson(home(name), ['init']);
      if (name === 'A') phrase = init.phrase;
      hearthOk(home(name), ['config', 'set', 'replicate.interval', '2s']);
    }
    const photos = join(work, 'photos');
    for (let i = 0; i < 3; i++) writeFile(photos, `2025/img-${i}.jpg`, 50_000 + i, 10 + i);
    hearthOk(home('A'), ['config', 'set', 'name', 'oak-street']);
    hearthOk(home('A'), ['config', 'set', 'volume.size', '1MiB']);
    hearthOk(home('A'), ['source', 'add', photos, '--name', 'family-photos']);
    hearthOk(home('A'), ['target', 'add', 'dir', madeDir(join(work, 'usb')), '--name', 'usb']);
    const a = await daemon('A');
    await daemon('B');
    await daemon('C');
    pair('A', 'B', 'ann', 'bea');
    pair('A', 'C', 'ann', 'cal');
    const backup = hearthJson(home('A'), ['backup', '--pack']);
    expect(backup.ok).toBe(true);
    const head = hearthJson(home('A'), ['status']).catalog.head;
    await eventually(() => ['B', 'C'].every((n) => hearthJson<any[]>(home(n), ['peers']).find((p) => p.peerId === a.peerId)?.catalogRecordsWeHold === head), 'B and C to hold all of A\'s catalog');
    const placedBefore = hearthJson<any[]>(home('A'), ['objects']).map((o) => [o.id, o.placements.map((p: any) => p.target).sort()]);
    expect(placedBefore.every(([, targets]) => targets.length === 3)).toBe(true);

    await a.stop();
    rmSync(home('A'), { recursive: true, force: true });
    const phraseFile = join(work, 'phrase.txt');
    writeFileSync(phraseFile, phrase);
    const init = hearthOk(home('A2'), ['init', '--recover', '--phrase-file', phraseFile]);
    expect(init).toContain('Next steps:');
    expect(init).toContain('hearth join CODE');
    await daemon('A2');
    const joined = pair('B', 'A2', 'bea', 'ann');
    expect(joined.relinked).toBe(true);
    expect(joined.recoveredCatalog).toMatchObject({ settings: true, relatives: ['cal'] });

    expect(hearthOk(home('A2'), ['config', 'get', 'name']).trim()).toBe('oak-street');
    expect(hearthOk(home('A2'), ['config', 'get', 'volume.size']).trim()).toBe('1MiB');
    expect(hearthJson<any[]>(home('A2'), ['source', 'ls'])).toEqual([{ name: 'family-photos', path: photos }]);
    expect(hearthJson<any[]>(home('A2'), ['target', 'ls']).map((t) => t.name)).toEqual(['usb']);
    // C still knows A's PeerId: the recovered home dials it and C lets it in, no code needed.
    await eventually(() => hearthJson<any[]>(home('A2'), ['peers']).find((p) => p.name === 'cal')?.online === true, 'A2 to re-link with C by itself');
    const placedAfter = hearthJson<any[]>(home('A2'), ['objects']).map((o) => [o.id, o.placements.map((p: any) => p.target).sort()]);
    expect(placedAfter).toEqual(placedBefore);
    const out = join(work, 'from-cal');
    const restored = hearthJson(home('A2'), ['restore', '--from', 'cal', '--to', out]);
    expect(restored.files).toBe(3);
    expect(restored.failed).toEqual([]);
  });

  it('shows the phrase again with a warning, and names a misspelled word', () => {
    const phrase = hearthOk(home('A2'), ['key', 'phrase']).trim();
    expect(phrase.split(' ')).toHaveLength(24);
    const shown = hearth(home('A2'), ['key', 'phrase']);
    expect(shown.stderr).toMatch(/^warning: these 24 words are this home/);
    const words = phrase.split(' ');
    words[6] = words[6]!.slice(0, -1);
    const bad = hearth(home('A3'), ['init', '--recover'], words.join(' '));
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(new RegExp(`^hearth: error: word 7 "${words[6]}" is not in the word list`));
  });

  it('hearth doctor checks key file, daemon, disks, schedule, relatives and their clocks, naming each fix', async () => {
    const checks = (args: string[] = []) => {
      const r = hearth(home('A2'), ['doctor', '--json', ...args]);
      return { code: r.code, list: JSON.parse(r.stdout) as Array<{ check: string; ok: boolean; detail: string; fix?: string }> };
    };
    const healthy = checks();
    const by = (list: typeof healthy.list, name: string) => list.find((c) => c.check === name);
    expect(by(healthy.list, 'daemon')).toMatchObject({ ok: true });
    expect(by(healthy.list, 'key file')).toMatchObject({ ok: true });
    expect(by(healthy.list, 'target usb')).toMatchObject({ ok: true, detail: expect.stringMatching(/free at/) });
    expect(by(healthy.list, 'relative cal')).toMatchObject({ ok: true, detail: 'reachable' });
    expect(by(healthy.list, 'clock vs cal')).toMatchObject({ ok: true, detail: expect.stringMatching(/^cal's clock is [\d.]+s (ahead of|behind) this one$/) });
    expect(by(healthy.list, 'scheduled backup')).toMatchObject({ ok: true, detail: expect.stringMatching(/^next at /) });

    chmodSync(join(home('A2'), 'identity.json'), 0o644);
    rmSync(join(work, 'usb'), { recursive: true, force: true });
    hearthOk(home('A2'), ['config', 'set', 'schedule.scrub', 'off']);
    await daemons.find((d) => d.home === home('C'))!.stop();
    await eventually(() => by(checks().list, 'relative cal')?.ok === false, 'A2 to notice C is gone', 40, 250);
    const sick = checks();
    expect(sick.code).toBe(3);
    expect(by(sick.list, 'key file')).toMatchObject({ ok: false, detail: expect.stringContaining('mode 0644'), fix: `chmod 600 ${join(home('A2'), 'identity.json')}` });
    expect(by(sick.list, 'target usb')).toMatchObject({ ok: false, detail: expect.stringContaining('ENOENT'), fix: expect.stringContaining('hearth target rm usb') });
    expect(by(sick.list, 'scheduled scrub')).toMatchObject({ ok: false, fix: 'hearth config set schedule.scrub "15 03:00"' });
    expect(by(sick.list, 'relative cal')).toMatchObject({ ok: false, fix: expect.stringContaining('hearth verify --peer cal') });
    const text = hearth(home('A2'), ['doctor']).stdout;
    expect(text).toMatch(/^PROBLEM\s+key file/m);
    expect(text).toContain('fix: chmod 600');
  });
});
