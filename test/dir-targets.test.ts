// Directory targets that vanish, fill or sit in the wrong place, through the real
// CLI on real filesystems: small tmpfs mounts for a disk that is unplugged, full or
// read-only (this needs root; the tests say so and are skipped where mount fails).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearth, hearthAsync, hearthJson, hearthOk } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';

let work: string;
const mounts: string[] = [];

function mountTmpfs(dir: string, size: string): boolean {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return false;
  mounts.push(dir);
  return true;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** Every object file under a target, by name (temp files included, to catch leftovers). */
function filesOn(target: string): string[] {
  if (!existsSync(join(target, 'hearth'))) return [];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else out.push(e.name);
    }
  };
  walk(join(target, 'hearth'));
  return out.sort();
}

const canMount = (() => {
  const probe = mkdtempSync(join(tmpdir(), 'hearth-mount-probe-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
  if (r.status === 0) spawnSync('umount', [probe]);
  rmSync(probe, { recursive: true, force: true });
  return r.status === 0;
})();
const withMount = canMount ? it : it.skip;
if (!canMount) console.warn('dir-targets: mount -t tmpfs failed (not root?): the unmounted, full and read-only disk tests are skipped');

function newHome(name: string, photos: string): string {
  const home = join(work, name);
  hearthJson(home, ['init']);
  hearthOk(home, ['source', 'add', photos]);
  hearthOk(home, ['config', 'set', 'volume.size', '1MiB']);
  return home;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-dirtargets-'));
});

afterAll(() => {
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  rmSync(work, { recursive: true, force: true });
});

describe('target add', () => {
  it('refuses a folder that does not exist, and creates nothing', () => {
    const photos = join(work, 'p0');
    writeFile(photos, 'a.jpg', 1000, 1);
    const home = newHome('add', photos);
    const missing = join(work, 'nonexistent', 'usb');
    const r = hearth(home, ['target', 'add', 'dir', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`hearth: error: ${missing} does not exist: mount the disk, or create the folder first (mkdir -p ${missing})`);
    expect(existsSync(join(work, 'nonexistent'))).toBe(false);
    expect(hearthJson<any[]>(home, ['target', 'ls'])).toEqual([]);
  });

  it('writes a marker file that the config remembers', () => {
    const photos = join(work, 'p1');
    writeFile(photos, 'a.jpg', 1000, 1);
    const home = newHome('marker', photos);
    const usb = join(work, 'usb1');
    mkdirSync(usb);
    hearthOk(home, ['target', 'add', 'dir', usb, '--name', 'usb']);
    const marker = JSON.parse(readFileSync(join(usb, '.hearth-target'), 'utf8'));
    expect(marker).toMatchObject({ hearth: 'dir-target', name: 'usb', id: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(hearthJson<any[]>(home, ['target', 'ls'])).toEqual([{ name: 'usb', kind: 'dir', path: usb, marker: marker.id }]);
  });

  it('refuses a target inside a source, a source that holds a target, the home or another source, and a source inside a source', () => {
    const photos = join(work, 'p2');
    writeFile(photos, 'x/a.jpg', 1000, 1);
    const home = newHome('overlap', photos);
    mkdirSync(join(photos, 'backup'));
    const inside = hearth(home, ['target', 'add', 'dir', join(photos, 'backup')]);
    expect(inside.code).toBe(1);
    expect(inside.stderr).toMatch(/is inside source p2 .*: every backup would back up its own objects again/);
    const nested = hearth(home, ['source', 'add', join(photos, 'x')]);
    expect(nested.code).toBe(1);
    expect(nested.stderr).toMatch(/overlaps source p2/);
    const outer = hearth(home, ['source', 'add', work]);
    expect(outer.code).toBe(1);
    expect(outer.stderr).toMatch(/overlaps source p2|holds this Hearth home/);
    const disk = join(work, 'disk2');
    mkdirSync(join(disk, 'inner'), { recursive: true });
    hearthOk(home, ['target', 'add', 'dir', disk]);
    const holding = hearth(home, ['source', 'add', disk]);
    expect(holding.code).toBe(1);
    expect(holding.stderr).toMatch(/holds target disk2/);
    const homeItself = join(work, 'homeholder');
    mkdirSync(homeItself);
    const h2 = join(homeItself, 'h');
    hearthJson(h2, ['init']);
    const ownHome = hearth(h2, ['source', 'add', homeItself]);
    expect(ownHome.code).toBe(1);
    expect(ownHome.stderr).toMatch(/holds this Hearth home/);
    expect(hearthJson<any[]>(home, ['source', 'ls']).map((s) => s.name)).toEqual(['p2']);
  });
});

describe('an overlap left by an older config', () => {
  it('a target inside a source is skipped by the scan, said once, so a second backup does not back up the first one\'s objects', () => {
    const photos = join(work, 'p6');
    for (let i = 0; i < 3; i++) writeFile(photos, `img-${i}.jpg`, 200_000, 40 + i);
    const home = newHome('old-overlap', photos);
    const inside = join(photos, 'backup');
    mkdirSync(inside);
    // As `target add` wrote it before overlaps were refused.
    const configFile = join(home, 'config.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8'));
    config.targets.push({ name: 'inside', kind: 'dir', path: inside });
    writeFileSync(configFile, JSON.stringify(config));
    for (const round of [1, 2]) {
      const r = hearth(home, ['backup']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const said = r.stderr.split('\n').filter((l) => l.includes('holds target inside'));
      expect(said, `round ${round}`).toHaveLength(1);
    }
    const files = hearthJson<any[]>(home, ['ls']).filter((f) => f.type === 'file').map((f) => f.path).sort();
    expect(files).toEqual(['p6/img-0.jpg', 'p6/img-1.jpg', 'p6/img-2.jpg']);
  });
});

describe('a disk that is not mounted, full or read-only stops only itself', () => {
  withMount('an unplugged disk (the mount point is an empty folder) is refused in one line; the other target gets the backup', () => {
    const photos = join(work, 'p3');
    for (let i = 0; i < 3; i++) writeFile(photos, `img-${i}.jpg`, 400_000, 10 + i);
    const home = newHome('unplugged', photos);
    const usb = join(work, 'usb3');
    const nas = join(work, 'nas3');
    mkdirSync(nas);
    expect(mountTmpfs(usb, '20m')).toBe(true);
    hearthOk(home, ['target', 'add', 'dir', usb, '--name', 'usb']);
    hearthOk(home, ['target', 'add', 'dir', nas, '--name', 'nas']);
    run('umount', [usb]);
    mounts.splice(mounts.indexOf(usb), 1);

    const r = hearth(home, ['backup']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(readdirSync(usb)).toEqual([]);
    const lines = (r.stdout + r.stderr).split('\n').filter((l) => l.includes('usb'));
    expect(lines).toHaveLength(2); // the moment it is skipped (stderr), and the summary (stdout)
    expect(lines.every((l) => /has no \.hearth-target marker, so the disk is not mounted there/.test(l))).toBe(true);
    const objects = hearthJson<any[]>(home, ['objects']);
    expect(objects.length).toBeGreaterThan(0);
    for (const o of objects) expect(o.placements.map((p: any) => p.target)).toEqual(['nas']);
    expect(filesOn(nas)).toEqual(objects.map((o) => o.id).sort());

    // Plugged in again: the next backup writes there again, and fills in what it missed.
    expect(mountTmpfs(usb, '20m')).toBe(true);
    writeFileSync(join(usb, '.hearth-target'), JSON.stringify({ id: hearthJson<any[]>(home, ['target', 'ls'])[0].marker }));
    writeFile(photos, 'new.jpg', 1000, 99);
    const again = hearth(home, ['backup', '--json']);
    expect(again.code, again.stdout).toBe(0);
    const newest = hearthJson<any[]>(home, ['objects']).filter((o) => !objects.some((x) => x.id === o.id));
    expect(newest.length).toBeGreaterThan(0);
    for (const o of newest) expect(o.placements.map((p: any) => p.target).sort()).toEqual(['nas', 'usb']);
    for (const o of objects) expect(hearthJson<any[]>(home, ['objects']).find((x) => x.id === o.id).placements.map((p: any) => p.target).sort()).toEqual(['nas', 'usb']);
    expect(filesOn(usb)).toEqual(filesOn(nas));
  });

  withMount('a full disk stops only itself: the run goes on with the other target, records what it placed, leaves nothing unrecorded, says so once', () => {
    const photos = join(work, 'p4');
    for (let i = 0; i < 8; i++) writeFile(photos, `img-${i}.jpg`, 700_000, 20 + i);
    const home = newHome('full', photos);
    const small = join(work, 'small4');
    const big = join(work, 'big4');
    mkdirSync(big);
    expect(mountTmpfs(small, '2m')).toBe(true);
    hearthOk(home, ['target', 'add', 'dir', small, '--name', 'small']);
    hearthOk(home, ['target', 'add', 'dir', big, '--name', 'big']);

    const r = hearth(home, ['backup']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const lines = (r.stdout + r.stderr).split('\n').filter((l) => l.includes('small'));
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => /dir target small is full/.test(l))).toBe(true);
    const objects = hearthJson<any[]>(home, ['objects']);
    const files = hearthJson<any[]>(home, ['ls']).filter((f) => f.type === 'file');
    expect(files).toHaveLength(8);
    // Every object on either disk is recorded there, and the healthy disk has them all.
    expect(filesOn(big)).toEqual(objects.map((o) => o.id).sort());
    expect(filesOn(small)).toEqual(objects.filter((o) => o.placements.some((p: any) => p.target === 'small')).map((o) => o.id).sort());
    expect(objects.every((o) => o.placements.some((p: any) => p.target === 'big'))).toBe(true);
    expect(objects.some((o) => !o.placements.some((p: any) => p.target === 'small'))).toBe(true);
  });

  withMount('a read-only disk is reported as read-only, in one line, and the other target is served', () => {
    const photos = join(work, 'p5');
    writeFile(photos, 'img-0.jpg', 300_000, 30);
    const home = newHome('readonly', photos);
    const ro = join(work, 'ro5');
    const ok = join(work, 'ok5');
    mkdirSync(ok);
    expect(mountTmpfs(ro, '20m')).toBe(true);
    hearthOk(home, ['target', 'add', 'dir', ro, '--name', 'ro']);
    hearthOk(home, ['target', 'add', 'dir', ok, '--name', 'ok']);
    run('mount', ['-o', 'remount,ro', ro]);
    for (let i = 1; i < 4; i++) writeFile(photos, `img-${i}.jpg`, 300_000, 30 + i);

    const r = hearth(home, ['backup']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const lines = (r.stdout + r.stderr).split('\n').filter((l) => l.includes(' ro'));
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => /dir target ro is read-only/.test(l))).toBe(true);
    expect(r.stdout + r.stderr).not.toMatch(/ENOENT|EROFS: /);
    const objects = hearthJson<any[]>(home, ['objects']);
    expect(objects.every((o) => o.placements.map((p: any) => p.target).join() === 'ok')).toBe(true);
    expect(filesOn(ok)).toEqual(objects.map((o) => o.id).sort());
  });
});

describe('host.dir: relatives\' data on another disk', () => {
  const daemons: RunningDaemon[] = [];
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
  });

  withMount('is refused when missing, marked when set, shown by status and peers, and not written while its disk is unmounted', async () => {
    const photos = join(work, 'p7');
    writeFile(photos, 'img-0.jpg', 300_000, 70);
    const a = newHome('host-a', photos);
    const b = join(work, 'host-b');
    hearthJson(b, ['init']);
    const missing = join(work, 'no-such-disk');
    const refused = hearth(b, ['config', 'set', 'host.dir', missing]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/host\.dir .* is not an existing folder: mount the disk/);
    const disk = join(work, 'hostdisk');
    expect(mountTmpfs(disk, '20m')).toBe(true);
    hearthOk(b, ['config', 'set', 'host.dir', disk]);
    expect(JSON.parse(readFileSync(join(disk, '.hearth-hosted'), 'utf8')).hearth).toBe('hosted-dir');
    for (const h of [a, b]) hearthOk(h, ['config', 'set', 'replicate.interval', '1h']);
    daemons.push(await startDaemon(a), await startDaemon(b));
    const { code } = hearthJson(a, ['invite']);
    hearthJson(b, ['join', code]);
    hearthJson(a, ['backup']);
    await eventually(() => hearthJson<any[]>(a, ['objects']).every((o) => o.placements.some((p: any) => p.tier === 'peer')), 'objects at B');
    const aId = daemons[0]!.peerId;
    const ids = hearthJson<any[]>(a, ['objects']).map((o) => o.id);
    for (const id of ids) expect(existsSync(join(disk, aId, 'objects', id.slice(0, 2), id))).toBe(true);
    expect(existsSync(join(b, 'hosted', aId, 'objects'))).toBe(false);
    expect(hearthJson(b, ['status']).hostedDir).toBe(disk);
    expect(hearthJson<any[]>(b, ['peers'])[0].keptAt).toBe(join(disk, aId));
    expect(hearthOk(b, ['peers'])).toContain(`relatives' data is kept in ${disk}`);

    // The disk is unplugged: the mount point is an empty folder, and stays empty.
    spawnSync('umount', ['-l', disk]);
    mounts.splice(mounts.indexOf(disk), 1);
    writeFile(photos, 'img-1.jpg', 300_000, 71);
    hearthJson(a, ['backup']);
    const r = await hearthAsync(a, ['replicate', '--json']);
    const report = JSON.parse(r.stdout);
    expect(report.placed).toEqual([]);
    expect(report.failed.some((f: any) => /no \.hearth-hosted marker: its disk is not mounted/.test(f.error))).toBe(true);
    expect(readdirSync(disk)).toEqual([]);
  }, 90_000);
});
