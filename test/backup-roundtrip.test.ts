// The whole local engine through the real CLI: back up a generated library to a
// directory target, change it, back up again, and restore as of each time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearth, hearthJson, hearthOk } from './helpers/cli.ts';
import { makeLibrary, pseudoRandom, snapshotTree, writeFile } from './helpers/library.ts';

let work: string;
let home: string;
let photos: string;
let disk: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-rt-'));
  home = join(work, 'home');
  photos = join(work, 'photos');
  disk = join(work, 'usb-disk');
  makeLibrary(photos);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectRestored(restored: string, expected: Map<string, unknown>): void {
  const got = snapshotTree(join(restored, 'photos'));
  expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [path, entry] of expected) expect(got.get(path), path).toEqual(entry);
}

describe('backup and restore through the CLI', () => {
  let first: Map<string, unknown>;
  let afterFirst: string;

  it('initialises a home, adds a source and a target', () => {
    const init = hearthJson(home, ['init']);
    expect(init.phrase.split(' ')).toHaveLength(24);
    expect(init.peerId).toMatch(/^12D3KooW/);
    expect(statSync(join(home, 'identity.json')).mode & 0o777).toBe(0o600);
    hearthOk(home, ['source', 'add', photos]);
    mkdirSync(disk, { recursive: true });
    hearthOk(home, ['target', 'add', 'dir', disk, '--name', 'usb']);
    hearthOk(home, ['config', 'set', 'volume.size', '2MiB']);
    expect(hearthOk(home, ['config', 'get', 'volume.size']).trim()).toBe('2MiB');
  });

  it('the first backup packs straight into volumes', async () => {
    const report = hearthJson(home, ['backup']);
    expect(report.ok).toBe(true);
    expect(report.files.new).toBeGreaterThan(10);
    expect(report.volumes.length).toBe(2);
    expect(report.volumes[0].name).toMatch(/^\d{4}-\d{2}-\d{2}--\d{4}-\d{2}-\d{2}(-\d+)?\.iso$/);
    const objects = hearthJson<any[]>(home, ['objects']);
    expect(objects.every((o) => o.kind === 'volume')).toBe(true);
    for (const o of objects) {
      expect(o.merkleRoot).toMatch(/^[0-9a-f]{64}$/);
      expect(o.placements).toHaveLength(1);
      expect(o.placements[0].target).toBe('usb');
      expect(statSync(o.placements[0].location).size).toBe(o.size);
    }
    first = snapshotTree(photos);
    await sleep(20);
    afterFirst = new Date().toISOString();
    await sleep(20);
  });

  it('a second run with no changes records nothing new', () => {
    const report = hearthJson(home, ['backup']);
    expect(report.files.new + report.files.changed + report.files.deleted).toBe(0);
    expect(report.files.unchanged).toBe(report.files.scanned);
  });

  it('modified, deleted and added files are staged as blobs and each time restores byte-exact', () => {
    appendFileSync(join(photos, 'one-byte.bin'), 'more');
    unlinkSync(join(photos, '2024/summer/chunk-exact.jpg'));
    writeFile(photos, '2025/new-photo.jpg', 70_000, 42);
    writeFileSync(join(photos, 'empty.txt'), pseudoRandom(10, 43));
    const report = hearthJson(home, ['backup']);
    expect(report.ok).toBe(true);
    expect(report.files.changed).toBe(2);
    expect(report.files.deleted).toBe(1);
    expect(report.files.new).toBe(1);
    expect(report.volumes).toHaveLength(0);
    expect(report.blobs.stored).toBe(3);
    const second = snapshotTree(photos);

    const r1 = join(work, 'restore-1');
    const res1 = hearthJson(home, ['restore', '--to', r1, '--at', afterFirst]);
    expect(res1.failed).toEqual([]);
    expectRestored(r1, first);

    const r2 = join(work, 'restore-2');
    hearthJson(home, ['restore', '--to', r2]);
    expectRestored(r2, second);
  });

  it('ls shows the library as of a time', () => {
    const now = hearthJson<any[]>(home, ['ls', 'photos/2024']);
    expect(now.map((e) => e.path)).not.toContain('photos/2024/summer/chunk-exact.jpg');
    const then = hearthJson<any[]>(home, ['ls', 'photos/2024', '--at', afterFirst]);
    expect(then.map((e) => e.path)).toContain('photos/2024/summer/chunk-exact.jpg');
  });

  it('--pack packs staged blobs into a volume and retires them; restore still exact', () => {
    const before = hearthJson<any[]>(home, ['objects']);
    const blobs = before.filter((o) => o.kind === 'blob');
    expect(blobs.length).toBeGreaterThan(0);
    const report = hearthJson(home, ['backup', '--pack']);
    expect(report.volumes.length).toBeGreaterThanOrEqual(1);
    expect(report.retired).toBeGreaterThan(0);
    const after = hearthJson<any[]>(home, ['objects']);
    expect(after.filter((o) => o.kind === 'blob')).toHaveLength(0);
    for (const b of blobs) expect(existsSync(b.placements[0].location)).toBe(false);
    const r3 = join(work, 'restore-3');
    hearthJson(home, ['restore', '--to', r3]);
    expectRestored(r3, snapshotTree(photos));
    // Old versions that were only in blobs moved into the volume too.
    const r3old = join(work, 'restore-3-old');
    hearthJson(home, ['restore', '--to', r3old, '--at', afterFirst]);
    expectRestored(r3old, first);
  });

  it('restores one file from a volume reading only the chunks that cover it', () => {
    const r4 = join(work, 'restore-4');
    const res = hearthJson(home, ['restore', 'photos/2024/video/clip.mp4', '--to', r4]);
    expect(res.files).toBe(1);
    const size = 3 * 1024 * 1024 + 17;
    expect(res.bytesRead).toBeLessThanOrEqual(size + 2 * (65536 + 16) + 1024);
    expect(res.bytesRead).toBeGreaterThanOrEqual(size);
    expect(statSync(join(r4, 'photos/2024/video/clip.mp4')).mtime.toISOString()).toBe('2024-07-01T10:00:00.000Z');
  });

  it('refuses to overwrite existing files unless --overwrite', () => {
    const r2 = join(work, 'restore-2');
    const refused = hearth(home, ['restore', '--to', r2]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/already exists.*--overwrite/);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    hearthOk(home, ['restore', '--to', r2, '--overwrite', '--json']);
  });

  it('gives one-line errors for bad input', () => {
    for (const args of [['config', 'set', 'volume.size', 'lots'], ['source', 'add', join(work, 'nope')], ['restore', 'photos/nothing-here', '--to', join(work, 'x')], ['ls', '--at', 'yesterday-ish']]) {
      const r = hearth(home, args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^hearth: error: /);
    }
  });
});

describe('a source that vanished', () => {
  it('is reported, not recorded as deleted, and the other sources are still backed up', () => {
    const base = mkdtempSync(join(tmpdir(), 'hearth-vanish-'));
    try {
      const h = join(base, 'home');
      const nas = join(base, 'nas');
      const local = join(base, 'local');
      writeFile(nas, 'a.jpg', 1000, 1);
      writeFile(local, 'b.jpg', 1000, 2);
      hearthOk(h, ['init', '--json']);
      hearthOk(h, ['source', 'add', nas]);
      hearthOk(h, ['source', 'add', local]);
      mkdirSync(join(base, 'disk'), { recursive: true });
      hearthOk(h, ['target', 'add', 'dir', join(base, 'disk')]);
      hearthJson(h, ['backup']);
      rmSync(join(nas, 'a.jpg'));
      writeFile(local, 'c.jpg', 1000, 3);
      const r = hearth(h, ['backup', '--json']);
      expect(r.code).toBe(3);
      const report = JSON.parse(r.stdout);
      expect(report.errors[0].error).toMatch(/is empty but its last backup had files: is the disk mounted/);
      expect(report.files.deleted).toBe(0);
      expect(report.files.new).toBe(1);
      expect(hearthJson<any[]>(h, ['ls', 'nas']).map((e) => e.path)).toEqual(['nas/a.jpg']);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
