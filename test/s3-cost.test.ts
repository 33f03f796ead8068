// hearth cost and the 180-day minimum through the real CLI and AWS SDK against
// fauxqs with the archive layer: requests are counted as they leave (matching the
// server's own ledger), a delete of a young archived object is put off and shown
// with what an early delete would cost, and sent once it is due.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hearthAsync, hearthAsyncOk } from './helpers/cli.ts';
import { writeFile } from './helpers/library.ts';
import { coldS3Suite, type ColdS3 } from './helpers/cold-s3.ts';
import { seedScenario } from '../node/cost.ts';
import { priceTable } from '../node/prices.ts';

let work: string;
let s3: ColdS3;
coldS3Suite('hearth-cost-', (w, s) => {
  work = w;
  s3 = s;
});

const ok = hearthAsyncOk;

interface Cost {
  targets: Array<{ target: string; objects: number; requests: Record<string, number>; requestCost: number; storagePerMonth: number; earlyDeletes: { objects: number; chargeIfDeletedNow: number } }>;
  scenario: { volumes: number; upload: { requests: number; dollars: number }; storagePerMonth: number; monthlyCheck: { requests: number; dollars: number } };
}

/**
 * A home whose only place is a Deep Archive bucket, with `count` staged blobs that
 * packing has retired: their deletes are put off (minutes, not 180 days, old).
 */
async function homeWithRetiredBlobs(name: string, count: number, seed: number): Promise<{ home: string; blobKeys: string[] }> {
  const home = join(work, name);
  const photos = join(work, `photos-${name}`);
  writeFile(photos, 'first/0.jpg', 100_000, seed);
  await ok(home, ['init']);
  await ok(home, ['source', 'add', photos]);
  await ok(home, ['target', 'add', 's3', '--bucket', 'family', '--prefix', name, '--endpoint', s3.endpoint, '--path-style', '--storage-class', 'DEEP_ARCHIVE', '--name', 'glacier']);
  await ok(home, ['config', 'set', 'volume.size', '64MiB']);
  // The first backup packs straight into a volume; the daily runs after it stage
  // blobs, and the bucket is this home's only place, so they go there.
  await ok(home, ['backup']);
  const firstKeys = s3.keys('family');
  for (let i = 0; i < count; i++) writeFile(photos, `day1/${i}.jpg`, 100_000, seed + i + 1);
  await ok(home, ['backup']);
  const blobKeys = s3.keys('family').filter((k) => k.startsWith(`${name}/`) && !k.includes('/catalog/') && !firstKeys.includes(k));
  expect(blobKeys).toHaveLength(count);
  await ok(home, ['backup', '--pack']);
  expect(s3.keys('family').filter((k) => blobKeys.includes(k))).toHaveLength(count);
  return { home, blobKeys };
}

describe('hearth cost', () => {
  it('counts requests as they leave, puts off young archived deletes, and sends them once due', async () => {
    const { home, blobKeys } = await homeWithRetiredBlobs('cost', 6, 100);
    const deferred = JSON.parse(readFileSync(join(home, 's3-deferred-deletes.json'), 'utf8')) as { deletes: Array<{ deleteAt: string }> };
    expect(deferred.deletes).toHaveLength(6);
    expect(Date.parse(deferred.deletes[0]!.deleteAt) - Date.now()).toBeGreaterThan(179 * 86_400_000);

    const cost = JSON.parse(await ok(home, ['cost', '--json'])) as Cost;
    const glacier = cost.targets.find((t) => t.target === 'glacier')!;
    const serverPuts = s3.ledger.filter((e) => e.op === 'PutObject' && e.key.startsWith('cost/') && !e.key.endsWith('.hearth-access-check')).length;
    expect(glacier.requests.PutObject).toBe(serverPuts);
    expect(glacier.requestCost).toBeGreaterThan(0);
    expect(glacier.earlyDeletes.objects).toBe(6);
    expect(glacier.earlyDeletes.chargeIfDeletedNow).toBeGreaterThan(0);
    const text = await ok(home, ['cost']);
    expect(text).toMatch(/glacier: 6 deletes put off until their minimum storage time has passed/);
    expect(text).toMatch(/one object per file, as the seed tool does: upload \$16\.50, \$0\.90 a month, checks \$22\.00 a month/);

    // Once the minimum has passed (here: made a second long), the next run sends them.
    await ok(home, ['config', 'set', 'price.minimumDays.DEEP_ARCHIVE', '0.00001']);
    await new Promise((r) => setTimeout(r, 1200));
    await ok(home, ['backup']);
    expect(s3.keys('family').filter((k) => blobKeys.includes(k))).toEqual([]);
    expect((JSON.parse(readFileSync(join(home, 's3-deferred-deletes.json'), 'utf8')) as { deletes: unknown[] }).deletes).toEqual([]);
  });

  it('cost --delete-early sends the deletes put off now, once the user chooses to pay for them', async () => {
    const { home, blobKeys } = await homeWithRetiredBlobs('early', 3, 200);

    const text = await ok(home, ['cost']);
    expect(text).toMatch(/glacier: 3 deletes put off .*"hearth cost --delete-early"/);
    const early = JSON.parse(await ok(home, ['cost', '--delete-early', '--json'])) as Cost & { deletedEarly: number };
    expect(early.deletedEarly).toBe(3);
    expect(early.targets.find((t) => t.target === 'glacier')!.earlyDeletes.objects).toBe(0);
    expect(s3.keys('family').filter((k) => blobKeys.includes(k))).toEqual([]);
    expect((JSON.parse(readFileSync(join(home, 's3-deferred-deletes.json'), 'utf8')) as { deletes: unknown[] }).deletes).toEqual([]);
    // Only the retired blobs went: the volume that holds their files stays, and a
    // restore is told to bring it back from cold storage (exit 6), not that it is lost.
    const restore = await hearthAsync(home, ['restore', '--to', join(work, 'restored-early')]);
    expect(restore.code, restore.stderr).toBe(6);
  });

  it('the seed scenario: 250 GB in 4 GiB volumes costs cents to upload and check, a quarter a month to keep', () => {
    const s = seedScenario(priceTable(), 'DEEP_ARCHIVE', 4 * 1024 ** 3, 1024 ** 3);
    expect(s.volumes).toBe(59);
    expect(s.upload.requests).toBe(59 * 6);
    expect(s.upload.dollars).toBeCloseTo(0.0177, 4);
    expect(s.storagePerMonth).toBeGreaterThan(0.2475);
    expect(s.storagePerMonth).toBeLessThan(0.25);
    expect(s.monthlyCheck.requests).toBe(60);
    expect(s.monthlyCheck.dollars).toBeLessThan(0.001);
  });
});
