// S3Tier against a real S3 server: OpenStack Swift with s3api, from Debian, on
// 127.0.0.1 (test/helpers/swift.ts), the strict "S3-compatible provider" profile:
// known-length bodies with Content-MD5 (checked by Swift), real multipart with
// ListParts (used to cross-check the journal after a real SIGKILL), no archive
// classes, and refused credentials named in one line. Then the whole CLI round trip.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { S3Tier, createS3Client } from '../storage/tier/s3.ts';
import { startSwift, swiftUnavailable, type SwiftServer } from './helpers/swift.ts';
import { hearthAsync } from './helpers/cli.ts';
import { makeLibrary, snapshotTree } from './helpers/library.ts';

const MiB = 1024 * 1024;
const unavailable = swiftUnavailable();

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sourceOf = (file: string) => ({ size: statSync(file).size, file, open: (offset: number) => createReadStream(file, { start: offset }) });

describe.skipIf(unavailable)(`S3 against OpenStack Swift${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let swift: SwiftServer;
  let dir: string;
  const tier = (o: { storageClass?: string; secret?: string } = {}): S3Tier =>
    new S3Tier({
      name: 'swift', bucket: 'family', prefix: 'hearth', homeId: 'home1',
      client: createS3Client({ endpoint: swift.endpoint, pathStyle: true, credentials: { ...swift.credentials, secretAccessKey: o.secret ?? swift.credentials.secretAccessKey } }),
      storageClass: o.storageClass, partSize: 5 * MiB, journalDir: join(dir, 'journal'), sha256Checksums: false,
    });

  beforeAll(async () => {
    swift = await startSwift();
    dir = mkdtempSync(join(tmpdir(), 'hearth-swift-t-'));
    await createS3Client({ endpoint: swift.endpoint, pathStyle: true, credentials: swift.credentials }).send(new CreateBucketCommand({ Bucket: 'family' }));
  }, 120_000);
  afterAll(async () => {
    await swift?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores and reads whole objects and ranges, lists and deletes', async () => {
    const t = tier();
    await t.checkAccess();
    const file = join(dir, 'small');
    const data = randomBytes(200_000);
    writeFileSync(file, data);
    // Content-MD5 only here: the checksum Swift keeps is its ETag, the MD5 of the bytes, and its listing gives the same.
    const receipt = await t.put('ab01', sourceOf(file));
    expect(receipt).toEqual({ checksum: `etag:${createHash('md5').update(data).digest('hex')}` });
    expect(await bytesOf(await t.get('ab01'))).toEqual(data);
    expect(await bytesOf(await t.get('ab01', { offset: 70_000, length: 5000 }))).toEqual(data.subarray(70_000, 75_000));
    const names: string[] = [];
    for await (const o of t.list()) {
      names.push(o.name);
      expect(o.checksums).toEqual([receipt.checksum]);
    }
    expect(names).toEqual(['ab01']);
    await t.delete('ab01');
    await expect(t.stat('ab01')).rejects.toThrow(/not found/);
  });

  it('a SIGKILLed multipart upload resumes from the parts Swift lists, byte-exact', async () => {
    const file = join(dir, 'big');
    writeFileSync(file, randomBytes(26 * MiB));
    const child = spawn(process.execPath, [fileURLToPath(new URL('./helpers/s3-put-child.ts', import.meta.url)), swift.endpoint, 'family', join(dir, 'journal'), String(5 * MiB), file, 'big1'], {
      stdio: 'ignore', env: { ...process.env, HEARTH_TEST_S3_KEY: swift.credentials.accessKeyId, HEARTH_TEST_S3_SECRET: swift.credentials.secretAccessKey, HEARTH_TEST_S3_SHA256: 'off' },
    });
    const journalled = (): number => {
      try {
        return (JSON.parse(readFileSync(join(dir, 'journal', 'big1.json'), 'utf8')) as { parts: unknown[] }).parts.length;
      } catch {
        return 0;
      }
    };
    const deadline = Date.now() + 90_000;
    while (journalled() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(journalled()).toBeGreaterThanOrEqual(2);
    const t = new S3Tier({ name: 'swift', bucket: 'family', prefix: 'hearth', homeId: 'home1', client: createS3Client({ endpoint: swift.endpoint, pathStyle: true, credentials: swift.credentials }), partSize: 5 * MiB, journalDir: join(dir, 'journal'), sha256Checksums: false });
    const receipt = await t.put('big1', sourceOf(file));
    expect(await bytesOf(await t.get('big1'))).toEqual(readFileSync(file));
    // A multipart object's ETag (MD5 of the parts' MD5s, -N) as Complete gave it is what Swift lists and HEADs, so the check compares like with like.
    expect(receipt.checksum).toMatch(/^etag:[0-9a-f]{32}-6$/);
    const listed = [];
    for await (const o of t.list()) if (o.name === 'big1') listed.push(o.checksums);
    expect(listed).toEqual([[receipt.checksum]]);
    expect((await t.stat('big1')).checksums).toEqual([receipt.checksum]);
  });

  it('names a refused storage class and refused credentials in one line', async () => {
    const file = join(dir, 'x');
    writeFileSync(file, 'x');
    await expect(tier({ storageClass: 'DEEP_ARCHIVE' }).put('cc01', sourceOf(file))).rejects.toThrow(/refuses storage class DEEP_ARCHIVE; use --storage-class STANDARD/);
    await expect(tier({ secret: 'wrong' }).checkAccess()).rejects.toThrow(/credentials were refused|access denied|refused \(403/);
  });

  it('the CLI backs up to Swift and restores byte-exact', async () => {
    const home = join(dir, 'home');
    const photos = join(dir, 'photos');
    makeLibrary(photos);
    const env = { AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = swift.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = swift.credentials.secretAccessKey;
    try {
      const ok = async (args: string[]): Promise<void> => {
        const r = await hearthAsync(home, args);
        if (r.code !== 0) throw new Error(`hearth ${args.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
      };
      await ok(['init']);
      await ok(['source', 'add', photos]);
      await ok(['target', 'add', 's3', '--bucket', 'family', '--prefix', 'cli', '--endpoint', swift.endpoint, '--path-style']);
      await ok(['config', 'set', 'volume.size', '1MiB']);
      await ok(['backup']);
      // The ETags recorded at placement match Swift's listing: no false alarm.
      await ok(['check']);
      await ok(['restore', '--to', join(dir, 'out')]);
      const expected = snapshotTree(photos);
      const got = snapshotTree(join(dir, 'out', 'photos'));
      expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [path, entry] of expected) expect(got.get(path), path).toEqual(entry);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
      process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
    }
  });
});
