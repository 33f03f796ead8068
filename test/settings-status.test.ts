// Settings and status a person can read: every setting checked against its range at
// `config set` (negative values included), `config ls`, `status` for people and one
// JSON time format, Ctrl-C during a CLI backup, and the daemon's log of what it ran.
// The real CLI and daemon as separate processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { hearth, hearthJson, hearthOk, hearthSpawn, madeDir } from './helpers/cli.ts';
import { eventually, startDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
let work: string;
let home: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-settings-'));
  home = join(work, 'home');
  hearthJson(home, ['init']);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

function refused(args: string[]): string {
  const r = hearth(home, args);
  expect(r.code, r.stdout).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  return r.stderr.trim();
}

describe('config set checks each setting against its range', () => {
  it('refuses values that would break every later backup, negative ones included', () => {
    expect(refused(['config', 'set', 'backup.workers', '0'])).toBe('hearth: error: backup.workers must be a whole number from 1 to 64, got "0"');
    expect(refused(['config', 'set', 'backup.workers', '-1'])).toContain('backup.workers must be a whole number from 1 to 64, got "-1"');
    expect(refused(['config', 'set', 'volume.size', '0'])).toBe('hearth: error: volume.size must be a size from 64KiB to 1TiB, got "0"');
    expect(refused(['config', 'set', 'volume.size', '-5MiB'])).toContain('volume.size must be a size from 64KiB to 1TiB, got "-5MiB"');
    expect(refused(['config', 'set', 'policy.peers', '0'])).toContain('policy.peers must be a whole number from 1 to 16');
    expect(refused(['config', 'set', 'replicate.interval', '0s'])).toContain('replicate.interval must be a duration from 1s to 7d');
    expect(hearthOk(home, ['config', 'get', 'backup.workers']).trim()).toBe('2');
    expect(hearthOk(home, ['config', 'set', 'backup.workers', '3'])).toBe('backup.workers = 3\n');
  });

  it('config ls lists every setting with its value, default, range and meaning', () => {
    const list = hearthJson<Array<{ key: string; value: string; default: string; set: boolean; range: string | null; describe: string }>>(home, ['config', 'ls']);
    const workers = list.find((e) => e.key === 'backup.workers')!;
    expect(workers).toEqual({ key: 'backup.workers', value: '3', default: '2', set: true, range: 'a whole number from 1 to 64', describe: expect.stringContaining('worker threads') });
    expect(list.find((e) => e.key === 'volume.size')).toMatchObject({ value: '4GiB', default: '4GiB', set: false });
    expect(list.length).toBeGreaterThan(20);
    const table = hearthOk(home, ['config', 'ls']);
    expect(table.split('\n')[0]).toMatch(/^KEY\s+VALUE\s+DEFAULT\s+MEANING$/);
    expect(table).toMatch(/backup\.workers\s+3\s+2\s+worker threads/);
  });
});

describe('status and JSON for people and programs', () => {
  it('status says when the last backup ran, how it went, free space, and counts files and folders apart', () => {
    const photos = join(work, 'photos');
    writeFile(photos, 'a/1.jpg', 1000, 1);
    writeFile(photos, 'a/b/2.jpg', 2000, 2);
    hearthOk(home, ['source', 'add', photos]);
    hearthOk(home, ['target', 'add', 'dir', madeDir(join(work, 'disk'))]);
    expect(hearthOk(home, ['status'])).toMatch(/last backup\s+none yet/);
    const backup = hearthJson(home, ['backup']);
    expect(backup.startedAt).toMatch(ISO);
    expect(backup.finishedAt).toMatch(ISO);
    expect(backup.durationMs).toBe(Date.parse(backup.finishedAt) - Date.parse(backup.startedAt));

    const s = hearthJson(home, ['status']);
    expect(s.lastBackup).toMatchObject({ state: 'complete', files: 2, bytes: 3000 });
    expect(s.lastBackup.at).toBe(backup.startedAt);
    expect(s.catalog).toMatchObject({ files: 2, folders: 2, bytes: 3000 });
    expect(s.targets[0].freeBytes).toBeGreaterThan(0);
    expect(typeof s.volumeSize).toBe('number');
    const text = hearthOk(home, ['status']);
    expect(text).toMatch(/last backup\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d, took [\d.]+s: 2 files, 2\.93 KiB, complete/);
    expect(text).toMatch(/disk \(.*\): [\d.]+ [KMGT]iB free/);
    expect(text).toContain('2 files and 2 folders');
    expect(text).toMatch(/next\s+nothing scheduled: the daemon is not running/);
    expect(text).not.toContain('{');
  });
});

describe('stopping and logging', () => {
  it('Ctrl-C during a CLI backup says in one line what was kept; the next run continues', async () => {
    const big = join(work, 'big');
    const h = join(work, 'ctrl-c');
    hearthJson(h, ['init']);
    for (let i = 0; i < 150; i++) writeFile(big, `d${i % 8}/f-${i}.bin`, 200_000, 100 + i);
    hearthOk(h, ['source', 'add', big]);
    hearthOk(h, ['target', 'add', 'dir', madeDir(join(work, 'disk2'))]);
    hearthOk(h, ['config', 'set', 'volume.size', '8MiB']);
    const child = hearthSpawn(h, ['backup', '--json']);
    let stderr = '';
    const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? -1 : -2))));
    const lines = createInterface({ input: child.stderr });
    lines.on('line', (l) => (stderr += `${l}\n`));
    // The first progress line means files are being stored: stop then.
    await new Promise<void>((resolve) => lines.on('line', (l) => l.includes('"progress"') && resolve()));
    child.kill('SIGINT');
    const code = await exited;
    expect(code).toBe(130);
    const last = stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(/^hearth: error: backup stopped by SIGINT: the \d+ new or changed files recorded so far are kept; the next "hearth backup" continues from there$/);
    const snaps = hearthJson(h, ['snapshots']);
    expect(snaps.map((x: { state: string }) => x.state)).toEqual(['interrupted']);
    const again = hearthJson(h, ['backup']);
    expect(again.ok).toBe(true);
    expect(hearthJson(h, ['ls', 'big']).filter((e: { type: string }) => e.type === 'file')).toHaveLength(150);
    expect(hearthJson(h, ['snapshots']).map((x: { state: string }) => x.state)).toEqual(['interrupted', 'complete']);
  });

  it('the daemon logs each operation it runs with its outcome', async () => {
    const daemon = await startDaemon(home);
    try {
      hearthOk(home, ['backup']);
      expect(hearth(home, ['restore', 'nope', '--to', join(work, 'out')]).code).toBe(1);
      await eventually(() => /restore: failed after/.test(daemon.stderr()), 'the daemon to log the failed restore', 20, 250);
      expect(daemon.stderr()).toMatch(/^\S+Z backup: started$/m);
      expect(daemon.stderr()).toMatch(/^\S+Z backup: done in [\d.]+s$/m);
      expect(daemon.stderr()).toMatch(/restore: failed after [\d.]+s: no source named "nope"/);
      const s = hearthJson(home, ['status']);
      expect(s.daemon).toBe(true);
      expect(s.schedule.map((j: { name: string }) => j.name).sort()).toEqual(['audit', 'backup', 'check', 'scrub']);
      for (const j of s.schedule) expect(j.nextRun).toMatch(ISO);
      expect(hearthOk(home, ['status'])).toMatch(/next\s+backup \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    } finally {
      await daemon.stop();
    }
  });
});
