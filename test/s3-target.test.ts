// S3 targets through the real CLI and the real AWS SDK, against fauxqs with the
// cold-archive layer: `target add s3` checks access and says what is wrong in one
// line; volumes go to the bucket under opaque keys in the storage class asked for,
// staged blobs stay off cold storage; a home whose only place is the bucket keeps
// everything there and restores from it byte-exact.
import { describe, expect, it } from 'vitest';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hearthAsync, hearthSpawn, type CliResult, hearthAsyncOk } from './helpers/cli.ts';
import { makeLibrary, snapshotTree, writeFile } from './helpers/library.ts';
import { coldS3Suite, type ColdS3 } from './helpers/cold-s3.ts';

let work: string;
let s3: ColdS3;
coldS3Suite('hearth-s3t-', (w, s) => {
  work = w;
  s3 = s;
});

const ok = hearthAsyncOk;

const s3Args = (extra: string[] = []) => ['target', 'add', 's3', '--bucket', 'family', '--endpoint', s3.endpoint, '--path-style', ...extra];

function oneLineError(r: CliResult, pattern: RegExp): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe('hearth target add s3', () => {
  it('refuses a target that cannot work, in one line, and records nothing', async () => {
    const home = join(work, 'bad');
    await ok(home, ['init']);
    oneLineError(await hearthAsync(home, ['target', 'add', 's3', '--bucket', 'nope', '--endpoint', s3.endpoint, '--path-style']), /^hearth: error: .*the bucket nope does not exist; create it or check --bucket$/);
    oneLineError(await hearthAsync(home, ['target', 'add', 's3', '--bucket', 'family', '--endpoint', 'http://127.0.0.1:9', '--path-style']), /cannot reach the endpoint \(ECONNREFUSED\)/);
    oneLineError(await hearthAsync(home, ['target', 'add', 's3', '--bucket', 'family', '--endpoint', 'not a url']), /--endpoint "not a url" is not a URL/);
    oneLineError(await hearthAsync(home, ['target', 'add', 's3']), /target add s3 needs --bucket BUCKET/);
    oneLineError(await hearthAsync(home, ['target', 'add', 's3', '--bucket', 'Bad_Name!']), /is not a bucket name/);
    const config = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')) as { targets: unknown[] };
    expect(config.targets).toEqual([]);
    expect(JSON.stringify(config)).not.toMatch(/secret|test:/i);
  });

  it('policy.cold always: volumes go to the bucket in their class under opaque keys, blobs stay off it', async () => {
    const home = join(work, 'always');
    const photos = join(work, 'photos-always');
    makeLibrary(photos);
    await ok(home, ['init']);
    await ok(home, ['source', 'add', photos]);
    mkdirSync(join(work, 'usb-always'), { recursive: true });
    await ok(home, ['target', 'add', 'dir', join(work, 'usb-always'), '--name', 'usb']);
    expect(await ok(home, s3Args(['--storage-class', 'DEEP_ARCHIVE', '--name', 'cold']))).toMatch(/added target cold: s3:\/\/family\/hearth at .* \(DEEP_ARCHIVE\)/);
    await ok(home, ['config', 'set', 'policy.cold', 'always']);
    await ok(home, ['config', 'set', 'volume.size', '1MiB']);
    await ok(home, ['backup']);
    writeFile(photos, 'later/new.jpg', 3000, 99);
    await ok(home, ['backup']);
    const objects = JSON.parse(await ok(home, ['objects', '--json'])) as Array<{ id: string; kind: string; placements: Array<{ tier: string; target: string; location: string }> }>;
    const volumes = objects.filter((o) => o.kind === 'volume');
    const blobs = objects.filter((o) => o.kind === 'blob');
    expect(volumes.length).toBeGreaterThan(0);
    expect(blobs.length).toBeGreaterThan(0);
    for (const v of volumes) expect(v.placements.map((p) => p.target).sort()).toEqual(['cold', 'usb']);
    for (const b of blobs) expect(b.placements.map((p) => p.target)).toEqual(['usb']);
    const all = s3.keys('family').filter((k) => k.startsWith('hearth/'));
    const keys = all.filter((k) => !k.includes('/catalog/'));
    expect(keys).toHaveLength(volumes.length);
    // The catalog's copy sits beside them, one segment per backup, never archived.
    const segments = all.filter((k) => k.includes('/catalog/'));
    expect(segments).toHaveLength(2);
    for (const key of segments) {
      expect(key).toMatch(/^hearth\/[0-9a-f]{24}\/catalog\/\d{12}-\d{12}$/);
      expect(s3.classOf('family', key)).toBe('STANDARD');
    }
    for (const key of keys) {
      expect(key).toMatch(/^hearth\/[0-9a-f]{24}\/[0-9a-f]{64}$/);
      expect(s3.classOf('family', key)).toBe('DEEP_ARCHIVE');
    }
    expect(keys.join(' ')).not.toMatch(/jpg|photos|volume/);
  });

  it('a home whose only place is the bucket keeps everything there and restores from it byte-exact', async () => {
    const home = join(work, 'only');
    const photos = join(work, 'photos-only');
    makeLibrary(photos);
    await ok(home, ['init']);
    await ok(home, ['source', 'add', photos]);
    await ok(home, s3Args(['--prefix', 'only', '--storage-class', 'STANDARD']));
    await ok(home, ['config', 'set', 'volume.size', '1MiB']);
    await ok(home, ['backup']);
    writeFile(photos, 'later/new.jpg', 3000, 98);
    await ok(home, ['backup']);
    const objects = JSON.parse(await ok(home, ['objects', '--json'])) as Array<{ kind: string; placements: Array<{ tier: string }> }>;
    expect(objects.some((o) => o.kind === 'blob')).toBe(true);
    for (const o of objects) expect(o.placements.map((p) => p.tier)).toEqual(['s3']);
    const to = join(work, 'restored-only');
    await ok(home, ['restore', '--to', to]);
    const expected = snapshotTree(photos);
    const got = snapshotTree(join(to, 'photos-only'));
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [path, entry] of expected) expect(got.get(path), path).toEqual(entry);
  });

  it('a backup SIGKILLed in the middle of a multipart upload sends only the missing parts on the next run', async () => {
    const home = join(work, 'killed');
    const photos = join(work, 'photos-killed');
    writeFile(photos, 'video/long.mp4', 30 * 1024 * 1024, 31);
    writeFile(photos, 'small.jpg', 5000, 32);
    await ok(home, ['init']);
    await ok(home, ['source', 'add', photos]);
    await ok(home, s3Args(['--prefix', 'killed', '--storage-class', 'DEEP_ARCHIVE']));
    await ok(home, ['config', 'set', 's3.partSize', '5MiB']);
    await ok(home, ['config', 'set', 'volume.size', '64MiB']);
    const parts = (): Array<{ key: string }> => s3.ledger.filter((e) => e.op === 'UploadPart' && e.key.startsWith('killed/'));
    const child = hearthSpawn(home, ['backup']);
    const deadline = Date.now() + 60_000;
    while (parts().length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const sentBefore = parts().length;
    expect(sentBefore).toBeGreaterThanOrEqual(3);
    expect(sentBefore).toBeLessThan(7);
    const creates = s3.count('CreateMultipartUpload');

    const before = s3.ledger.length;
    await ok(home, ['backup']);
    const second = s3.ledger.slice(before).filter((e) => e.key.startsWith('killed/') && !e.key.includes('/catalog/'));
    expect(s3.count('CreateMultipartUpload')).toBe(creates);
    const resent = second.filter((e) => e.op === 'UploadPart').length;
    // The part in flight when the kill came may not have been journalled: at most that one is sent twice.
    expect(resent).toBeLessThanOrEqual(7 - sentBefore + 1);
    const to = join(work, 'restored-killed');
    s3.clock.advance(49 * 3600_000);
    const waits = await hearthAsync(home, ['restore', '--to', to]);
    expect(waits.code).toBe(6);
    s3.clock.advance(49 * 3600_000);
    await ok(home, ['restore', '--to', to]);
    const expected = snapshotTree(photos);
    const got = snapshotTree(join(to, 'photos-killed'));
    for (const [path, entry] of expected) expect(got.get(path), path).toEqual(entry);
  });

  it('removing a target aborts its unfinished uploads', async () => {
    const home = join(work, 'removed');
    const photos = join(work, 'photos-removed');
    writeFile(photos, 'video/long.mp4', 30 * 1024 * 1024, 41);
    await ok(home, ['init']);
    await ok(home, ['source', 'add', photos]);
    await ok(home, s3Args(['--prefix', 'removed', '--name', 'gone']));
    await ok(home, ['config', 'set', 's3.partSize', '5MiB']);
    const child = hearthSpawn(home, ['backup']);
    const deadline = Date.now() + 60_000;
    while (s3.ledger.filter((e) => e.op === 'UploadPart' && e.key.startsWith('removed/')).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const aborts = s3.count('AbortMultipartUpload');
    expect(await ok(home, ['target', 'rm', 'gone'])).toMatch(/removed target gone \(aborted 1 unfinished uploads there/);
    expect(s3.count('AbortMultipartUpload')).toBe(aborts + 1);
  });
});
