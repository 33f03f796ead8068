// DriveTier through the real googleapis client against the Drive v3 emulator
// (test/helpers/drive-emulator.ts; no Drive server runs offline): multipart and
// resumable uploads, a resumable upload SIGKILLed mid-way that resumes from the
// server's Range, an expired session that starts over, ranged reads, drive.file
// visibility, rate limits retried, quota and a lapsed sign-in reported in one line.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { auth, drive as driveApi } from 'googleapis/build/src/apis/drive/index.js';
import { DriveTier, FOLDER_MIME } from '../storage/tier/drive.ts';
import { RetryTier } from '../storage/tier/retry.ts';
import { ObjectNotFoundError, isPermanent } from '../storage/tier/tier.ts';
import { FileUploadJournal } from '../node/drive-target.ts';
import { guardLoopback, startDriveEmulator, type DriveEmulator } from './helpers/drive-emulator.ts';

const KiB = 1024;
const CHUNK = 256 * KiB;

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function sourceOf(file: string) {
  return { size: statSync(file).size, file, open: (offset: number) => createReadStream(file, { start: offset }) };
}

describe('DriveTier', () => {
  let emu: DriveEmulator;
  let dir: string;
  let guard: ReturnType<typeof guardLoopback>;
  let folderId: string;
  let refreshToken: string;
  const clientOf = (clientId: string, refresh: string) => {
    const oauth = new auth.OAuth2({ clientId, clientSecret: `${clientId}-secret`, endpoints: { oauth2TokenUrl: emu.tokenUrl } });
    oauth.setCredentials({ refresh_token: refresh });
    return { oauth, drive: driveApi({ version: 'v3', auth: oauth, rootUrl: emu.url }) };
  };
  const tier = (o: { chunkSize?: number; multipartLimit?: number; maxUse?: number; refresh?: string; clientId?: string; folder?: string } = {}): DriveTier => {
    const { oauth, drive } = clientOf(o.clientId ?? 'client-a', o.refresh ?? refreshToken);
    return new DriveTier({ name: 'drive', drive, auth: oauth, rootUrl: emu.url, folderId: o.folder ?? folderId, journal: new FileUploadJournal(join(dir, 'journal')), chunkSize: o.chunkSize ?? CHUNK, multipartLimit: o.multipartLimit, maxUse: o.maxUse, label: 'drive target drive' });
  };
  const file = (name: string, size: number): string => {
    const path = join(dir, name);
    writeFileSync(path, randomBytes(size));
    return path;
  };

  beforeAll(async () => {
    guard = guardLoopback();
    emu = await startDriveEmulator();
    emu.addClient('client-a', 'client-a-secret');
    emu.addClient('client-b', 'client-b-secret');
    refreshToken = emu.issueTokens('client-a').refresh_token;
    dir = mkdtempSync(join(tmpdir(), 'hearth-drive-'));
    const { drive } = clientOf('client-a', refreshToken);
    folderId = (await drive.files.create({ requestBody: { name: 'Hearth test', mimeType: FOLDER_MIME, parents: ['root'] }, fields: 'id' }, { rootUrl: emu.url })).data.id!;
  });
  afterAll(async () => {
    await emu.stop();
    guard.restore();
    rmSync(dir, { recursive: true, force: true });
    expect(guard.violations).toEqual([]);
  });

  it('stores a small object in one multipart request, named by id only, and reads it whole and by range', async () => {
    const t = tier();
    const path = file('small', 100_000);
    const data = await bytesOf(createReadStream(path));
    const before = emu.ledger.length;
    const receipt = await t.put('ab12cd', sourceOf(path));
    expect(emu.ledger.slice(before).map((e) => e.op).filter((op) => op !== 'token')).toEqual(['list', 'about', 'upload-multipart']);
    expect(receipt).toEqual({ checksum: `sha256:${createHash('sha256').update(data).digest('base64')}` });
    const stored = emu.files().find((f) => f.name === 'ab12cd')!;
    expect(stored.parents).toEqual([folderId]);
    expect(stored.data).toEqual(data);
    expect(t.location('ab12cd')).toBe(`drive://${folderId}/${stored.id}`);
    expect(await bytesOf(await tier().get('ab12cd'))).toEqual(data);
    expect(await bytesOf(await t.get('ab12cd', { offset: 65_536, length: 1000 }))).toEqual(data.subarray(65_536, 66_536));
    expect(await t.stat('ab12cd')).toEqual({ name: 'ab12cd', size: data.length });
    const listed = [];
    for await (const o of t.list()) listed.push(o);
    expect(listed).toEqual([expect.objectContaining({ name: 'ab12cd', size: data.length, checksums: [`sha256:${createHash('sha256').update(data).digest('base64')}`, `md5:${createHash('md5').update(data).digest('hex')}`] })]);
    await t.delete('ab12cd');
    await expect(t.stat('ab12cd')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await t.delete('ab12cd');
  });

  it('with drive.maxUse a staged blob costs one request: the folder is listed once, the quota read once, and the listing still finds a copy to replace', async () => {
    const folder = (await clientOf('client-a', refreshToken).drive.files.create({ requestBody: { name: 'staging', mimeType: FOLDER_MIME, parents: [folderId] }, fields: 'id' }, { rootUrl: emu.url })).data.id!;
    await tier({ folder }).put('old1', sourceOf(file('old1', 2000)));
    const t = tier({ folder, maxUse: 1e9 });
    const before = emu.ledger.length;
    for (const name of ['s1', 's2', 's3']) await t.put(name, sourceOf(file(name, 3000)));
    expect(emu.ledger.slice(before).map((e) => e.op).filter((op) => op !== 'token')).toEqual(['list', 'about', 'upload-multipart', 'upload-multipart', 'upload-multipart']);
    const again = file('old1-again', 2500);
    await t.put('old1', sourceOf(again));
    expect(emu.files().filter((f) => f.name === 'old1').map((f) => f.data)).toEqual([await bytesOf(createReadStream(again))]);
    expect(await t.usage()).toBe(3 * 3000 + 2500);
  });

  it('a source that ends before its declared size fails the put with its own line and stores nothing, multipart or resumable', async () => {
    const t = tier({ chunkSize: 2 * CHUNK, multipartLimit: CHUNK });
    const filesBefore = emu.files().length;
    for (const [name, size] of [['short1', 100_000], ['short2', 5 * CHUNK]] as const) {
      const path = file(name, size - 1000);
      const err = await t.put(name, { size, file: path, open: (offset) => createReadStream(path, { start: offset }) }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/^the source gave \d+ bytes where \d+ were declared; the data changed while it was being stored$/);
    }
    expect(emu.files().length).toBe(filesBefore);
    // The resumable session stays journalled for the next try; delete forgets it.
    await t.delete('short2');
  });

  it('what Drive holds is checked against what was sent: sha256Checksum, or md5Checksum (hashed from the file) when Drive gives only that; a difference deletes the copy', async () => {
    const t = tier({ chunkSize: 2 * CHUNK, multipartLimit: CHUNK });
    const filesBefore = emu.files().length;
    try {
      for (const [name, size] of [['c1', 100_000], ['c2', 5 * CHUNK]] as const) {
        emu.damageUploads(1);
        await expect(t.put(name, sourceOf(file(name, size)))).rejects.toThrow(new RegExp(`^drive target drive: Drive reports another sha256Checksum for ${name} than Hearth sent; the copy was deleted`));
      }
      emu.checksums = { md5: true, sha256: false };
      emu.damageUploads(1);
      await expect(t.put('c3', sourceOf(file('c3', 100_000)))).rejects.toThrow(/another md5Checksum for c3/);
      expect(emu.files().length).toBe(filesBefore);
      const kept = file('c3', 3 * CHUNK);
      await t.put('c3', sourceOf(kept));
      expect(emu.files().find((f) => f.name === 'c3')!.data).toEqual(await bytesOf(createReadStream(kept)));
      emu.checksums = { md5: false, sha256: false };
      await expect(t.put('c4', sourceOf(file('c4', 1000)))).rejects.toThrow(/Drive reports no checksum for c4/);
    } finally {
      emu.checksums = { md5: true, sha256: true };
    }
    await t.delete('c3');
    expect(emu.files().length).toBe(filesBefore);
  });

  it('files created under another OAuth client id are invisible (drive.file)', async () => {
    const t = tier();
    await t.put('mine', sourceOf(file('mine', 1000)));
    const other = tier({ clientId: 'client-b', refresh: emu.issueTokens('client-b').refresh_token });
    await expect(other.stat('mine')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(other.put('x1', sourceOf(file('x1', 10)))).rejects.toThrow(/the folder is gone \(404/);
    await t.delete('mine');
  });

  it('uploads a large object resumably in 256 KiB multiples, checks sha256, and leaves no journal', async () => {
    const path = file('large', 5 * CHUNK + 12_345);
    const before = emu.ledger.length;
    await tier({ chunkSize: 2 * CHUNK, multipartLimit: CHUNK }).put('ef34', sourceOf(path));
    const ops = emu.ledger.slice(before).map((e) => e.op).filter((op) => op !== 'token');
    expect(ops).toEqual(['list', 'about', 'upload-start', 'upload-chunk', 'upload-chunk', 'upload-chunk']);
    expect(await bytesOf(await tier().get('ef34'))).toEqual(await bytesOf(createReadStream(path)));
    expect(readdirSync(join(dir, 'journal'))).toEqual([]);
  });

  it('a SIGKILLed resumable upload resumes from the server\'s Range after a restart, sending only the rest', async () => {
    const size = 16 * CHUNK + 777;
    const path = file('killed', size);
    emu.hold('upload-chunk', 5);
    const chunksAtStart = emu.count('upload-chunk');
    const startsBefore = emu.count('upload-start');
    const child = spawn(process.execPath, [fileURLToPath(new URL('./helpers/drive-put-child.ts', import.meta.url)), emu.url, 'client-a', 'client-a-secret', refreshToken, folderId, join(dir, 'journal'), String(CHUNK), path, 'k1'], { stdio: 'ignore' });
    const deadline = Date.now() + 60_000;
    // Five chunks answered, the sixth held unanswered: the kill lands mid-upload.
    while (emu.count('upload-chunk') - chunksAtStart < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    emu.release();
    expect(emu.count('upload-start')).toBe(startsBefore + 1);
    expect(emu.files().some((f) => f.name === 'k1')).toBe(false);
    expect(readdirSync(join(dir, 'journal'))).toEqual(['k1.json']);

    const before = emu.ledger.length;
    await tier().put('k1', sourceOf(path));
    const resumed = emu.ledger.slice(before).filter((e) => e.op.startsWith('upload'));
    expect(resumed.filter((e) => e.op === 'upload-start')).toHaveLength(0);
    // One status query (no body), then exactly the bytes Drive did not have: 5 chunks were committed.
    expect(resumed[0]).toMatchObject({ op: 'upload-chunk', bytes: 0, status: 308 });
    expect(resumed.reduce((n, e) => n + e.bytes, 0)).toBe(size - 5 * CHUNK);
    expect(await bytesOf(await tier().get('k1'))).toEqual(await bytesOf(createReadStream(path)));
    expect(readdirSync(join(dir, 'journal'))).toEqual([]);
  });

  it('a session Drive no longer knows (404) starts over with a new one', async () => {
    const size = 6 * CHUNK;
    const path = file('expired', size);
    const controller = new AbortController();
    // Two chunks answered, the third held: the put is stopped with its session journalled.
    emu.hold('upload-chunk', 2);
    const chunksBefore = emu.count('upload-chunk');
    const put = tier().put('e1', sourceOf(path), controller.signal);
    const deadline = Date.now() + 30_000;
    // Until the held third chunk has reached the emulator: stopped earlier, its request
    // could land after the next put began and be taken for that put's first.
    while (emu.count('upload-chunk') < chunksBefore + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(existsSync(join(dir, 'journal', 'e1.json'))).toBe(true);
    controller.abort();
    emu.release();
    await expect(put).rejects.toThrow();
    emu.expireUploadSessions();
    const before = emu.ledger.length;
    await tier().put('e1', sourceOf(path));
    const ops = emu.ledger.slice(before).filter((e) => e.op.startsWith('upload'));
    expect(ops[0]).toMatchObject({ op: 'upload-chunk', status: 404 });
    expect(ops.filter((e) => e.op === 'upload-start')).toHaveLength(1);
    expect(ops.filter((e) => e.op === 'upload-chunk' && e.bytes > 0).reduce((n, e) => n + e.bytes, 0)).toBe(size);
    expect(await bytesOf(await tier().get('e1'))).toEqual(await bytesOf(createReadStream(path)));
  });

  it('rate limits (403 userRateLimitExceeded and rateLimitExceeded, 429, 503) are retried with backoff', async () => {
    const retry = new RetryTier(tier(), { baseDelayMs: 10 });
    emu.inject('upload-multipart', { status: 403, reason: 'userRateLimitExceeded', times: 1 });
    emu.inject('upload-multipart', { status: 429, reason: 'rateLimitExceeded', times: 1 });
    emu.inject('upload-multipart', { status: 403, reason: 'rateLimitExceeded', times: 1 });
    emu.inject('media', { status: 503, reason: 'backendError', times: 1 });
    const path = file('busy', 5000);
    await retry.put('r1', sourceOf(path));
    expect(emu.ledger.filter((e) => e.op === 'upload-multipart').slice(-4).map((e) => e.status)).toEqual([403, 429, 403, 200]);
    expect(await bytesOf(await retry.get('r1'))).toEqual(await bytesOf(createReadStream(path)));
  });

  it('the emulator holds a bare HTTP client to Drive\'s rules: 256 KiB chunks, 308 with Range, invalid_grant', async () => {
    const { oauth } = clientOf('client-a', emu.issueTokens('client-a').refresh_token);
    const { token } = await oauth.getAccessToken();
    const start = await fetch(`${emu.url}upload/drive/v3/files?uploadType=resumable`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-upload-content-length': String(3 * CHUNK) }, body: JSON.stringify({ name: 'raw', parents: [folderId] }) });
    const session = start.headers.get('location')!;
    const put = (range: string, body?: Buffer) => fetch(session, { method: 'PUT', headers: { 'content-range': range }, body });
    expect((await put(`bytes 0-${CHUNK - 2}/${3 * CHUNK}`, Buffer.alloc(CHUNK - 1))).status).toBe(400);
    const empty = await put(`bytes */${3 * CHUNK}`);
    expect([empty.status, empty.headers.get('range')]).toEqual([308, null]);
    expect((await put(`bytes 0-${CHUNK - 1}/${3 * CHUNK}`, Buffer.alloc(CHUNK))).status).toBe(308);
    const status = await put(`bytes */${3 * CHUNK}`);
    expect([status.status, status.headers.get('range')]).toEqual([308, `bytes=0-${CHUNK - 1}`]);
    const done = await put(`bytes ${CHUNK}-${3 * CHUNK - 1}/${3 * CHUNK}`, Buffer.alloc(2 * CHUNK, 1));
    expect(done.status).toBe(200);
    emu.expireUploadSessions();
    expect((await put(`bytes */${3 * CHUNK}`)).status).toBe(404);
    const refused = await fetch(emu.tokenUrl, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'never-issued', client_id: 'client-a', client_secret: 'client-a-secret' }) });
    expect([refused.status, ((await refused.json()) as { error: string }).error]).toEqual([400, 'invalid_grant']);
  });
  it('a full Drive, a quota answer, drive.maxUse and a lapsed sign-in: one clear line each, permanent, nothing stored', async () => {
    const retry = new RetryTier(tier(), { baseDelayMs: 10 });
    const path = file('q', 10_000);
    const filesBefore = emu.files().length;

    emu.setQuota({ limit: 15e9, otherUsage: 15e9 - 5000 });
    const full = await retry.put('q1', sourceOf(path)).catch((e: Error) => e);
    expect((full as Error).message).toMatch(/^drive target drive: Google Drive is full \(15\.\d\d GB of 15\.00 GB used, shared with Gmail and Photos\)/);
    expect(isPermanent(full)).toBe(true);
    emu.setQuota({ otherUsage: 0 });

    emu.inject('upload-multipart', { status: 403, reason: 'storageQuotaExceeded', times: 1 });
    const uploadsBefore = emu.count('upload-multipart');
    const quota = await retry.put('q1', sourceOf(path)).catch((e: Error) => e);
    expect((quota as Error).message).toMatch(/Google Drive is full \(storageQuotaExceeded\)/);
    expect(emu.count('upload-multipart')).toBe(uploadsBefore + 1);

    const capped = await tier({ maxUse: 20_000 }).put('q2', sourceOf(file('q2', 30_000))).catch((e: Error) => e);
    expect((capped as Error).message).toMatch(/over drive\.maxUse \(0\.00 GB\); raise it with "hearth config set drive\.maxUse SIZE"/);
    expect(isPermanent(capped)).toBe(true);

    const stale = emu.issueTokens('client-a').refresh_token;
    emu.clock.advance(8 * 24 * 3600_000);
    const lapsed = await new RetryTier(tier({ refresh: stale }), { baseDelayMs: 10 }).put('q3', sourceOf(path)).catch((e: Error) => e);
    expect((lapsed as Error).message).toMatch(/the Google sign-in has expired or was revoked \(invalid_grant\): run "hearth auth google --client FILE" again/);
    expect(isPermanent(lapsed)).toBe(true);
    expect(emu.files().length).toBe(filesBefore);
  });
});
