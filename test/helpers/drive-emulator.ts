// A Google Drive v3 server for tests, on 127.0.0.1 (no Drive server runs offline and
// no usable emulator exists on npm: FIELD-NOTES "Cloud"). It behaves like Drive
// where Hearth depends on it, and the real `googleapis` client talks to it:
// - OAuth: a consent endpoint (/o/oauth2/v2/auth) that checks the loopback redirect,
//   the drive.file scope and PKCE S256 and redirects with code and state; a token
//   endpoint (/token) for the code (code_verifier checked) and refresh grants,
//   `invalid_grant` once a refresh token has expired (clock) or been revoked.
// - files: multipart and resumable uploads (chunks in multiples of 256 KiB,
//   `Content-Range: bytes */N` status queries answered 308 with `Range`, 404 once a
//   session expired), files.list with q/fields/pageSize/pageToken, files.get with
//   alt=media and Range, delete, md5Checksum/sha256Checksum; drive.file visibility
//   (a file created under another OAuth client id answers 404 and is never listed).
// - about.get storageQuota, with usage by other Google services (Gmail) settable.
// - Injected failures per operation (403 with a reason, 429, 5xx), a request
//   ledger (operation, bytes received) and a clock tests advance.
// `guardLoopback()` fails a test that lets any connection leave the loopback.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DRIVE_FILE_SCOPE = 'https://www.googleapis.com/auth/drive.file';
const FOLDER = 'application/vnd.google-apps.folder';
const CHUNK_UNIT = 256 * 1024;

export interface DriveFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  data: Buffer;
  clientId: string;
  createdTime: string;
}

export interface DriveLedgerEntry {
  op: string;
  method: string;
  status: number;
  /** Request body bytes received, counted even when the request was cut off. */
  bytes: number;
}

export interface Injection {
  status: number;
  /** The error reason Drive puts in error.errors[0].reason (403 answers). */
  reason?: string;
  times: number;
}

interface Session {
  clientId: string;
  metadata: { name: string; parents: string[]; mimeType?: string };
  total: number;
  received: Buffer[];
  offset: number;
  fields?: string;
  expired: boolean;
  done?: DriveFile;
}

export interface DriveEmulator {
  /** The root URL to give googleapis (`rootUrl`), ending in "/". */
  url: string;
  authUrl: string;
  tokenUrl: string;
  ledger: DriveLedgerEntry[];
  count(op: string): number;
  /** Bytes received by requests of one kind (uploads: chunks and multipart bodies). */
  bytes(op: string): number;
  addClient(id: string, secret: string): void;
  /** A signed-in client without the consent dance (tests that are not about sign-in). */
  issueTokens(clientId: string): { refresh_token: string; access_token: string; expiry_date: number };
  /** How the consent screen answers: the user approves, or declines. */
  consent: 'approve' | 'deny';
  /** Refresh tokens live this long (apps left in Testing: 7 days). */
  refreshTokenTtlMs: number;
  revokeRefreshTokens(): void;
  clock: { now(): number; advance(ms: number): void };
  expireUploadSessions(): void;
  inject(op: string, injection: Injection): void;
  setQuota(q: { limit?: number; otherUsage?: number }): void;
  /** Requests of `op` after the first `after` hang until release() and are then dropped unanswered: a kill lands mid-upload. */
  hold(op: string, after: number): void;
  release(): void;
  files(): DriveFile[];
  /** Change a stored file's bytes behind the client's back (damage). */
  corrupt(id: string): void;
  /** The next `n` uploads are stored with their first byte flipped: Drive holds other bytes than were sent. */
  damageUploads(n: number): void;
  /** The checksum fields files carry; both by default (Drive leaves sha256Checksum out of some files). */
  checksums: { md5: boolean; sha256: boolean };
  /** Delete a file behind the client's back (the user, in Drive's web page). */
  remove(id: string): void;
  stop(): Promise<void>;
}

function driveError(res: ServerResponse, status: number, message: string, reason?: string): void {
  const body = JSON.stringify({ error: { code: status, message, errors: [{ domain: reason === 'storageQuotaExceeded' ? 'global' : 'usageLimits', reason: reason ?? 'error', message }] } });
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(body);
}

/** Drive's `fields` syntax: `a,b(c,d),e/f` (the slash form is not needed here). */
function parseFields(spec: string): Map<string, Map<string, unknown> | null> {
  const out = new Map<string, Map<string, unknown> | null>();
  let i = 0;
  const parseList = (into: Map<string, unknown>): void => {
    while (i < spec.length && spec[i] !== ')') {
      let name = '';
      while (i < spec.length && !',()'.includes(spec[i]!)) name += spec[i++];
      name = name.trim();
      if (spec[i] === '(') {
        i++;
        const sub = new Map<string, unknown>();
        parseList(sub);
        i++;
        into.set(name, sub);
      } else into.set(name, null);
      if (spec[i] === ',') i++;
    }
  };
  parseList(out as Map<string, unknown>);
  return out;
}

function project(value: Record<string, unknown>, fields: Map<string, unknown> | null): Record<string, unknown> {
  if (!fields || fields.has('*')) return value;
  const out: Record<string, unknown> = {};
  for (const [k, sub] of fields) {
    if (!(k in value)) continue;
    const v = value[k];
    if (Array.isArray(v) && sub) out[k] = v.map((x) => project(x as Record<string, unknown>, sub as Map<string, unknown>));
    else out[k] = v;
  }
  return out;
}

function resource(f: DriveFile, checksums: { md5: boolean; sha256: boolean }): Record<string, unknown> {
  const base: Record<string, unknown> = { kind: 'drive#file', id: f.id, name: f.name, mimeType: f.mimeType, parents: f.parents, createdTime: f.createdTime, trashed: false };
  if (f.mimeType !== FOLDER) {
    base.size = String(f.data.length);
    if (checksums.md5) base.md5Checksum = createHash('md5').update(f.data).digest('hex');
    if (checksums.sha256) base.sha256Checksum = createHash('sha256').update(f.data).digest('hex');
  }
  return base;
}

const DEFAULT_FILE_FIELDS = parseFields('kind,id,name,mimeType');

/** The q terms Hearth uses: name =, mimeType = / !=, 'ID' in parents, trashed =, joined by and. */
function parseQuery(q: string): ((f: DriveFile) => boolean) | undefined {
  const terms: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < q.length; i++) {
    const c = q[i]!;
    if (c === '\\' && quoted) {
      cur += c + q[++i];
      continue;
    }
    if (c === "'") quoted = !quoted;
    if (!quoted && q.startsWith(' and ', i)) {
      terms.push(cur.trim());
      cur = '';
      i += 4;
      continue;
    }
    cur += c;
  }
  terms.push(cur.trim());
  const unquote = (s: string): string => s.slice(1, -1).replace(/\\(.)/g, '$1');
  const tests: Array<(f: DriveFile) => boolean> = [];
  for (const t of terms) {
    let m: RegExpExecArray | null;
    if ((m = /^name\s*=\s*('(?:[^'\\]|\\.)*')$/.exec(t))) {
      const v = unquote(m[1]!);
      tests.push((f) => f.name === v);
    } else if ((m = /^mimeType\s*(!?=)\s*('(?:[^'\\]|\\.)*')$/.exec(t))) {
      const v = unquote(m[2]!);
      const eq = m[1] === '=';
      tests.push((f) => (f.mimeType === v) === eq);
    } else if ((m = /^('(?:[^'\\]|\\.)*')\s+in\s+parents$/.exec(t))) {
      const v = unquote(m[1]!);
      tests.push((f) => f.parents.includes(v));
    } else if ((m = /^trashed\s*=\s*(true|false)$/.exec(t))) {
      const v = m[1] === 'true';
      tests.push(() => v === false);
    } else return undefined;
  }
  return (f) => tests.every((test) => test(f));
}

async function readBody(req: IncomingMessage, count: (n: number) => void): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of req) {
      chunks.push(c as Buffer);
      count((c as Buffer).length);
    }
  } catch {
    return undefined;
  }
  return req.complete ? Buffer.concat(chunks) : undefined;
}

/** multipart/related: the first part is the JSON metadata, the second the media. */
function parseMultipart(body: Buffer, contentType: string): { metadata: Record<string, unknown>; media: Buffer } | undefined {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Buffer[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const next = body.indexOf(delimiter, at + delimiter.length);
    if (next < 0) break;
    parts.push(body.subarray(at + delimiter.length, next));
    at = next;
  }
  const contentOf = (part: Buffer): Buffer => {
    const headerEnd = part.indexOf('\r\n\r\n');
    let content = part.subarray(headerEnd + 4);
    if (content.subarray(-2).toString() === '\r\n') content = content.subarray(0, -2);
    return content;
  };
  if (parts.length < 2) return undefined;
  return { metadata: JSON.parse(contentOf(parts[0]!).toString('utf8')) as Record<string, unknown>, media: contentOf(parts[1]!) };
}

export async function startDriveEmulator(): Promise<DriveEmulator> {
  let clockOffset = 0;
  const now = (): number => Date.now() + clockOffset;
  const clients = new Map<string, string>();
  const codes = new Map<string, { clientId: string; redirectUri: string; challenge: string }>();
  const refreshTokens = new Map<string, { clientId: string; expiresAt: number; revoked: boolean }>();
  const accessTokens = new Map<string, { clientId: string; expiresAt: number }>();
  const files = new Map<string, DriveFile>();
  const sessions = new Map<string, Session>();
  const injections = new Map<string, Injection[]>();
  const ledger: DriveLedgerEntry[] = [];
  let quota = { limit: 15 * 1024 ** 3, otherUsage: 0 };
  let held: { op: string; after: number; seen: number } | undefined;
  let damaged = 0;
  let releaseHeld: () => void = () => {};
  let heldUntil = new Promise<void>((resolve) => (releaseHeld = resolve));

  const newId = (): string => randomBytes(16).toString('base64url').replace(/[-_]/g, 'x');
  const issue = (clientId: string) => {
    const access_token = `ya29.${newId()}`;
    const expiry_date = now() + 3600_000;
    accessTokens.set(access_token, { clientId, expiresAt: expiry_date });
    return { access_token, expiry_date };
  };
  const usage = (): number => quota.otherUsage + [...files.values()].reduce((n, f) => n + f.data.length, 0);

  const emulator: DriveEmulator = {
    url: '',
    authUrl: '',
    tokenUrl: '',
    ledger,
    count: (op) => ledger.filter((e) => e.op === op).length,
    bytes: (op) => ledger.filter((e) => e.op === op).reduce((n, e) => n + e.bytes, 0),
    addClient: (id, secret) => void clients.set(id, secret),
    issueTokens(clientId) {
      const refresh_token = `1//${newId()}`;
      refreshTokens.set(refresh_token, { clientId, expiresAt: now() + emulator.refreshTokenTtlMs, revoked: false });
      return { refresh_token, ...issue(clientId) };
    },
    consent: 'approve',
    refreshTokenTtlMs: 7 * 24 * 3600_000,
    revokeRefreshTokens: () => {
      for (const t of refreshTokens.values()) t.revoked = true;
      accessTokens.clear();
    },
    clock: { now, advance: (ms) => void (clockOffset += ms) },
    expireUploadSessions: () => {
      for (const s of sessions.values()) s.expired = true;
    },
    inject: (op, injection) => void (injections.get(op) ?? injections.set(op, []).get(op)!).push({ ...injection }),
    setQuota: (q) => void (quota = { limit: q.limit ?? quota.limit, otherUsage: q.otherUsage ?? quota.otherUsage }),
    files: () => [...files.values()],
    remove: (id) => void files.delete(id),
    corrupt(id) {
      const f = files.get(id)!;
      f.data = Buffer.from(f.data);
      f.data[0] = f.data[0]! ^ 0xff;
    },
    damageUploads: (n) => void (damaged = n),
    checksums: { md5: true, sha256: true },
    hold: (op, after) => void (held = { op, after, seen: 0 }),
    release: () => {
      held = undefined;
      releaseHeld();
      heldUntil = new Promise<void>((resolve) => (releaseHeld = resolve));
    },
    stop: () => {
      emulator.release();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };

  const injected = (op: string, res: ServerResponse): boolean => {
    const list = injections.get(op);
    const next = list?.[0];
    if (!next) return false;
    if (--next.times <= 0) list.shift();
    const message = next.reason === 'storageQuotaExceeded' ? 'The user\'s Drive storage quota has been exceeded.' : next.reason ? `Injected ${next.reason}` : 'Injected failure';
    driveError(res, next.status, message, next.reason);
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, entry: DriveLedgerEntry): Promise<void> => {
    const url = new URL(req.url ?? '/', emulator.url);
    const q = url.searchParams;
    const path = url.pathname;

    if (path === '/o/oauth2/v2/auth' && req.method === 'GET') {
      entry.op = 'consent';
      const clientId = q.get('client_id') ?? '';
      const redirect = q.get('redirect_uri') ?? '';
      let redirectUrl: URL | undefined;
      try {
        redirectUrl = new URL(redirect);
      } catch {}
      const problem = !clients.has(clientId)
        ? 'invalid_client'
        : !redirectUrl || redirectUrl.protocol !== 'http:' || (redirectUrl.hostname !== '127.0.0.1' && redirectUrl.hostname !== '[::1]')
          ? 'redirect_uri_mismatch'
          : q.get('scope') !== DRIVE_FILE_SCOPE
            ? 'invalid_scope'
            : q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')
              ? 'invalid_request'
              : undefined;
      if (problem) {
        res.writeHead(400, { 'content-type': 'text/html' }).end(`<h1>Error 400: ${problem}</h1>`);
        return;
      }
      const back = new URL(redirect);
      if (emulator.consent === 'deny') back.searchParams.set('error', 'access_denied');
      else {
        const code = `4/${newId()}`;
        codes.set(code, { clientId, redirectUri: redirect, challenge: q.get('code_challenge')! });
        back.searchParams.set('code', code);
        back.searchParams.set('scope', DRIVE_FILE_SCOPE);
      }
      if (q.has('state')) back.searchParams.set('state', q.get('state')!);
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }

    if (path === '/token' && req.method === 'POST') {
      entry.op = 'token';
      const body = await readBody(req, (n) => (entry.bytes += n));
      if (!body) return;
      if (injected('token', res)) return;
      const form = new URLSearchParams(body.toString('utf8'));
      const fail = (status: number, error: string, description: string): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error, error_description: description }));
      const clientId = form.get('client_id') ?? '';
      if (clients.get(clientId) !== form.get('client_secret')) return fail(401, 'invalid_client', 'The OAuth client was not found.');
      if (form.get('grant_type') === 'authorization_code') {
        const code = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        const verifier = form.get('code_verifier') ?? '';
        if (!code || code.clientId !== clientId || code.redirectUri !== form.get('redirect_uri')) return fail(400, 'invalid_grant', 'Bad Request');
        if (createHash('sha256').update(verifier).digest('base64url') !== code.challenge) return fail(400, 'invalid_grant', 'Invalid code verifier.');
        const tokens = emulator.issueTokens(clientId);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: tokens.access_token, refresh_token: tokens.refresh_token, expires_in: 3599, scope: DRIVE_FILE_SCOPE, token_type: 'Bearer' }));
        return;
      }
      if (form.get('grant_type') === 'refresh_token') {
        const t = refreshTokens.get(form.get('refresh_token') ?? '');
        if (!t || t.clientId !== clientId || t.revoked || now() >= t.expiresAt) return fail(400, 'invalid_grant', 'Token has been expired or revoked.');
        const { access_token } = issue(clientId);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token, expires_in: 3599, scope: DRIVE_FILE_SCOPE, token_type: 'Bearer' }));
        return;
      }
      return fail(400, 'unsupported_grant_type', 'Invalid grant_type.');
    }

    const isUpload = path.startsWith('/upload/drive/v3/files');
    const fileMatch = /^\/drive\/v3\/files\/([^/]+)$/.exec(path);
    entry.op = isUpload
      ? req.method === 'PUT' ? 'upload-chunk' : q.get('uploadType') === 'resumable' ? 'upload-start' : 'upload-multipart'
      : path === '/drive/v3/about' ? 'about'
      : path === '/drive/v3/files' ? (req.method === 'POST' ? 'create' : 'list')
      : fileMatch ? (req.method === 'DELETE' ? 'delete' : q.get('alt') === 'media' ? 'media' : 'get')
      : 'unknown';

    if (held && held.op === entry.op && ++held.seen > held.after) {
      // A held request never reaches Drive's storage: released, its connection is dropped.
      await heldUntil;
      req.destroy();
      return;
    }
    // A resumable session's URI is its own credential: Drive does not ask for a token on chunk PUTs.
    const session = entry.op === 'upload-chunk' ? sessions.get(q.get('upload_id') ?? '') : undefined;
    let clientId = session?.clientId;
    if (!session) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const t = token ? accessTokens.get(token) : undefined;
      if (!t || now() >= t.expiresAt) {
        req.resume();
        return driveError(res, 401, 'Request had invalid authentication credentials. Expected OAuth 2 access token.', 'authError');
      }
      clientId = t.clientId;
    }
    const body = await readBody(req, (n) => (entry.bytes += n));
    if (!body) return;
    if (injected(entry.op, res)) return;
    const visible = (id: string): DriveFile | undefined => {
      const f = files.get(id);
      return f && f.clientId === clientId ? f : undefined;
    };
    const fieldsOf = (def: Map<string, unknown>): Map<string, unknown> => (q.get('fields') ? (parseFields(q.get('fields')!) as Map<string, unknown>) : def);
    const create = (metadata: { name?: string; parents?: string[]; mimeType?: string }, data: Buffer): DriveFile | undefined => {
      if (usage() + data.length > quota.limit) {
        driveError(res, 403, "The user's Drive storage quota has been exceeded.", 'storageQuotaExceeded');
        return undefined;
      }
      for (const p of metadata.parents ?? []) {
        if (p !== 'root' && !visible(p)) {
          driveError(res, 404, `File not found: ${p}.`, 'notFound');
          return undefined;
        }
      }
      const f: DriveFile = { id: newId(), name: metadata.name ?? 'Untitled', mimeType: metadata.mimeType ?? 'application/octet-stream', parents: metadata.parents ?? ['root'], data, clientId: clientId!, createdTime: new Date(now()).toISOString() };
      files.set(f.id, f);
      if (data.length > 0 && damaged > 0 && damaged--) emulator.corrupt(f.id);
      return f;
    };
    const sendFile = (f: DriveFile, status = 200, fields?: string | null): void =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(project(resource(f, emulator.checksums), fields ? (parseFields(fields) as Map<string, unknown>) : DEFAULT_FILE_FIELDS)));

    switch (entry.op) {
      case 'about': {
        const u = usage();
        const all = { kind: 'drive#about', storageQuota: { limit: String(quota.limit), usage: String(u), usageInDrive: String(u - quota.otherUsage), usageInDriveTrash: '0' } };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(project(all, fieldsOf(parseFields('kind')))));
        return;
      }
      case 'create': {
        const f = create(body.length ? (JSON.parse(body.toString('utf8')) as Record<string, never>) : {}, Buffer.alloc(0));
        if (f) sendFile(f, 200, q.get('fields'));
        return;
      }
      case 'upload-multipart': {
        const parsed = parseMultipart(body, req.headers['content-type'] ?? '');
        if (!parsed) return driveError(res, 400, 'Malformed multipart body.', 'badContent');
        const f = create(parsed.metadata, parsed.media);
        if (f) sendFile(f, 200, q.get('fields'));
        return;
      }
      case 'upload-start': {
        const metadata = (body.length ? JSON.parse(body.toString('utf8')) : {}) as Session['metadata'];
        const total = Number(req.headers['x-upload-content-length'] ?? NaN);
        if (Number.isFinite(total) && usage() + total > quota.limit) return driveError(res, 403, "The user's Drive storage quota has been exceeded.", 'storageQuotaExceeded');
        const id = newId();
        sessions.set(id, { clientId: clientId!, metadata: { ...metadata, parents: metadata.parents ?? ['root'] }, total: Number.isFinite(total) ? total : -1, received: [], offset: 0, fields: q.get('fields') ?? undefined, expired: false });
        res.writeHead(200, { location: `${emulator.url}upload/drive/v3/files?uploadType=resumable&upload_id=${id}` }).end();
        return;
      }
      case 'upload-chunk': {
        if (!session || session.expired) return driveError(res, 404, 'Upload session not found or expired.', 'notFound');
        const range = req.headers['content-range'] ?? '';
        const committed = (): void => {
          if (session.done) return sendFile(session.done, 200, session.fields);
          const headers: Record<string, string> = session.offset > 0 ? { range: `bytes=0-${session.offset - 1}` } : {};
          res.writeHead(308, headers).end();
        };
        const status = /^bytes \*\/(\d+|\*)$/.exec(range);
        if (status) return committed();
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(range);
        if (!m) return driveError(res, 400, `Invalid Content-Range: ${range}`, 'badRequest');
        const start = Number(m[1]);
        const end = Number(m[2]);
        const total = m[3] === '*' ? -1 : Number(m[3]);
        if (session.done) return committed();
        if (start !== session.offset || end - start + 1 !== body.length) return driveError(res, 400, `Content-Range ${range} does not continue the upload at ${session.offset} with ${body.length} bytes.`, 'badRequest');
        const final = total >= 0 && end + 1 === total;
        if (!final && body.length % CHUNK_UNIT !== 0) return driveError(res, 400, 'Invalid request. The chunk size must be a multiple of 256 KiB (262144 bytes) except for the last chunk.', 'badRequest');
        if (usage() + session.offset + body.length > quota.limit) return driveError(res, 403, "The user's Drive storage quota has been exceeded.", 'storageQuotaExceeded');
        session.received.push(body);
        session.offset += body.length;
        if (!final) return committed();
        const f = create(session.metadata, Buffer.concat(session.received));
        if (!f) return;
        session.received = [];
        session.done = f;
        sendFile(f, 200, session.fields);
        return;
      }
      case 'list': {
        const test = parseQuery(q.get('q') ?? "trashed = false");
        if (!test) return driveError(res, 400, `Invalid Value: q=${q.get('q')}`, 'invalid');
        const pageSize = Math.min(1000, Number(q.get('pageSize') ?? 100));
        const start = q.get('pageToken') ? Number(Buffer.from(q.get('pageToken')!, 'base64url').toString()) : 0;
        const matched = [...files.values()].filter((f) => f.clientId === clientId && test(f)).sort((a, b) => a.createdTime.localeCompare(b.createdTime) || a.id.localeCompare(b.id));
        const page = matched.slice(start, start + pageSize);
        const all: Record<string, unknown> = { kind: 'drive#fileList', incompleteSearch: false, files: page.map((f) => resource(f, emulator.checksums)) };
        if (start + pageSize < matched.length) all.nextPageToken = Buffer.from(String(start + pageSize)).toString('base64url');
        const fields = q.get('fields') ? (parseFields(q.get('fields')!) as Map<string, unknown>) : (new Map([['kind', null], ['incompleteSearch', null], ['nextPageToken', null], ['files', DEFAULT_FILE_FIELDS]]) as Map<string, unknown>);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(project(all, fields)));
        return;
      }
      case 'get':
      case 'media':
      case 'delete': {
        const f = visible(decodeURIComponent(fileMatch![1]!));
        if (!f) return driveError(res, 404, `File not found: ${fileMatch![1]}.`, 'notFound');
        if (entry.op === 'delete') {
          files.delete(f.id);
          for (const c of files.values()) if (c.parents.includes(f.id)) files.delete(c.id);
          res.writeHead(204).end();
          return;
        }
        if (entry.op === 'get') return sendFile(f, 200, q.get('fields'));
        const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        if (!r) return void res.writeHead(200, { 'content-type': f.mimeType, 'content-length': f.data.length }).end(f.data);
        const from = Number(r[1]);
        const to = Math.min(r[2] ? Number(r[2]) : f.data.length - 1, f.data.length - 1);
        if (from >= f.data.length) return void res.writeHead(416, { 'content-range': `bytes */${f.data.length}` }).end();
        res.writeHead(206, { 'content-type': f.mimeType, 'content-range': `bytes ${from}-${to}/${f.data.length}`, 'content-length': to - from + 1 }).end(f.data.subarray(from, to + 1));
        return;
      }
      default:
        return driveError(res, 404, `Not Found: ${req.method} ${path}`, 'notFound');
    }
  };

  const server = createServer((req, res) => {
    const entry: DriveLedgerEntry = { op: 'unknown', method: req.method ?? '', status: 0, bytes: 0 };
    ledger.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    handle(req, res, entry).catch((err: unknown) => {
      if (!res.headersSent) driveError(res, 500, `emulator: ${(err as Error).message}`, 'backendError');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  emulator.url = `http://127.0.0.1:${port}/`;
  emulator.authUrl = `${emulator.url}o/oauth2/v2/auth`;
  emulator.tokenUrl = `${emulator.url}token`;
  return emulator;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '']);

/**
 * Makes every outgoing TCP connection to a host other than the loopback fail at
 * once and be recorded: the test asserts `violations` is empty, so code that would
 * reach Google (a forgotten rootUrl) fails the test instead of the network.
 */
export function guardLoopback(onViolation?: (host: string) => void): { violations: string[]; restore(): void } {
  const violations: string[] = [];
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const first = args[0] as { host?: string; path?: string } | number | string;
    const host = typeof first === 'object' && first !== null ? (Array.isArray(first) ? (first[0] as { host?: string }).host : first.path ? '' : first.host) : typeof first === 'number' ? (args[1] as string | undefined) : '';
    if (host !== undefined && !LOOPBACK.has(host.replace(/^\[|\]$/g, ''))) {
      violations.push(host);
      onViolation?.(host);
      process.nextTick(() => this.destroy(new Error(`test guard: connection to ${host} refused (tests talk only to 127.0.0.1)`)));
      return this;
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof original;
  return { violations, restore: () => void (net.Socket.prototype.connect = original) };
}

/**
 * The guard for the hearth processes a test starts: children inherit NODE_OPTIONS,
 * which preloads it; `violations()` reads what they refused.
 */
export function guardChildren(dir: string): { violations(): string[]; restore(): void } {
  const log = join(dir, 'loopback-guard.log');
  const saved = { options: process.env.NODE_OPTIONS, log: process.env.HEARTH_TEST_GUARD_LOG };
  const preload = fileURLToPath(new URL('./loopback-guard-preload.ts', import.meta.url));
  process.env.NODE_OPTIONS = `${saved.options ?? ''} --import ${preload}`.trim();
  process.env.HEARTH_TEST_GUARD_LOG = log;
  return {
    violations: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
    restore: () => {
      if (saved.options === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved.options;
      if (saved.log === undefined) delete process.env.HEARTH_TEST_GUARD_LOG;
      else process.env.HEARTH_TEST_GUARD_LOG = saved.log;
    },
  };
}
