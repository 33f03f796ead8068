// S3Tier through the real AWS SDK against fauxqs with the cold-archive layer
// (test/helpers/cold-s3.ts): whole and ranged reads, multipart uploads that resume
// after a real SIGKILL, cold reads that need a restore, and one-line errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { S3Tier, createS3Client, isColdObjectError, compositeSha256 } from '../storage/tier/s3.ts';
import { ObjectNotFoundError, isPermanent } from '../storage/tier/tier.ts';
import { verifyCopy, type ListedCopy } from '../node/checks/copy-verify.ts';
import { startColdS3, type ColdS3 } from './helpers/cold-s3.ts';

const MiB = 1024 * 1024;
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function sourceOf(file: string) {
  return { size: statSync(file).size, file, open: (offset: number) => createReadStream(file, { start: offset }) };
}

describe('S3Tier', () => {
  let s3: ColdS3;
  let dir: string;
  const tier = (options: { storageClass?: string; partSize?: number; bucket?: string; endpoint?: string } = {}): S3Tier =>
    new S3Tier({
      name: 'cloud',
      bucket: options.bucket ?? 'family',
      prefix: 'hearth',
      homeId: 'home1',
      client: createS3Client({ endpoint: options.endpoint ?? s3.endpoint, pathStyle: true, credentials }),
      storageClass: options.storageClass,
      partSize: options.partSize ?? 5 * MiB,
      journalDir: join(dir, 'journal'),
    });

  beforeAll(async () => {
    s3 = await startColdS3();
    await s3.createBucket('family');
    dir = mkdtempSync(join(tmpdir(), 'hearth-s3-'));
  });
  afterAll(async () => {
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores, reads whole and by range, stats, lists and deletes under an opaque key', async () => {
    const t = tier();
    const data = randomBytes(300_000);
    const file = join(dir, 'small');
    writeFileSync(file, data);
    await t.put('ab12cd', sourceOf(file));
    expect(s3.keys('family')).toContain('hearth/home1/ab12cd');
    expect(await bytesOf(await t.get('ab12cd'))).toEqual(data);
    expect(await bytesOf(await t.get('ab12cd', { offset: 65_536, length: 1000 }))).toEqual(data.subarray(65_536, 66_536));
    expect(await t.stat('ab12cd')).toEqual({ name: 'ab12cd', size: data.length, checksums: [`sha256:${createHash('sha256').update(data).digest('base64')}`, expect.stringMatching(/^etag:[0-9a-f]{32}$/)] });
    const listed = [];
    for await (const o of t.list()) listed.push(o.name);
    expect(listed).toEqual(['ab12cd']);
    await t.delete('ab12cd');
    await expect(t.stat('ab12cd')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(s3.count('PutObject')).toBe(1);
  });

  it('uploads a large object as a multipart upload with one request per part', async () => {
    const t = tier({ partSize: 5 * MiB });
    const file = join(dir, 'large');
    writeFileSync(file, randomBytes(12 * MiB + 123));
    const before = s3.ledger.length;
    await t.put('ef34', sourceOf(file));
    const ops = s3.ledger.slice(before).map((e) => e.op);
    expect(ops).toEqual(['CreateMultipartUpload', 'UploadPart', 'UploadPart', 'UploadPart', 'CompleteMultipartUpload']);
    const back = await bytesOf(await t.get('ef34'));
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(await bytesOf(createReadStream(file))).digest('hex'));
    expect(readdirSync(join(dir, 'journal'))).toEqual([]);
  });

  it('a SIGKILLed multipart upload sends only the missing parts on the next run, byte-exact', async () => {
    const file = join(dir, 'killed');
    writeFileSync(file, randomBytes(30 * MiB));
    const child = spawn(process.execPath, [fileURLToPath(new URL('./helpers/s3-put-child.ts', import.meta.url)), s3.endpoint, 'family', join(dir, 'journal'), String(5 * MiB), file, 'k1'], { stdio: 'ignore' });
    const partsOf = (): number => s3.ledger.filter((e) => e.op === 'UploadPart' && e.key === 'hearth/home1/k1').length;
    const deadline = Date.now() + 60_000;
    while (partsOf() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const sentBefore = partsOf();
    expect(sentBefore).toBeGreaterThanOrEqual(3);
    expect(sentBefore).toBeLessThan(6);
    expect(s3.keys('family')).not.toContain('hearth/home1/k1');

    const before = s3.ledger.length;
    await tier().put('k1', sourceOf(file));
    const resumed = s3.ledger.slice(before);
    expect(resumed.filter((e) => e.op === 'CreateMultipartUpload')).toHaveLength(0);
    // The part in flight at the kill may or may not have been journalled: at most one is sent twice.
    expect(resumed.filter((e) => e.op === 'UploadPart').length).toBeLessThanOrEqual(6 - sentBefore + 1);
    expect(resumed.filter((e) => e.op === 'UploadPart').length).toBeGreaterThanOrEqual(6 - sentBefore);
    expect(await bytesOf(await tier().get('k1'))).toEqual(await bytesOf(createReadStream(file)));
  });

  it('a resumed upload whose bytes changed under the same id starts over instead of mixing them', async () => {
    const file = join(dir, 'changed');
    writeFileSync(file, randomBytes(11 * MiB));
    const controller = new AbortController();
    const t = tier();
    const put = t.put('c1', { ...sourceOf(file), file: undefined, open: (offset) => createReadStream(file, { start: offset }) }, controller.signal);
    const deadline = Date.now() + 30_000;
    const journalled = (): number => {
      try {
        return (JSON.parse(readFileSync(join(dir, 'journal', 'c1.json'), 'utf8')) as { parts: unknown[] }).parts.length;
      } catch {
        return 0;
      }
    };
    while (journalled() < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    controller.abort();
    await expect(put).rejects.toThrow();
    const replacement = randomBytes(11 * MiB);
    writeFileSync(file, replacement);
    const before = s3.ledger.length;
    await tier().put('c1', sourceOf(file));
    const ops = s3.ledger.slice(before).map((e) => e.op);
    expect(ops).toContain('AbortMultipartUpload');
    expect(ops.filter((o) => o === 'CreateMultipartUpload')).toHaveLength(1);
    expect(await bytesOf(await tier().get('c1'))).toEqual(replacement);
  });

  it('an archived object cannot be read until its restore completes; restores are 202, 409, then 200', async () => {
    const t = tier({ storageClass: 'DEEP_ARCHIVE' });
    const file = join(dir, 'cold');
    const data = randomBytes(200_000);
    writeFileSync(file, data);
    await t.put('c0ld', sourceOf(file));
    expect(s3.classOf('family', 'hearth/home1/c0ld')).toBe('DEEP_ARCHIVE');
    const err = await t.get('c0ld').catch((e: unknown) => e);
    expect(isColdObjectError(err)).toBe(true);
    expect(isPermanent(err)).toBe(true);
    expect((await t.head('c0ld')).restore).toBe('none');
    await expect(t.requestRestore('c0ld', { tier: 'Expedited', days: 1 })).rejects.toThrow(/no Expedited retrieval/);
    expect(await t.requestRestore('c0ld', { tier: 'Bulk', days: 2 })).toBe('started');
    expect(await t.requestRestore('c0ld', { tier: 'Bulk', days: 2 })).toBe('ongoing');
    expect((await t.head('c0ld')).restore).toBe('ongoing');
    s3.clock.advance(47 * 3600_000);
    expect(isColdObjectError(await t.get('c0ld').catch((e: unknown) => e))).toBe(true);
    s3.clock.advance(2 * 3600_000);
    const state = await t.head('c0ld');
    expect(state).toMatchObject({ restore: 'ready', archived: true, storageClass: 'DEEP_ARCHIVE', size: data.length });
    expect(await bytesOf(await t.get('c0ld', { offset: 10, length: 20 }))).toEqual(data.subarray(10, 30));
    expect(await t.requestRestore('c0ld', { tier: 'Bulk', days: 2 })).toBe('ready');
    const hot = tier();
    await hot.put('h0t', sourceOf(file));
    expect(await hot.requestRestore('h0t', { tier: 'Bulk', days: 1 })).toBe('not-archived');
  });

  it('says in one line what is wrong: no bucket, a refused class, an unreachable endpoint', async () => {
    await expect(tier({ bucket: 'nope' }).checkAccess()).rejects.toThrow(/the bucket nope does not exist; create it or check --bucket/);
    s3.refuseClass('GLACIER');
    const file = join(dir, 'small2');
    writeFileSync(file, 'x');
    const refused = await tier({ storageClass: 'GLACIER' }).put('aa11', sourceOf(file)).catch((e: Error) => e);
    expect(String((refused as Error).message)).toMatch(/refuses storage class GLACIER; use --storage-class STANDARD/);
    expect(isPermanent(refused)).toBe(true);
    const unreachable = await tier({ endpoint: 'http://127.0.0.1:9' }).stat('aa11').catch((e: Error) => e);
    expect((unreachable as Error).message).toMatch(/cannot reach the endpoint \(ECONNREFUSED\)/);
    await expect(tier().checkAccess()).resolves.toBeUndefined();
  });

  it('put says which SHA-256 S3 keeps; a copy replaced by other bytes of its size is found from the listing and one HEAD, nothing read', async () => {
    const start = s3.ledger.length;
    const t = tier({ partSize: 5 * MiB });
    const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('base64');
    const small = randomBytes(300_000);
    const large = randomBytes(11 * MiB);
    writeFileSync(join(dir, 'sum-small'), small);
    writeFileSync(join(dir, 'sum-large'), large);
    const single = await t.put('cc01', sourceOf(join(dir, 'sum-small')));
    const multi = await t.put('cc02', sourceOf(join(dir, 'sum-large')));
    expect(single).toEqual({ checksum: `sha256:${sha256(small)}` });
    expect(multi.checksum).toMatch(/^sha256:[A-Za-z0-9+/]{43}=-3$/);
    expect((await t.stat('cc02')).checksums).toContain(multi.checksum);

    const listing = async (): Promise<Map<string, ListedCopy>> => {
      const out = new Map<string, ListedCopy>();
      for await (const o of t.list()) out.set(o.name, { size: o.size, checksums: o.checksums });
      return out;
    };
    const check = async (id: string, data: Buffer, checksum: string | undefined) => {
      const listed = await listing();
      const before = s3.ledger.length;
      const verdict = await verifyCopy(t, { id, size: data.length, merkleRoot: '0'.repeat(64), leafSize: 65_536 }, true, undefined, { copy: listed.get(id), checksum });
      return { verdict, sent: s3.ledger.slice(before).map((e) => e.op) };
    };
    // The listing gives ETags only: the recorded SHA-256 costs one HEAD of that object.
    expect(await check('cc01', small, single.checksum)).toEqual({ verdict: { readBytes: 0, stats: 1 }, sent: ['HeadObject'] });
    expect(await check('cc02', large, multi.checksum)).toEqual({ verdict: { readBytes: 0, stats: 1 }, sent: ['HeadObject'] });
    // A placement recorded before checksums were: checked by size, as before, with no request.
    expect(await check('cc01', small, undefined)).toEqual({ verdict: { readBytes: 0, stats: 0 }, sent: [] });
    // One in an algorithm a later version may record: left alone, not taken for a store that lost it.
    expect(await check('cc01', small, 'crc64nvme:AAAAAAAAAAA=')).toEqual({ verdict: { readBytes: 0, stats: 0 }, sent: [] });

    // Other bytes of the same length, put by another client that sends its own SHA-256, and by one that sends none.
    const other = randomBytes(small.length);
    expect((await fetch(`${s3.endpoint}/family/hearth/home1/cc01`, { method: 'PUT', body: other, headers: { 'x-amz-checksum-sha256': sha256(other) } })).ok).toBe(true);
    expect((await fetch(`${s3.endpoint}/family/hearth/home1/cc02`, { method: 'PUT', body: randomBytes(large.length) })).ok).toBe(true);
    const replaced = await check('cc01', small, single.checksum);
    expect(replaced.verdict).toMatchObject({ fault: 'checksum', detail: expect.stringMatching(/its bytes on cloud were replaced: the store keeps sha256 /) });
    expect(replaced.sent).toEqual(['HeadObject']);
    const rewritten = await check('cc02', large, multi.checksum);
    expect(rewritten.verdict).toMatchObject({ fault: 'checksum', detail: expect.stringMatching(/keeps no sha256 checksum for it now/) });
    expect(s3.ledger.slice(start).filter((e) => e.op === 'GetObject')).toEqual([]);
    await t.delete('cc01');
    await t.delete('cc02');
  });

  it('composite SHA-256 matches what S3 computes for a multipart object', () => {
    const parts = [randomBytes(10), randomBytes(20)].map((b) => createHash('sha256').update(b).digest('base64'));
    const h = createHash('sha256');
    for (const p of parts) h.update(Buffer.from(p, 'base64'));
    expect(compositeSha256(parts)).toBe(`${h.digest('base64')}-2`);
  });
});
