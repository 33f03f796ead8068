// Restores that wait for cold storage, through the real CLI and AWS SDK against
// fauxqs with the cold-archive layer and its clock: a restore that needs archived
// objects asks once per object, says what, until when and for how much, exits 6,
// and continues when run again after 48 hours; --wait blocks until the objects are
// back; the requests survive a daemon restart.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hearthAsync, hearthSpawn, hearthAsyncOk } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon as Daemon } from './helpers/daemon.ts';
import { makeLibrary, snapshotTree, writeFile } from './helpers/library.ts';
import { coldS3Suite, type ColdS3 } from './helpers/cold-s3.ts';

let work: string;
let s3: ColdS3;
const HOUR = 3600_000;
coldS3Suite('hearth-cold-', (w, s) => {
  work = w;
  s3 = s;
});

const ok = hearthAsyncOk;

/** A home whose only place is a Deep Archive bucket, backed up and packed. */
async function coldHome(name: string): Promise<{ home: string; photos: string; objects: number; phrase: string }> {
  const home = join(work, name);
  const photos = join(work, `photos-${name}`);
  makeLibrary(photos);
  const { phrase } = JSON.parse(await ok(home, ['init', '--json'])) as { phrase: string };
  await ok(home, ['source', 'add', photos]);
  await ok(home, ['target', 'add', 's3', '--bucket', 'family', '--prefix', name, '--endpoint', s3.endpoint, '--path-style', '--storage-class', 'DEEP_ARCHIVE']);
  await ok(home, ['config', 'set', 'volume.size', '1MiB']);
  await ok(home, ['config', 'set', 's3.restorePoll', '1s']);
  await ok(home, ['backup', '--pack']);
  const objects = JSON.parse(await ok(home, ['objects', '--json'])) as unknown[];
  return { home, photos, objects: objects.length, phrase };
}

function expectSameTree(restored: string, photos: string): void {
  const expected = snapshotTree(photos);
  const got = snapshotTree(restored);
  expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [path, entry] of expected) expect(got.get(path), path).toEqual(entry);
}

describe('restore from cold storage', () => {
  it('asks once per object, exits 6 with what, when and how much, and continues once they are back', async () => {
    const { home, photos, objects } = await coldHome('waits');
    const to = join(work, 'restored-waits');
    const restoresBefore = s3.count('RestoreObject');
    const first = await hearthAsync(home, ['restore', '--to', to]);
    expect(first.code, first.stderr).toBe(6);
    expect(first.stdout).toMatch(new RegExp(`^${objects} objects \\(0\\.\\d\\d GB\\) must first be brought back from cold storage \\(Bulk retrieval, requested; ready by \\S+ at the latest; about \\$\\d+\\.\\d\\d`));
    expect(first.stdout).toMatch(/Run the same restore again later to continue, or add --wait/);
    expect(s3.count('RestoreObject') - restoresBefore).toBe(objects);
    expect(existsSync(to) ? readdirSync(to) : []).toEqual([]);
    const journal = JSON.parse(readFileSync(join(home, 'cold-restores.json'), 'utf8')) as { requests: Array<{ tier: string }> };
    expect(journal.requests).toHaveLength(objects);

    s3.clock.advance(24 * HOUR);
    const second = await hearthAsync(home, ['restore', '--to', to, '--json']);
    expect(second.code).toBe(6);
    expect((JSON.parse(second.stdout) as { cold: { waiting: unknown[] } }).cold.waiting).toHaveLength(objects);
    // Still under way: nothing asked twice.
    expect(s3.count('RestoreObject') - restoresBefore).toBe(objects);

    s3.clock.advance(25 * HOUR);
    await ok(home, ['restore', '--to', to]);
    expectSameTree(join(to, `photos-waits`), photos);
    expect(JSON.parse(readFileSync(join(home, 'cold-restores.json'), 'utf8')).requests).toEqual([]);
  });

  it('--wait blocks until the objects are back, then restores', async () => {
    const { home, photos } = await coldHome('blocks');
    const to = join(work, 'restored-blocks');
    const child = hearthSpawn(home, ['restore', '--to', to, '--wait', '--tier', 'Standard']);
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    // Advance S3's clock only once every object has been asked for, as the restore says.
    const deadline = Date.now() + 60_000;
    while (!stderr.includes('Waiting.') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toMatch(/Standard retrieval, requested; ready by .* Waiting\./);
    s3.clock.advance(13 * HOUR);
    expect(await exited, stderr).toBe(0);
    expectSameTree(join(to, 'photos-blocks'), photos);
  });

  it('the requests survive a daemon restart', async () => {
    const { home, photos, objects } = await coldHome('daemon');
    const to = join(work, 'restored-daemon');
    let daemon: Daemon = await startDaemon(home);
    const before = s3.count('RestoreObject');
    const first = await hearthAsync(home, ['restore', '--to', to]);
    expect(first.code, first.stderr).toBe(6);
    await daemon.stop();
    daemon = await startDaemon(home);
    try {
      s3.clock.advance(49 * HOUR);
      await ok(home, ['restore', '--to', to]);
      expect(s3.count('RestoreObject') - before).toBe(objects);
      expectSameTree(join(to, 'photos-daemon'), photos);
    } finally {
      await daemon.stop();
    }
  });

  it('refuses Expedited for Deep Archive in one line', async () => {
    const { home } = await coldHome('expedited');
    const r = await hearthAsync(home, ['restore', '--to', join(work, 'x'), '--tier', 'Expedited']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^hearth: error: .*Deep Archive has no Expedited retrieval: use --tier Bulk/);
  });
});

describe('disaster recovery from the bucket alone', () => {
  it('the phrase and the S3 credentials bring back every file, byte-exact, with no relative and no local state', async () => {
    const { home, photos, phrase } = await coldHome('fire');
    writeFile(photos, 'after/one-more.jpg', 4000, 77);
    await ok(home, ['backup']);
    // The phrase is what the family wrote down; everything else burns.
    const phraseFile = join(work, 'fire-phrase.txt');
    writeFileSync(phraseFile, phrase);
    rmSync(home, { recursive: true, force: true });

    const fresh = join(work, 'fire-recovered');
    await ok(fresh, ['init', '--recover', '--phrase-file', phraseFile]);
    const added = await ok(fresh, ['target', 'add', 's3', '--bucket', 'family', '--prefix', 'fire', '--endpoint', s3.endpoint, '--path-style', '--storage-class', 'DEEP_ARCHIVE']);
    expect(added).toMatch(/recovered this home's catalog from family: \d+ records/);
    await ok(fresh, ['config', 'set', 's3.restorePoll', '1s']);
    const to = join(work, 'restored-fire');
    const waits = await hearthAsync(fresh, ['restore', '--to', to]);
    expect(waits.code).toBe(6);
    s3.clock.advance(49 * HOUR);
    await ok(fresh, ['restore', '--to', to]);
    expectSameTree(join(to, 'photos-fire'), photos);
  });

  it('a bucket that serves an older catalog than the home stored there is named', async () => {
    const { home, photos } = await coldHome('rollback');
    writeFile(photos, 'after/new.jpg', 4000, 78);
    await ok(home, ['backup']);
    const catalogKeys = s3.keys('family').filter((k) => k.startsWith('rollback/') && k.includes('/catalog/')).sort();
    expect(catalogKeys.length).toBeGreaterThanOrEqual(2);
    await s3.deleteObject('family', catalogKeys.at(-1)!);
    writeFile(photos, 'after/newer.jpg', 4000, 79);
    const r = await hearthAsync(home, ['backup']);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/error: catalog copy on family: the catalog on family ends at record \d+, but this home stored records up to \d+ there: the bucket serves an older catalog/);
  });
});

