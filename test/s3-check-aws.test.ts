// The monthly cloud check of an S3 target in the AWS profile (SHA-256 sent, no
// --endpoint), which the CLI cannot point at a local server: runTargetCheck itself,
// with a real catalog in LevelDB, a directory target and S3Tier through the real SDK
// against fauxqs with the cold-archive layer (which keeps the SHA-256 AWS would). The
// listing gives ETags only, so each copy with a recorded SHA-256 costs one HEAD; a
// copy replaced by other bytes of its size and class is found, alerted and repaired.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog, type CatalogPayload } from '../storage/catalog/catalog.ts';
import { deriveKeys } from '../storage/keys.ts';
import { MerkleBuilder } from '../storage/merkle.ts';
import { DirTier } from '../storage/tier/dir.ts';
import { S3Tier, createS3Client } from '../storage/tier/s3.ts';
import { placedChecksum, type Tier } from '../storage/tier/tier.ts';
import { AlertCenter } from '../node/alerts.ts';
import { runTargetCheck } from '../node/checks/target-check.ts';
import { startColdS3, type ColdS3 } from './helpers/cold-s3.ts';

const MiB = 1024 * 1024;
const LEAF = 64 * 1024;

describe('hearth check of an S3 target on AWS (SHA-256 recorded)', () => {
  let s3: ColdS3;
  let dir: string;
  let catalog: Catalog;
  beforeAll(async () => {
    s3 = await startColdS3();
    await s3.createBucket('family');
    dir = mkdtempSync(join(tmpdir(), 'hearth-s3aws-'));
    catalog = await Catalog.open(join(dir, 'catalog'), deriveKeys(randomBytes(32)));
  });
  afterAll(async () => {
    await catalog?.close();
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one listing and one HEAD per copy, nothing read; a same-size replacement is alerted and repaired from the disk', async () => {
    mkdirSync(join(dir, 'usb'));
    const usb = new DirTier({ name: 'usb', root: join(dir, 'usb'), ownerId: 'home1' });
    const glacier = new S3Tier({
      name: 'glacier', bucket: 'family', prefix: 'aws', homeId: 'home1', storageClass: 'DEEP_ARCHIVE', partSize: 5 * MiB, journalDir: join(dir, 'journal'),
      client: createS3Client({ endpoint: s3.endpoint, pathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
    });
    // A blob (one PutObject) and a volume (a multipart upload of 3 parts), placed on both targets.
    const objects = [{ id: 'aa01', bytes: randomBytes(200_000) }, { id: 'aa02', bytes: randomBytes(11 * MiB) }];
    const records: CatalogPayload[] = [];
    for (const [i, o] of objects.entries()) {
      const file = join(dir, o.id);
      writeFileSync(file, o.bytes);
      const tree = new MerkleBuilder(LEAF);
      tree.update(o.bytes);
      const hash = createHash('sha256').update(o.bytes).digest('hex');
      records.push({ k: 'object', id: o.id, kind: i === 0 ? 'blob' : 'volume', name: o.id, size: o.bytes.length, plainSize: o.bytes.length, merkleRoot: tree.digest(), leafSize: LEAF, contents: [{ hash, offset: 0, length: o.bytes.length }], time: Date.now() });
      for (const tier of [usb, glacier] as Tier[]) {
        const receipt = await tier.put(o.id, { size: o.bytes.length, open: (offset) => createReadStream(file, { start: offset }) });
        records.push({ k: 'place', id: o.id, tier: tier.kind, target: tier.name, location: tier.location(o.id), time: Date.now(), ...placedChecksum(receipt) });
      }
    }
    await catalog.append(records);
    const placed = (await catalog.placements('aa02')).find((p) => p.target === 'glacier')!;
    expect(placed.checksum).toMatch(/^sha256:[A-Za-z0-9+/]{43}=-3$/);

    const lines: string[] = [];
    const ctx = {
      catalog,
      homeTiers: [usb, glacier] as Tier[],
      relatives: async () => [],
      alerts: new AlertCenter({ home: dir, settings: () => ({ get: () => '' }) }),
      log: (line: string) => void lines.push(line),
      progress: { update: () => {}, log: () => {}, done: () => {} },
      storageClassOf: () => 'DEEP_ARCHIVE',
    };
    s3.ledger.splice(0);
    const clean = await runTargetCheck(ctx, { readData: 0, target: 'glacier' });
    expect(clean.ok).toBe(true);
    expect(clean.targets).toEqual([expect.objectContaining({ name: 'glacier', objects: 2, readObjects: 0, requests: { list: 1, head: 2, dollars: expect.closeTo(0.05 / 1000 + (2 * 0.0004) / 1000, 12) } })]);
    expect(s3.ledger.map((e) => e.op).sort()).toEqual(['HeadObject', 'HeadObject', 'ListObjects']);

    // Another client writes other bytes of the same size, in the same class, with their own SHA-256.
    const other = randomBytes(objects[1]!.bytes.length);
    const put = await fetch(`${s3.endpoint}/family/aws/home1/aa02`, { method: 'PUT', body: other, headers: { 'x-amz-storage-class': 'DEEP_ARCHIVE', 'x-amz-checksum-sha256': createHash('sha256').update(other).digest('base64') } });
    expect(put.ok).toBe(true);
    s3.ledger.splice(0);
    const found = await runTargetCheck(ctx, { readData: 0, target: 'glacier' });
    expect(found.ok).toBe(false);
    expect(found.damaged).toEqual([expect.objectContaining({ target: 'glacier', id: 'aa02', fault: 'checksum', repairedFrom: 'usb' })]);
    expect(found.damaged[0]!.detail).toMatch(/its bytes on glacier were replaced: the store keeps sha256 /);
    expect(s3.ledger.filter((e) => e.op === 'GetObject' || e.op === 'RestoreObject')).toEqual([]);
    expect(ctx.alerts.open().map((p) => p.problem)).toEqual([expect.objectContaining({ kind: 'target-damage', target: 'glacier', objects: ['aa02'], repaired: ['aa02'] })]);

    // The repair put the backup's bytes back, and its placement records their checksum again.
    expect((await catalog.placements('aa02')).find((p) => p.target === 'glacier')).toMatchObject({ checksum: placed.checksum });
    expect((await glacier.stat('aa02')).checksums).toContain(placed.checksum);
    expect((await runTargetCheck(ctx, { readData: 0, target: 'glacier' })).ok).toBe(true);
  });
});
