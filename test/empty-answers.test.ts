// Answers that are never silently empty: ls/restore of nothing, --at before any
// backup, a wrong-case name, a bad --to, and `hearth snapshots` that lists the
// times --at can use. The real CLI as separate processes on a real home.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearth, hearthJson, hearthOk, madeDir } from './helpers/cli.ts';
import { writeFile } from './helpers/library.ts';
import { formatLocalTime } from '../node/units.ts';

let work: string;
let home: string;
let snaps: Array<{ run: string; at: string; finishedAt: string | null; durationMs: number | null; state: string; files: number | null; bytes: number | null }>;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-answers-'));
  home = join(work, 'home');
  const photos = join(work, 'Photos');
  writeFile(photos, '2023/a.jpg', 1000, 1);
  writeFile(photos, '2025/b.jpg', 2000, 2);
  writeFile(photos, 'Summer/c.jpg', 3000, 3);
  hearthJson(home, ['init']);
  hearthOk(home, ['source', 'add', photos]);
  hearthOk(home, ['target', 'add', 'dir', madeDir(join(work, 'disk'))]);
  expect(hearthJson(home, ['snapshots'])).toEqual([]);
  hearthOk(home, ['backup']);
  // The second backup starts in a later second, so the two have distinct times to the second.
  const nextSecond = Math.ceil((Date.now() + 1) / 1000) * 1000;
  while (Date.now() < nextSecond) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, nextSecond - Date.now());
  writeFile(photos, '2025/d.jpg', 4000, 4);
  hearthOk(home, ['backup']);
  snaps = hearthJson(home, ['snapshots']);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

function fails(args: string[]): string {
  const r = hearth(home, args);
  expect(r.code, `hearth ${args.join(' ')} should fail; stdout: ${r.stdout}`).not.toBe(0);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe('hearth snapshots', () => {
  it('lists each backup run with its time, duration, files, bytes and whether it completed', () => {
    expect(snaps).toHaveLength(2);
    expect(snaps.map((s) => [s.state, s.files, s.bytes])).toEqual([['complete', 3, 6000], ['complete', 4, 10000]]);
    for (const s of snaps) {
      expect(s.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Date.parse(s.finishedAt!) - Date.parse(s.at)).toBe(s.durationMs);
    }
    const table = hearthOk(home, ['snapshots']);
    expect(table).toContain(formatLocalTime(Date.parse(snaps[0]!.at)));
    expect(table).toMatch(/complete/);
  });

  it('prints times that --at takes back: the first backup holds 3 files, not the 4th', () => {
    const first = formatLocalTime(Date.parse(snaps[0]!.at));
    const files = hearthJson<Array<{ path: string; type: string }>>(home, ['ls', '--at', first]).filter((e) => e.type === 'file');
    expect(files.map((f) => f.path).sort()).toEqual(['Photos/2023/a.jpg', 'Photos/2025/b.jpg', 'Photos/Summer/c.jpg']);
  });
});

describe('nothing matched is an error naming what exists', () => {
  it('ls of a path that is not there names the folder\'s entries', () => {
    const line = fails(['ls', 'Photos/2024']);
    expect(line).toContain('nothing backed up at "Photos/2024"');
    expect(line).toContain('"2023"');
    expect(line).toContain('"2025"');
  });

  it('a wrong-case source or folder is named with what it probably meant', () => {
    expect(fails(['ls', 'photos/2024'])).toMatch(/no source named "photos" \(did you mean "Photos"\?.*"Photos"/);
    expect(fails(['ls', 'Photos/summer'])).toContain('did you mean "Summer"?');
    expect(fails(['restore', 'photos', '--to', join(work, 'r1')])).toContain('did you mean "Photos"?');
    expect(existsSync(join(work, 'r1'))).toBe(false);
  });

  it('--at before the first backup says when the first backup was', () => {
    const line = fails(['ls', '--at', '2001-01-01']);
    expect(line).toContain('no backup as of 2001-01-01');
    expect(line).toContain(`the first backup was at ${formatLocalTime(Date.parse(snaps[0]!.at))}`);
    expect(fails(['restore', '--at', '2001-01-01', '--to', join(work, 'r2')])).toContain('no backup as of 2001-01-01');
    expect(existsSync(join(work, 'r2'))).toBe(false);
  });

  it('a home with no backup yet says to run one', () => {
    const fresh = join(work, 'fresh');
    hearthJson(fresh, ['init']);
    expect(fails(['--home', fresh, 'ls'])).toContain('nothing is backed up yet');
  });
});

describe('restore --to and --from', () => {
  it('refuses an empty --to and a --to that is a file', () => {
    expect(fails(['restore', '--to', ''])).toContain('--to is empty');
    const file = join(work, 'a-file');
    writeFileSync(file, 'x');
    expect(fails(['restore', '--to', file])).toContain('is a file, not a folder');
  });

  it('--from takes a target by name, and names the targets and relatives when nothing is called that', () => {
    const to = join(work, 'r3');
    const r = hearthJson(home, ['restore', '--from', 'disk', '--to', to]);
    expect(r.files).toBe(4);
    expect(readdirSync(join(to, 'Photos')).sort()).toEqual(['2023', '2025', 'Summer']);
    expect(fails(['restore', '--from', 'grandma', '--to', join(work, 'r4')])).toBe('hearth: error: no target or relative named "grandma": targets are "disk", relatives none');
  });
});
