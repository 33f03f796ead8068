// The monthly cloud check through the real CLI and AWS SDK against fauxqs with the
// archive layer: one listing per 1,000 objects, no HEAD per object and nothing
// retrieved; a cold object deleted or replaced in the bucket (by other bytes of
// another length, or of the same length: the ETag recorded at placement differs) is
// found and written again from the home's disk, in the target's class.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hearthAsync, hearthAsyncOk } from './helpers/cli.ts';
import { makeLibrary } from './helpers/library.ts';
import { coldS3Suite, type ColdS3 } from './helpers/cold-s3.ts';

let work: string;
let s3: ColdS3;
coldS3Suite('hearth-s3check-', (w, s) => {
  work = w;
  s3 = s;
});

const ok = hearthAsyncOk;

interface CheckReport {
  ok: boolean;
  targets: Array<{ name: string; kind: string; objects: number; readObjects: number; requests?: { list: number; head: number } }>;
  damaged: Array<{ target: string; id: string; fault: string; repairedFrom?: string }>;
}

/** A home backed up to a directory target "usb" and to Deep Archive ("glacier", under `prefix`); its cold objects' keys. */
async function coldHome(prefix: string): Promise<{ home: string; coldKeys: string[] }> {
  const home = join(work, `home-${prefix}`);
  const photos = join(work, `photos-${prefix}`);
  makeLibrary(photos);
  await ok(home, ['init']);
  await ok(home, ['source', 'add', photos]);
  mkdirSync(join(work, `usb-${prefix}`), { recursive: true });
  await ok(home, ['target', 'add', 'dir', join(work, `usb-${prefix}`), '--name', 'usb']);
  await ok(home, ['target', 'add', 's3', '--bucket', 'family', '--prefix', prefix, '--endpoint', s3.endpoint, '--path-style', '--storage-class', 'DEEP_ARCHIVE', '--name', 'glacier']);
  await ok(home, ['config', 'set', 'policy.cold', 'always']);
  await ok(home, ['config', 'set', 'volume.size', '1MiB']);
  await ok(home, ['backup', '--pack']);
  const coldKeys = s3.keys('family').filter((k) => k.startsWith(`${prefix}/`) && !k.includes('/catalog/'));
  expect(coldKeys.length).toBeGreaterThan(1);
  return { home, coldKeys };
}

describe('hearth check on an S3 target', () => {
  it('lists once, retrieves nothing, and repairs a cold object deleted or replaced in the bucket', async () => {
    const { home, coldKeys } = await coldHome('chk');

    const before = s3.ledger.length;
    const clean = JSON.parse(await ok(home, ['check', '--read-data', '--target', 'glacier', '--json'])) as CheckReport;
    const sent = s3.ledger.slice(before).map((e) => e.op);
    expect(clean.ok).toBe(true);
    expect(clean.targets).toEqual([expect.objectContaining({ name: 'glacier', kind: 's3', objects: coldKeys.length, readObjects: 0, requests: expect.objectContaining({ list: 1, head: 0 }) })]);
    expect(sent).toEqual(['ListObjects']);

    const [gone, replaced] = coldKeys as [string, string];
    await s3.deleteObject('family', gone);
    const outsider = await fetch(`${s3.endpoint}/family/${replaced}`, { method: 'PUT', body: 'not the backup' });
    expect(outsider.ok).toBe(true);
    const r = await hearthAsync(home, ['check', '--json']);
    expect(r.code, r.stderr).toBe(3);
    const found = JSON.parse(r.stdout) as CheckReport;
    const byId = new Map(found.damaged.map((d) => [d.id, d]));
    expect(byId.get(gone.split('/').at(-1)!)).toMatchObject({ target: 'glacier', fault: 'missing', repairedFrom: 'usb' });
    expect(byId.get(replaced.split('/').at(-1)!)).toMatchObject({ target: 'glacier', fault: 'size', repairedFrom: 'usb' });
    expect(s3.keys('family')).toContain(gone);
    expect(s3.classOf('family', gone)).toBe('DEEP_ARCHIVE');
    expect(s3.ledger.filter((e) => e.op === 'GetObject')).toEqual([]);

    const after = JSON.parse(await ok(home, ['check', '--json'])) as CheckReport;
    expect(after.ok).toBe(true);
  });

  it('finds a cold object replaced by other bytes of the same size from the listing alone, alerts, and repairs it', async () => {
    const { home, coldKeys } = await coldHome('same');
    const victim = coldKeys[0]!;
    const id = victim.split('/').at(-1)!;
    const url = `${s3.endpoint}/family/${victim}`;
    const head = await fetch(url, { method: 'HEAD' });
    const size = Number(head.headers.get('content-length'));
    expect(size).toBeGreaterThan(0);
    // Each cold copy's placement records the ETag the store answered (Content-MD5 only with --endpoint).
    const recorded = async (): Promise<string | undefined> => {
      const objects = JSON.parse(await ok(home, ['objects', '--json'])) as Array<{ id: string; placements: Array<{ target: string; checksum?: string }> }>;
      return objects.find((o) => o.id === id)!.placements.find((p) => p.target === 'glacier')!.checksum;
    };
    expect(await recorded()).toBe(`etag:${head.headers.get('etag')!.replaceAll('"', '')}`);
    // In the target's class, so that neither the size nor the class tells it apart.
    expect((await fetch(url, { method: 'PUT', body: randomBytes(size), headers: { 'x-amz-storage-class': 'DEEP_ARCHIVE' } })).ok).toBe(true);
    expect(s3.classOf('family', victim)).toBe('DEEP_ARCHIVE');
    s3.ledger.splice(0);

    const r = await hearthAsync(home, ['check', '--target', 'glacier', '--json']);
    expect(r.code, r.stderr).toBe(3);
    const found = JSON.parse(r.stdout) as CheckReport;
    expect(found.damaged).toEqual([expect.objectContaining({ target: 'glacier', id, fault: 'checksum', repairedFrom: 'usb' })]);
    expect(found.targets).toEqual([expect.objectContaining({ name: 'glacier', objects: coldKeys.length, requests: expect.objectContaining({ list: 1, head: 0 }) })]);
    // One listing, then the repair (a PutObject or a multipart upload, and the HEAD that verifies it); nothing read.
    const sent = s3.ledger.map((e) => e.op);
    expect(sent[0]).toBe('ListObjects');
    expect(sent.filter((op) => op === 'GetObject' || op === 'RestoreObject')).toEqual([]);
    expect(s3.classOf('family', victim)).toBe('DEEP_ARCHIVE');
    // The repair's placement records the checksum of the copy it wrote.
    expect(await recorded()).toBe(`etag:${(await fetch(url, { method: 'HEAD' })).headers.get('etag')!.replaceAll('"', '')}`);

    // The same alert as a damaged copy on a disk: one open problem for the target, naming the object.
    const alerts = readFileSync(join(home, 'alerts.json'), 'utf8');
    expect(alerts).toContain('target-damage');
    expect(alerts).toContain(id);
    const after = JSON.parse(await ok(home, ['check', '--target', 'glacier', '--json'])) as CheckReport;
    expect(after.ok).toBe(true);
  });
});
