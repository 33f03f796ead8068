// The monthly cloud check through the real CLI and AWS SDK against fauxqs with the
// archive layer: one listing per 1,000 objects, no HEAD per object and nothing
// retrieved; a cold object deleted or replaced in the bucket is found and written
// again from the home's disk, in the target's class.
import { describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
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

describe('hearth check on an S3 target', () => {
  it('lists once, retrieves nothing, and repairs a cold object deleted or replaced in the bucket', async () => {
    const home = join(work, 'home');
    const photos = join(work, 'photos');
    makeLibrary(photos);
    await ok(home, ['init']);
    await ok(home, ['source', 'add', photos]);
    mkdirSync(join(work, 'usb'), { recursive: true });
    await ok(home, ['target', 'add', 'dir', join(work, 'usb'), '--name', 'usb']);
    await ok(home, ['target', 'add', 's3', '--bucket', 'family', '--prefix', 'chk', '--endpoint', s3.endpoint, '--path-style', '--storage-class', 'DEEP_ARCHIVE', '--name', 'glacier']);
    await ok(home, ['config', 'set', 'policy.cold', 'always']);
    await ok(home, ['config', 'set', 'volume.size', '1MiB']);
    await ok(home, ['backup', '--pack']);
    const coldKeys = s3.keys('family').filter((k) => k.startsWith('chk/') && !k.includes('/catalog/'));
    expect(coldKeys.length).toBeGreaterThan(1);

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
});
