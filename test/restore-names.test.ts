// Names a restore must bring back, and name on the command line: names of 236-255
// bytes (a temp name made by appending to them would exceed NAME_MAX), and names that
// are not UTF-8, given as the raw bytes a shell passes or as the escaped form that
// "hearth ls" prints. A file that fails is reported, the others restored, and neither
// the CLI nor the daemon dies of it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEARTH, hearth, hearthJson, hearthOk } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { restoreTemps, snapshotTree, writeFile } from './helpers/library.ts';
import { decodeFsName, displayPath, encodeFsName, parseDisplayPath } from '../storage/paths.ts';

let work: string;
let home: string;
let photos: string;

const LONG_NAMES = [236, 240, 250, 255].map((n) => `${'x'.repeat(n - 4)}.jpg`);
// "dir\xa0\xa1/inner\xe9.txt": Latin-1 bytes, not UTF-8.
const RAW_DIR = Buffer.from([0x64, 0x69, 0x72, 0xa0, 0xa1]);
const RAW_FILE = Buffer.from('inner\xe9.txt', 'latin1');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-restore-names-'));
  home = join(work, 'home');
  photos = join(work, 'photos');
  for (const [i, name] of LONG_NAMES.entries()) writeFile(photos, `long/${name}`, 3000 + i, i + 1);
  for (let i = 0; i < 5; i++) writeFile(photos, `plain/${i}.jpg`, 2000 + i, 100 + i);
  mkdirSync(Buffer.concat([Buffer.from(`${photos}/`), RAW_DIR]));
  writeFile(photos, Buffer.concat([RAW_DIR, Buffer.from('/'), RAW_FILE]), 1500, 200);
  writeFile(photos, Buffer.concat([RAW_DIR, Buffer.from('/other.txt')]), 1600, 201);
  writeFile(photos, 'back\\slash\\xe9.txt', 1700, 202);
  hearthJson(home, ['init']);
  hearthOk(home, ['source', 'add', photos]);
  mkdirSync(join(work, 'disk'), { recursive: true });
  hearthOk(home, ['target', 'add', 'dir', join(work, 'disk')]);
  hearthJson(home, ['backup']);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('names of 236-255 bytes', () => {
  it('restore byte-exact without a daemon, leaving no temp file', () => {
    const to = join(work, 'long-cli');
    const r = hearth(home, ['restore', 'photos/long', '--to', to, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).failed).toEqual([]);
    expect(snapshotTree(join(to, 'photos/long'))).toEqual(snapshotTree(join(photos, 'long')));
    expect(restoreTemps(to)).toEqual([]);
  });

  it('a file that cannot be written is reported (exit 3), the rest restored, and the daemon lives on', async () => {
    const daemon: RunningDaemon = await startDaemon(home);
    try {
      const to = join(work, 'long-daemon');
      const r = hearth(home, ['restore', '--to', to, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(snapshotTree(join(to, 'photos'))).toEqual(snapshotTree(photos));

      // A folder where a file is to go: that file fails, every other one is restored.
      const blocked = join(work, 'blocked');
      mkdirSync(join(blocked, 'photos/long', LONG_NAMES[3]!, 'in-the-way'), { recursive: true });
      const failing = hearth(home, ['restore', '--to', blocked, '--overwrite']);
      expect(failing.code, failing.stderr).toBe(3);
      expect(failing.stderr).toContain('restore finished with per-file errors: 1 not restored');
      expect(failing.stdout).toContain(`failed: photos/long/${LONG_NAMES[3]}`);
      const got = snapshotTree(join(blocked, 'photos'));
      for (const [path, entry] of snapshotTree(photos)) if (path !== `long/${LONG_NAMES[3]}`) expect(got.get(path), path).toEqual(entry);
      expect(restoreTemps(blocked)).toEqual([]);

      expect(daemon.process.exitCode).toBeNull();
      expect(hearthJson(home, ['status']).daemon).toBe(true);
    } finally {
      await daemon.stop();
    }
  });

  it('without a daemon, the same failure is reported with exit 3 and the rest restored', () => {
    const blocked = join(work, 'blocked-cli');
    mkdirSync(join(blocked, 'photos/plain/2.jpg/in-the-way'), { recursive: true });
    const r = hearth(home, ['restore', '--to', blocked, '--overwrite']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('restore finished with per-file errors: 1 not restored');
    expect(snapshotTree(join(blocked, 'photos/long'))).toEqual(snapshotTree(join(photos, 'long')));
    expect(restoreTemps(blocked)).toEqual([]);
  });
});

describe('paths that are not UTF-8 on the command line', () => {
  const escaped = 'photos/dir\\xa0\\xa1/inner\\xe9.txt';

  it('the form ls prints reads back to the same bytes, for any name', () => {
    const alphabet = [0x5c, 0x78, 0x61, 0x2f, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x8e, 0x86, 0x80, 0xff, 0xa0, 0x31];
    for (let seed = 1; seed <= 2000; seed++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (seed % 23) }, (_, i) => alphabet[(seed * 7919 + i * 104729) % alphabet.length]!));
      const name = decodeFsName(bytes);
      expect(encodeFsName(parseDisplayPath(displayPath(name))).equals(bytes), bytes.toString('hex')).toBe(true);
    }
  });

  it('"hearth ls" prints the escaped form, and takes it back', () => {
    const all = hearthOk(home, ['ls']);
    expect(all).toContain(escaped);
    expect(all).toContain('photos/back\\\\slash\\\\xe9.txt');
    const one = hearthOk(home, ['ls', escaped]);
    expect(one.trim().split('\n')).toHaveLength(1);
    expect(one).toContain(escaped);
  });

  it('restore takes the escaped form that ls prints', () => {
    const to = join(work, 'escaped');
    const r = hearthJson(home, ['restore', escaped, '--to', to]);
    expect(r.files).toBe(1);
    expect(snapshotTree(join(to, 'photos'))).toEqual(new Map([...snapshotTree(photos)].filter(([p]) => p.startsWith('dir\udca0\udca1') && !p.endsWith('other.txt'))));
  });

  it('restore takes the raw bytes a shell passes ($\'...\' in bash), and a name with backslashes as ls shows it', () => {
    const to = join(work, 'raw');
    const script = `exec "$0" "$1" --home "$2" restore $'photos/dir\\xa0\\xa1/inner\\xe9.txt' 'photos/back\\\\slash\\\\xe9.txt' --to "$3" --json`;
    const r = spawnSync('bash', ['-c', script, process.execPath, HEARTH, home, to], { encoding: 'utf8', env: { ...process.env, HEARTH_HOME: '' } });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).files).toBe(2);
    const got = snapshotTree(join(to, 'photos'));
    const want = snapshotTree(photos);
    const inner = 'dir\udca0\udca1/inner\udce9.txt';
    expect(got.get(inner)).toEqual(want.get(inner));
    expect(got.get('back\\slash\\xe9.txt')).toEqual(want.get('back\\slash\\xe9.txt'));
    expect(got.has('dir\udca0\udca1/other.txt')).toBe(false);
  });
});
