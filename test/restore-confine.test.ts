// A restore writes inside --to only: catalog paths with "..", absolute or empty parts
// are refused (per file), and no symbolic link is followed to write a file, whether
// it was in --to before or made by an earlier restore. And a sparse file comes back
// sparse: its runs of zeros are holes, not written blocks.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FilePayload } from '../storage/catalog/catalog.ts';
import { HomeSession } from '../node/session.ts';
import { hearth, hearthJson, hearthOk } from './helpers/cli.ts';
import { restoreTemps, snapshotTree, writeFile } from './helpers/library.ts';

let work: string;
let home: string;
let photos: string;
let outside: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-restore-confine-'));
  home = join(work, 'home');
  photos = join(work, 'photos');
  outside = join(work, 'outside');
  mkdirSync(outside);
  writeFile(photos, 'keep.jpg', 3000, 1);
  writeFile(photos, 'sub/inner.jpg', 3100, 2);
  hearthJson(home, ['init']);
  hearthOk(home, ['source', 'add', photos]);
  mkdirSync(join(work, 'disk'), { recursive: true });
  hearthOk(home, ['target', 'add', 'dir', join(work, 'disk')]);
  hearthJson(home, ['backup']);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('restore stays inside --to', () => {
  it('does not follow a symbolic link it finds in --to where the backup has a folder', () => {
    const to = join(work, 'to-prelinked');
    mkdirSync(join(to, 'photos'), { recursive: true });
    symlinkSync(outside, join(to, 'photos/sub'));
    for (const flags of [[], ['--overwrite']]) {
      const r = hearth(home, ['restore', 'photos', '--to', to, '--json', ...flags]);
      expect(r.code, r.stderr).toBe(3);
      const notFollowed = expect.stringContaining('photos/sub is a symbolic link where the backup has a folder: not followed');
      expect(JSON.parse(r.stdout).failed).toEqual([{ path: 'photos/sub', error: notFollowed }, { path: 'photos/sub/inner.jpg', error: notFollowed }]);
      expect(readdirSync(outside)).toEqual([]);
      expect(readFileSync(join(to, 'photos/keep.jpg'))).toEqual(readFileSync(join(photos, 'keep.jpg')));
    }
  });

  it('does not follow a symbolic link an earlier restore made, when a later version has a folder there', async () => {
    const lib = join(work, 'linked');
    writeFile(lib, 'a.jpg', 1000, 5);
    symlinkSync(outside, join(lib, 'x'));
    const h = join(work, 'home-linked');
    hearthJson(h, ['init']);
    hearthOk(h, ['source', 'add', lib]);
    mkdirSync(join(work, 'disk-linked'), { recursive: true });
    hearthOk(h, ['target', 'add', 'dir', join(work, 'disk-linked')]);
    hearthJson(h, ['backup']);
    await sleep(20);
    const withLink = new Date().toISOString();
    await sleep(20);
    rmSync(join(lib, 'x'));
    writeFile(lib, 'x/planted.jpg', 1200, 6);
    hearthJson(h, ['backup']);

    const to = join(work, 'to-twice');
    hearthJson(h, ['restore', '--to', to, '--at', withLink]);
    expect(statSync(join(to, 'linked/x')).isDirectory()).toBe(true); // the link, followed by stat
    const r = hearth(h, ['restore', '--to', to, '--overwrite', '--json']);
    expect(r.code, r.stderr).toBe(3);
    const notFollowed = expect.stringContaining('linked/x is a symbolic link where the backup has a folder: not followed');
    expect(JSON.parse(r.stdout).failed).toEqual([{ path: 'linked/x', error: notFollowed }, { path: 'linked/x/planted.jpg', error: notFollowed }]);
    expect(readdirSync(outside)).toEqual([]);
    expect(restoreTemps(to)).toEqual([]);
  });

  // Last: the records it adds stay in the home's catalog.
  it('refuses catalog paths with "..", absolute or empty parts, and restores the rest', async () => {
    const bad = [
      { source: 'photos', path: '../../escape-1.jpg' },
      { source: 'photos', path: 'sub/../../escape-2.jpg' },
      { source: 'photos', path: '/escape-3.jpg' },
      { source: 'photos', path: 'sub//escape-4.jpg' },
      { source: '..', path: 'escape-5.jpg' },
    ];
    const session = await HomeSession.open(home);
    try {
      const real = (await session.catalog.current('photos', 'keep.jpg'))!;
      const { source: _s, path: _p, ...rest } = real as unknown as FilePayload;
      await session.catalog.append(bad.map((b) => ({ ...rest, k: 'file', ...b, time: Date.now() }) as FilePayload));
    } finally {
      await session.close();
    }
    const to = join(work, 'nested', 'to');
    const r = hearth(home, ['restore', '--to', to, '--json']);
    expect(r.code, r.stderr).toBe(3);
    const failed = JSON.parse(r.stdout).failed as Array<{ path: string; error: string }>;
    expect(failed.map((f) => f.path).sort()).toEqual(bad.map((b) => `${b.source}/${b.path}`).sort());
    for (const f of failed) expect(f.error).toContain('outside --to');
    expect(snapshotTree(join(to, 'photos'))).toEqual(snapshotTree(photos));
    expect(readdirSync(join(work, 'nested')).sort()).toEqual(['to']);
    expect(readdirSync(join(to)).sort()).toEqual(['photos']);
    expect(existsSync(join(work, 'escape-1.jpg')) || existsSync('/escape-3.jpg')).toBe(false);
  });
});

describe('a sparse file', () => {
  it('is restored sparse: 256 MiB apparent, 3 MiB of data, about 3 MiB of blocks', () => {
    const SIZE = 256 * 1024 * 1024;
    const lib = join(work, 'sparse');
    mkdirSync(lib);
    const file = join(lib, 'disk-image.raw');
    const fd = openSync(file, 'w');
    for (const at of [0, 100 * 1024 * 1024 + 12345, SIZE - 1024 * 1024]) writeSync(fd, randomBytes(1024 * 1024), 0, 1024 * 1024, at);
    closeSync(fd);
    const h = join(work, 'home-sparse');
    hearthJson(h, ['init']);
    hearthOk(h, ['source', 'add', lib]);
    mkdirSync(join(work, 'disk-sparse'), { recursive: true });
    hearthOk(h, ['target', 'add', 'dir', join(work, 'disk-sparse')]);
    hearthJson(h, ['backup']);

    const to = join(work, 'to-sparse');
    const r = hearthJson(h, ['restore', '--to', to]);
    expect(r.failed).toEqual([]);
    const restored = statSync(join(to, 'sparse/disk-image.raw'));
    expect(restored.size).toBe(SIZE);
    // 3 MiB of data (the middle one straddles a block boundary): 3 MiB + 4 KiB of blocks.
    expect(restored.blocks * 512).toBeLessThanOrEqual(statSync(file).blocks * 512 + 8192);
    expect(restored.blocks * 512).toBeLessThan(8 * 1024 * 1024);
    expect(readFileSync(join(to, 'sparse/disk-image.raw')).equals(readFileSync(file))).toBe(true);
  }, 120_000);
});
