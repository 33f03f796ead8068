// Which version a home lists and restores: the catalog log's order decides what is
// newest even when the clock ran ahead (real CLI processes under faketime); a run
// SIGKILLed between recording a version and storing its bytes never lists that
// version; and a path that was a file and is now a folder packs into one volume that
// bsdtar reads, both versions restorable. Debian's faketime, age and bsdtar.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HomePaths } from '../node/home.ts';
import { HEARTH, hearthJson, hearthOk, hearthSpawn, madeDir } from './helpers/cli.ts';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-order-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const DAY = 86_400_000;

/** The CLI with its clock shifted by `offset` (faketime's syntax, e.g. '+3d'). */
function hearthShifted(home: string, offset: string, args: string[]): string {
  const r = spawnSync('faketime', ['-f', offset, process.execPath, HEARTH, '--home', home, ...args], { encoding: 'utf8', env: { ...process.env, HEARTH_HOME: '' } });
  if (r.status !== 0) throw new Error(`faketime ${offset} hearth ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function newHome(name: string): { home: string; photos: string; disk: string } {
  const home = join(work, name);
  const photos = join(work, `${name}-photos`);
  const disk = join(work, `${name}-disk`);
  mkdirSync(photos, { recursive: true });
  hearthOk(home, ['init', '--json']);
  hearthOk(home, ['source', 'add', photos, '--name', 'photos']);
  hearthOk(home, ['target', 'add', 'dir', madeDir(disk)]);
  return { home, photos, disk };
}

const ls = (home: string, extra: string[] = []) => hearthJson<Array<{ path: string; size: number; type: string }>>(home, ['ls', ...extra])
  .filter((e) => e.type === 'file').map((e) => `${e.path}:${e.size}`);

function restored(home: string, to: string, extra: string[] = []): string {
  hearthOk(home, ['restore', '--to', to, ...extra]);
  return readFileSync(join(to, 'photos', 'a.jpg'), 'utf8');
}

describe('version order', () => {
  it('the log decides what is newest: a backup made with the clock 3 days ahead is listed, then replaced, and flagged', () => {
    const { home, photos } = newHome('clock');
    writeFileSync(join(photos, 'a.jpg'), 'v1 from the clock ahead');
    hearthShifted(home, '+3d', ['backup']);

    // The clock is right again: the backup is still there, and restorable.
    expect(ls(home)).toEqual(['photos/a.jpg:23']);
    expect(restored(home, join(work, 'clock-r1'))).toBe('v1 from the clock ahead');
    let status = hearthJson(home, ['status']);
    expect(status.catalog.clock.flagged.map((f: { reason: string }) => f.reason)).toEqual(['after-now']);
    expect(hearthOk(home, ['status'])).toMatch(/warning: catalog record \d+ is dated .* which is in the future/);

    writeFileSync(join(photos, 'a.jpg'), 'v2, right clock');
    hearthJson(home, ['backup']);
    expect(ls(home)).toEqual(['photos/a.jpg:15']);
    expect(restored(home, join(work, 'clock-r2'))).toBe('v2, right clock');
    // Past the ahead-dated record's time too, the later record wins.
    const later = new Date(Date.now() + 4 * DAY).toISOString();
    expect(ls(home, ['--at', later])).toEqual(['photos/a.jpg:15']);
    expect(restored(home, join(work, 'clock-r3'), ['--at', later])).toBe('v2, right clock');
    status = hearthJson(home, ['status']);
    expect(status.catalog.clock.stepsBack).toBe(1);
    expect(status.catalog.clock.flagged.map((f: { reason: string }) => f.reason)).toEqual(['after-next', 'after-now']);
    expect(hearthOk(home, ['catalog', 'verify'])).toMatch(/catalog ok/);
  });

  it('a run SIGKILLed after recording a version and before storing its bytes never lists that version', async () => {
    const { home, photos } = newHome('killed');
    writeFileSync(join(photos, 'a.jpg'), 'v1');
    hearthJson(home, ['backup']);

    // v2 is big enough that its blob is still being encrypted when the kill lands:
    // the run recorded v2 (its scan ended), began storing it (a spool file appeared).
    let signal: NodeJS.Signals | null = null;
    for (let attempt = 0; attempt < 3 && signal !== 'SIGKILL'; attempt++) {
      writeFileSync(join(photos, 'a.jpg'), Buffer.alloc(48 << 20, `v2 attempt ${attempt} `));
      signal = await backupKilledAtFirstSpoolFile(home);
      const stored = hearthJson<Array<{ name: string }>>(home, ['objects']).some((o) => o.name === 'photos/a.jpg');
      if (stored) signal = null; // the run got further than meant: try again with new bytes
    }
    expect(signal).toBe('SIGKILL');
    const afterKill = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));

    // The file changes before the next run: v2's bytes can never be stored.
    writeFileSync(join(photos, 'a.jpg'), 'v3');
    hearthJson(home, ['backup']);
    expect(ls(home)).toEqual(['photos/a.jpg:2']);
    expect(restored(home, join(work, 'killed-r1'))).toBe('v3');
    // As of the killed run, what the backup holds for a.jpg is v1.
    expect(ls(home, ['--at', afterKill])).toEqual(['photos/a.jpg:2']);
    expect(restored(home, join(work, 'killed-r2'), ['--at', afterKill])).toBe('v1');
  });

  it('a file that became a folder (and a folder that became a file) packs into one volume bsdtar reads; both versions restore', () => {
    const { home, photos } = newHome('shape');
    writeFileSync(join(photos, 'first.jpg'), 'first');
    hearthJson(home, ['backup']); // the source's first backup, packed at once
    writeFileSync(join(photos, 'x'), 'x was a file');
    mkdirSync(join(photos, 'y'));
    writeFileSync(join(photos, 'y', 'inner'), 'y was a folder');
    hearthJson(home, ['backup']); // staged as blobs
    const before = new Date().toISOString();
    rmSync(join(photos, 'x'));
    mkdirSync(join(photos, 'x'));
    writeFileSync(join(photos, 'x', 'inner'), 'x is a folder');
    rmSync(join(photos, 'y'), { recursive: true });
    writeFileSync(join(photos, 'y'), 'y is a file');
    hearthJson(home, ['backup']);

    const packed = hearthJson(home, ['backup', '--pack']);
    expect(packed.errors).toEqual([]);
    expect(packed.volumes).toHaveLength(1);
    expect(hearthJson(home, ['backup']).ok).toBe(true);

    const now = join(work, 'shape-now');
    hearthOk(home, ['restore', '--to', now]);
    expect(readFileSync(join(now, 'photos', 'x', 'inner'), 'utf8')).toBe('x is a folder');
    expect(readFileSync(join(now, 'photos', 'y'), 'utf8')).toBe('y is a file');
    const then = join(work, 'shape-then');
    hearthOk(home, ['restore', '--to', then, '--at', before]);
    expect(readFileSync(join(then, 'photos', 'x'), 'utf8')).toBe('x was a file');
    expect(readFileSync(join(then, 'photos', 'y', 'inner'), 'utf8')).toBe('y was a folder');

    // The volume alone, with standard tools: every version is in it, under a distinct name.
    const volume = hearthJson<Array<{ id: string; kind: string; placements: Array<{ location: string }> }>>(home, ['objects'])
      .find((o) => o.kind === 'volume' && o.id === packed.volumes[0].id)!;
    const key = join(work, 'shape-key.txt');
    writeFileSync(key, hearthOk(home, ['key', 'export-age']));
    const iso = join(work, 'shape.iso');
    execFileSync('age', ['-d', '-i', key, '-o', iso, volume.placements[0]!.location]);
    const out = join(work, 'shape-bsdtar');
    mkdirSync(out);
    execFileSync('bsdtar', ['-xf', iso, '-C', out]);
    const contents = (dir: string): string[] => readdirSync(dir, { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile()).map((e) => readFileSync(join(e.parentPath, e.name), 'utf8')).sort();
    expect(contents(out)).toEqual(['x is a folder', 'x was a file', 'y is a file', 'y was a folder']);
  });
});

/** Run a backup and SIGKILL it once its first spool file appears; resolves to the signal that ended it. */
function backupKilledAtFirstSpoolFile(home: string): Promise<NodeJS.Signals | null> {
  const spool = new HomePaths(home).spool;
  mkdirSync(spool, { recursive: true });
  const leftovers = new Set(readdirSync(spool));
  const child = hearthSpawn(home, ['backup']);
  const watcher = watch(spool, (_event, name) => {
    if (name && !leftovers.has(name)) child.kill('SIGKILL');
  });
  return new Promise((resolve) => {
    child.on('exit', (_code, signal) => {
      watcher.close();
      resolve(signal);
    });
  });
}
