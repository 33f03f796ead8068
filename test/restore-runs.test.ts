// Restoring many small files out of one volume reads them in runs: one range per
// run of consecutive files, not one per file. A run whose copy is damaged falls back
// to each file on its own, from every place that holds it.
import { closeSync, copyFileSync, mkdtempSync, openSync, readSync, renameSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentProgress } from '../node/progress.ts';
import { runRestore } from '../node/restore.ts';
import { HomeSession } from '../node/session.ts';
import { hearthJson, hearthOk } from './helpers/cli.ts';
import { snapshotTree, writeFile } from './helpers/library.ts';

const SMALL_FILES = 300;

let work: string;
let home: string;
let photos: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-restore-runs-'));
  home = join(work, 'home');
  photos = join(work, 'photos');
  for (let i = 0; i < SMALL_FILES; i++) writeFile(photos, `thumbs/${String(i).padStart(3, '0')}.jpg`, 4096 + (i % 7) * 100, i + 1);
  writeFile(photos, 'video.mp4', 3 * 1024 * 1024 + 5, 999);
  hearthJson(home, ['init']);
  hearthOk(home, ['source', 'add', photos]);
  mkdirSync(join(work, 'near'), { recursive: true });
  hearthOk(home, ['target', 'add', 'dir', join(work, 'near'), '--name', 'near']);
  mkdirSync(join(work, 'far'), { recursive: true });
  hearthOk(home, ['target', 'add', 'dir', join(work, 'far'), '--name', 'far']);
  // A first backup packs everything into one volume, at both targets.
  hearthJson(home, ['backup']);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

async function restoreInProcess(to: string): Promise<{ failed: unknown[]; gets: Record<string, number> }> {
  const session = await HomeSession.open(home);
  try {
    const tiers = session.tiers();
    const report = await runRestore({ catalog: session.catalog, tiers, identity: session.keys.x25519Secret, progress: silentProgress }, { paths: [], to, overwrite: false });
    return { failed: report.failed, gets: Object.fromEntries(tiers.map((t) => [t.name, t.counts().get])) };
  } finally {
    await session.close();
  }
}

describe('restore in runs', () => {
  it('reads consecutive small files of a volume as a few ranges, byte-exact, from the cheapest place only', async () => {
    const objects = hearthJson<Array<{ kind: string }>>(home, ['objects']);
    expect(objects.filter((o) => o.kind === 'volume')).toHaveLength(1);
    const to = join(work, 'restored');
    const { failed, gets } = await restoreInProcess(to);
    expect(failed).toEqual([]);
    expect(snapshotTree(join(to, 'photos'))).toEqual(snapshotTree(photos));
    // ~1.3 MB of small files make two runs of at most 1 MiB; the video is read on its
    // own, and the volume's header once: far fewer reads than the 301 files.
    expect(gets.near).toBeGreaterThan(0);
    expect(gets.near).toBeLessThanOrEqual(8);
    expect(gets.far).toBe(0);
  });

  it('restores every file of a run whose copy is damaged from the next place', async () => {
    const volume = hearthJson<Array<{ kind: string; placements: Array<{ target: string; location: string }> }>>(home, ['objects']).find((o) => o.kind === 'volume')!;
    const near = volume.placements.find((p) => p.target === 'near')!.location;
    // Both targets sit on this test's file system, so the put hard-linked one file
    // into both: give near a copy of its own before damaging it.
    copyFileSync(near, `${near}.copy`);
    renameSync(`${near}.copy`, near);
    // A byte in the first small files' chunks: their run fails authentication.
    const fd = openSync(near, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 200_000);
    byte[0] ^= 0xff;
    writeSync(fd, byte, 0, 1, 200_000);
    closeSync(fd);

    const to = join(work, 'restored-after-damage');
    const { failed, gets } = await restoreInProcess(to);
    expect(failed).toEqual([]);
    expect(snapshotTree(join(to, 'photos'))).toEqual(snapshotTree(photos));
    expect(gets.far).toBeGreaterThan(0);
  });
});
