// A local S3 for tests: fauxqs (a real S3 wire implementation from npm) bound to
// 127.0.0.1, with a cold-archive layer of our own in its Fastify hooks for what no
// local server implements (FIELD-NOTES "Cloud"): the storage class of each key,
// RestoreObject with 202/200/409 and InvalidObjectState, x-amz-restore on HEAD, 403
// InvalidObjectState on a GET before the restore completes, classes in listings,
// ListParts, the SHA-256 checksum AWS keeps of an object sent with one (full, or the
// composite of a multipart upload's parts) and returns to a HEAD with checksum mode,
// an injectable clock (48 hours pass in a call), and a ledger of every request so
// tests assert request counts and cost.
import { buildApp } from 'fauxqs';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';

export interface LedgerEntry {
  op: string;
  bucket: string;
  key: string;
  bytes: number;
}

interface KeyState {
  storageClass: string;
  /** x-amz-checksum-sha256 as AWS reports it: base64, `-N` for a composite. */
  sha256?: string;
  restore?: { requestedAt: number; readyAt: number; days: number };
}

const ARCHIVE = new Set(['GLACIER', 'DEEP_ARCHIVE']);
const HOUR = 3600_000;
const RESTORE_HOURS: Record<string, number> = { Bulk: 48, Standard: 12, Expedited: 5 / 60 };

export interface ColdS3 {
  endpoint: string;
  ledger: LedgerEntry[];
  /** Requests of one kind so far (PutObject, UploadPart, HeadObject, ...). */
  count(op: string): number;
  clock: { now(): number; advance(ms: number): void };
  classOf(bucket: string, key: string): string | undefined;
  /** Refuse this class on writes, as stores without archive classes do (Swift, B2). */
  refuseClass(storageClass: string): void;
  /** Answer every request of this kind with an error status, e.g. to simulate an outage. */
  failNext(op: string, times: number, status?: number): void;
  createBucket(name: string): Promise<void>;
  /** Remove an object behind Hearth's back, as a provider's fault or a lifecycle rule would. */
  deleteObject(bucket: string, key: string): Promise<void>;
  keys(bucket: string): string[];
  stop(): Promise<void>;
}

function xmlError(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
}

function operation(method: string, path: string, q: URLSearchParams): string {
  const hasKey = path.split('/').filter(Boolean).length > 1;
  if (method === 'PUT') return q.has('partNumber') ? 'UploadPart' : hasKey ? 'PutObject' : 'CreateBucket';
  if (method === 'POST') return q.has('uploads') ? 'CreateMultipartUpload' : q.has('uploadId') ? 'CompleteMultipartUpload' : q.has('restore') ? 'RestoreObject' : q.has('delete') ? 'DeleteObjects' : 'Post';
  if (method === 'GET') return q.has('uploadId') ? 'ListParts' : q.has('uploads') ? 'ListMultipartUploads' : hasKey ? 'GetObject' : 'ListObjects';
  if (method === 'HEAD') return hasKey ? 'HeadObject' : 'HeadBucket';
  if (method === 'DELETE') return q.has('uploadId') ? 'AbortMultipartUpload' : hasKey ? 'DeleteObject' : 'DeleteBucket';
  return method;
}

export async function startColdS3(): Promise<ColdS3> {
  const app = buildApp({ logger: false });
  let offset = 0;
  const now = (): number => Date.now() + offset;
  const keys = new Map<string, KeyState>();
  const uploads = new Map<string, { storageClass: string; key: string; sha256: boolean; parts: Map<number, { etag: string; size: number; sha256?: string }> }>();
  const pendingClass = new Map<string, string>();
  const refused = new Set<string>();
  const failures = new Map<string, { times: number; status: number }>();
  const ledger: LedgerEntry[] = [];

  const restoreState = (state: KeyState): 'none' | 'ongoing' | 'ready' => {
    if (!state.restore) return 'none';
    const t = now();
    if (t < state.restore.readyAt) return 'ongoing';
    if (t < state.restore.readyAt + state.restore.days * 24 * HOUR) return 'ready';
    return 'none';
  };

  app.addHook('onRequest', async (req, reply) => {
    const url = new URL(req.url, 'http://x');
    const [bucket = '', ...rest] = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const key = rest.join('/');
    const op = operation(req.method, url.pathname, url.searchParams);
    const id = `${bucket}/${key}`;
    ledger.push({ op, bucket, key, bytes: Number(req.headers['content-length'] ?? 0) });
    (req as unknown as { coldOp: string }).coldOp = op;

    const failure = failures.get(op);
    if (failure && failure.times > 0) {
      failure.times--;
      return reply.code(failure.status).type('application/xml').send(xmlError(failure.status === 503 ? 'SlowDown' : 'InternalError', 'injected by the test'));
    }
    const requestedClass = (req.headers['x-amz-storage-class'] as string | undefined) ?? 'STANDARD';
    if ((op === 'PutObject' || op === 'CreateMultipartUpload') && refused.has(requestedClass)) {
      return reply.code(400).type('application/xml').send(xmlError('InvalidStorageClass', 'The storage class you specified is not valid'));
    }
    if (op === 'PutObject') pendingClass.set(id, requestedClass);
    if (op === 'CreateMultipartUpload') pendingClass.set(`upload:${id}`, requestedClass);
    if (op === 'ListParts') {
      const upload = uploads.get(url.searchParams.get('uploadId')!);
      if (!upload) return reply.code(404).type('application/xml').send(xmlError('NoSuchUpload', 'The specified upload does not exist'));
      const parts = [...upload.parts.entries()].sort((a, b) => a[0] - b[0]);
      const body = `<?xml version="1.0" encoding="UTF-8"?><ListPartsResult><Bucket>${bucket}</Bucket><Key>${key}</Key><UploadId>${url.searchParams.get('uploadId')}</UploadId><IsTruncated>false</IsTruncated>${parts
        .map(([n, p]) => `<Part><PartNumber>${n}</PartNumber><ETag>${p.etag}</ETag><Size>${p.size}</Size></Part>`)
        .join('')}</ListPartsResult>`;
      return reply.code(200).type('application/xml').send(body);
    }
    if (op === 'RestoreObject') {
      const state = keys.get(id);
      if (!state) return reply.code(404).type('application/xml').send(xmlError('NoSuchKey', 'The specified key does not exist.'));
      if (!ARCHIVE.has(state.storageClass)) return reply.code(403).type('application/xml').send(xmlError('InvalidObjectState', 'Restore is not allowed for the object\'s current storage class'));
      const body = await readBody(req.raw);
      const tier = /<Tier>(\w+)<\/Tier>/.exec(body)?.[1] ?? 'Standard';
      const days = Number(/<Days>(\d+)<\/Days>/.exec(body)?.[1] ?? 1);
      if (tier === 'Expedited' && state.storageClass === 'DEEP_ARCHIVE') return reply.code(400).type('application/xml').send(xmlError('InvalidArgument', 'Expedited is not supported for Deep Archive'));
      const current = restoreState(state);
      if (current === 'ongoing') return reply.code(409).type('application/xml').send(xmlError('RestoreAlreadyInProgress', 'Object restore is already in progress'));
      if (current === 'ready') {
        state.restore!.days = days;
        return reply.code(200).send('');
      }
      state.restore = { requestedAt: now(), readyAt: now() + RESTORE_HOURS[tier]! * HOUR, days };
      return reply.code(202).send('');
    }
    if (op === 'GetObject') {
      const state = keys.get(id);
      if (state && ARCHIVE.has(state.storageClass) && restoreState(state) !== 'ready') {
        return reply.code(403).type('application/xml').send(xmlError('InvalidObjectState', 'The operation is not valid for the object\'s storage class'));
      }
    }
    return undefined;
  });

  // fauxqs reads a Complete body only as PartNumber and ETag pairs; AWS requires each
  // part's checksum there when the upload was created with one, so strip it for fauxqs.
  app.addHook('preParsing', async (req, _reply, payload) => {
    if ((req as unknown as { coldOp?: string }).coldOp !== 'CompleteMultipartUpload') return payload;
    const body = (await readBody(payload)).replace(/<Checksum\w+>[^<]*<\/Checksum\w+>/g, '');
    req.headers['content-length'] = String(Buffer.byteLength(body));
    return Readable.from([Buffer.from(body)]);
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const op = (req as unknown as { coldOp?: string }).coldOp;
    const url = new URL(req.url, 'http://x');
    const [bucket = '', ...rest] = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const id = `${bucket}/${rest.join('/')}`;
    const ok = reply.statusCode < 300;
    if (op === 'PutObject' && ok) {
      const sha256 = req.headers['x-amz-checksum-sha256'] as string | undefined;
      keys.set(id, { storageClass: pendingClass.get(id) ?? 'STANDARD', ...(sha256 ? { sha256 } : {}) });
      pendingClass.delete(id);
    }
    if (op === 'CreateMultipartUpload' && ok) {
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(String(payload))?.[1];
      if (uploadId) uploads.set(uploadId, { storageClass: pendingClass.get(`upload:${id}`) ?? 'STANDARD', key: id, sha256: req.headers['x-amz-checksum-algorithm'] === 'SHA256', parts: new Map() });
      pendingClass.delete(`upload:${id}`);
    }
    if (op === 'UploadPart' && ok) {
      const upload = uploads.get(url.searchParams.get('uploadId') ?? '');
      upload?.parts.set(Number(url.searchParams.get('partNumber')), { etag: String(reply.getHeader('etag') ?? ''), size: Number(req.headers['content-length'] ?? 0), sha256: req.headers['x-amz-checksum-sha256'] as string | undefined });
    }
    if (op === 'CompleteMultipartUpload' && ok && !String(payload).includes('<Error>')) {
      const uploadId = url.searchParams.get('uploadId')!;
      const upload = uploads.get(uploadId);
      const parts = [...(upload?.parts.entries() ?? [])].sort((a, b) => a[0] - b[0]).map(([, p]) => p.sha256);
      const composite = upload?.sha256 && parts.every((p) => p !== undefined) ? compositeOf(parts as string[]) : undefined;
      keys.set(id, { storageClass: upload?.storageClass ?? 'STANDARD', ...(composite ? { sha256: composite } : {}) });
      uploads.delete(uploadId);
    }
    if (op === 'AbortMultipartUpload') uploads.delete(url.searchParams.get('uploadId') ?? '');
    if (op === 'DeleteObject' && ok) keys.delete(id);
    if (op === 'HeadObject' && ok) {
      const state = keys.get(id);
      if (state) {
        if (state.storageClass !== 'STANDARD') reply.header('x-amz-storage-class', state.storageClass);
        if (state.sha256 && req.headers['x-amz-checksum-mode'] === 'ENABLED') reply.header('x-amz-checksum-sha256', state.sha256);
        const r = restoreState(state);
        if (r === 'ongoing') reply.header('x-amz-restore', 'ongoing-request="true"');
        if (r === 'ready') reply.header('x-amz-restore', `ongoing-request="false", expiry-date="${new Date(state.restore!.readyAt + state.restore!.days * 24 * HOUR).toUTCString()}"`);
      }
    }
    if (op === 'ListObjects' && ok && typeof payload === 'string') {
      return payload.replace(/<Contents>([\s\S]*?)<\/Contents>/g, (whole, inner: string) => {
        const key = /<Key>([^<]*)<\/Key>/.exec(inner)?.[1];
        const state = key === undefined ? undefined : keys.get(`${bucket}/${unescapeXml(key)}`);
        if (!state) return whole;
        const restore = restoreState(state);
        const status = url.searchParams.has('x-amz-optional-object-attributes') || req.headers['x-amz-optional-object-attributes'] ? `<RestoreStatus><IsRestoreInProgress>${restore === 'ongoing'}</IsRestoreInProgress></RestoreStatus>` : '';
        return `<Contents>${inner.replace(/<StorageClass>[^<]*<\/StorageClass>/, `<StorageClass>${state.storageClass}</StorageClass>`)}${status}</Contents>`;
      });
    }
    return payload;
  });

  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    ledger,
    count: (op) => ledger.filter((e) => e.op === op).length,
    clock: { now, advance: (ms) => void (offset += ms) },
    classOf: (bucket, key) => keys.get(`${bucket}/${key}`)?.storageClass,
    refuseClass: (c) => void refused.add(c),
    failNext: (op, times, status = 500) => void failures.set(op, { times, status }),
    createBucket: async (name) => {
      const r = await fetch(`http://127.0.0.1:${port}/${name}/`, { method: 'PUT' });
      if (!r.ok) throw new Error(`creating bucket ${name}: ${r.status}`);
      ledger.pop();
    },
    deleteObject: async (bucket, key) => {
      const r = await fetch(`http://127.0.0.1:${port}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`, { method: 'DELETE' });
      if (!r.ok) throw new Error(`deleting ${bucket}/${key}: ${r.status}`);
      ledger.pop();
      keys.delete(`${bucket}/${key}`);
    },
    keys: (bucket) => [...keys.keys()].filter((k) => k.startsWith(`${bucket}/`)).map((k) => k.slice(bucket.length + 1)),
    stop: async () => {
      await app.close();
    },
  };
}

/** What AWS keeps for a multipart upload created with SHA-256: the SHA-256 of the parts' raw SHA-256s, and the part count. */
function compositeOf(partSha256s: string[]): string {
  const h = createHash('sha256');
  for (const p of partSha256s) h.update(Buffer.from(p, 'base64'));
  return `${h.digest('base64')}-${partSha256s.length}`;
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

function readBody(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

/**
 * For a test file: a work folder and a cold S3 with a bucket "family", started before
 * the file's tests and stopped after, and AWS credentials in the environment, where the
 * SDK's standard chain finds them as it would a user's (the CLI processes inherit them).
 */
export function coldS3Suite(prefix: string, ready: (work: string, s3: ColdS3) => void): void {
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  let work = '';
  let s3: ColdS3 | undefined;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), prefix));
    s3 = await startColdS3();
    await s3.createBucket('family');
    process.env.AWS_ACCESS_KEY_ID = 'test';
    process.env.AWS_SECRET_ACCESS_KEY = 'test';
    ready(work, s3);
  });
  afterAll(async () => {
    await s3?.stop();
    rmSync(work, { recursive: true, force: true });
    process.env.AWS_ACCESS_KEY_ID = saved.id;
    process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  });
}
