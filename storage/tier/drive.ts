// A Google Drive folder as a Tier, through the real `googleapis` client (Drive v3).
// Format, journal and limits: docs/drive-tier.md.
//
// One folder per home; files are named by object id only, so Drive shows nothing
// readable. With the drive.file scope Hearth sees only files its own OAuth client
// created, so file ids are looked up by name inside the folder and kept for the
// tier's life. Small objects go up in one multipart request; larger ones as a
// resumable upload in chunks of a multiple of 256 KiB, whose session URI is
// journalled in the home before the first byte is sent, so a killed upload asks the
// server how far it got (308 + Range) and continues there; a session Drive no longer
// knows (404/410) starts over. Drive's sha256Checksum (md5Checksum when it gives
// only that) is compared with what was sent. Rate limits are plain errors
// (RetryTier backs off); a full Drive, the daily upload limit and a lapsed sign-in
// are permanent.
import { createHash, type Hash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { drive_v3 } from 'googleapis/build/src/apis/drive/index.js';
import { ObjectNotFoundError, PermanentTierError } from './tier.ts';
import type { ByteRange, ObjectInfo, ObjectSource, PutReceipt, Tier } from './tier.ts';
import { hexMd5Checksum, hexSha256Checksum } from './checksum.ts';

export const CHUNK_UNIT = 256 * 1024;
/**
 * 32 MiB chunks: 32 requests per GiB, and a 30 MB video in one; a kill costs at most
 * one chunk re-sent. Chunks are streamed, so their size costs no memory (Google's
 * Python client sends 100 MiB).
 */
export const DEFAULT_CHUNK_SIZE = 128 * CHUNK_UNIT;
/** Google's advice: multipart for up to 5 MB, resumable above. */
export const DEFAULT_MULTIPART_LIMIT = 5 * 1024 * 1024;
export const FOLDER_MIME = 'application/vnd.google-apps.folder';
const OBJECT_MIME = 'application/octet-stream';
const FILE_FIELDS = 'id,name,size,md5Checksum,sha256Checksum';
/** How many leading bytes tie a journalled session to one encryption (see DriveUploadEntry). */
const HEAD_BYTES = 1024 * 1024;
/** How long one about.get answers for: others' use of the account (Gmail) grows slowly. */
const QUOTA_REUSE_MS = 60_000;

export interface DriveUploadEntry {
  version: 1;
  sessionUri: string;
  size: number;
  /**
   * SHA-256 of the first MiB: an object encrypted again under the same id has a new
   * age header (fresh ephemeral key), so this tells a session of other bytes from
   * ours without hashing the whole object before each resume.
   */
  headSha256: string;
  startedAt: string;
}

/** Where resumable sessions are kept between runs (node/ keeps them in the home, mode 0600). */
export interface DriveUploadJournal {
  read(name: string): DriveUploadEntry | undefined;
  write(name: string, entry: DriveUploadEntry): void;
  remove(name: string): void;
}

/** What the tier needs of the OAuth client: a fresh access token (refreshed as needed). */
export interface DriveAuth {
  getAccessToken(): Promise<{ token?: string | null }>;
  /** A new access token even though the current one looks fresh (after a 401). */
  refreshAccessToken(): Promise<unknown>;
}

export interface DriveTierOptions {
  name: string;
  drive: drive_v3.Drive;
  auth: DriveAuth;
  /** https://www.googleapis.com/ in use; given on every call (uploads ignore the client's). */
  rootUrl: string;
  folderId: string;
  journal: DriveUploadJournal;
  /** Hearth keeps at most this many bytes in the folder (drive.maxUse). */
  maxUse?: number;
  chunkSize?: number;
  multipartLimit?: number;
  /** Human form for messages, e.g. `drive target family (folder Hearth 1a2b)`. */
  label?: string;
  /** What to tell the user when the sign-in has lapsed. */
  signInHint?: string;
}

interface DriveFault {
  status?: number;
  reason?: string;
  message: string;
  /** The OAuth token endpoint's own error (invalid_grant). */
  oauth?: string;
  network?: string;
}

export class DriveTier implements Tier {
  readonly kind = 'drive' as const;
  readonly name: string;
  readonly folderId: string;
  readonly chunkSize: number;
  private readonly drive: drive_v3.Drive;
  private readonly auth: DriveAuth;
  private readonly rootUrl: string;
  private readonly journal: DriveUploadJournal;
  private readonly maxUse: number;
  private readonly multipartLimit: number;
  private readonly label: string;
  private readonly signInHint: string;
  private readonly ids = new Map<string, { id: string; size: number }>();
  /** The whole folder has been listed: `ids` knows every file a put could replace (one process owns a home). */
  private listed = false;
  private used: number | undefined;
  /** The account's last about.get, with what this tier added since (see checkSpace). */
  private seenQuota: { limit: number; usage: number; at: number } | undefined;

  constructor(o: DriveTierOptions) {
    this.name = o.name;
    this.drive = o.drive;
    this.auth = o.auth;
    this.rootUrl = o.rootUrl.endsWith('/') ? o.rootUrl : `${o.rootUrl}/`;
    this.folderId = o.folderId;
    this.journal = o.journal;
    this.maxUse = o.maxUse ?? Infinity;
    this.chunkSize = o.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize <= 0 || this.chunkSize % CHUNK_UNIT !== 0) throw new Error(`drive chunk size must be a multiple of 256 KiB, got ${this.chunkSize} bytes`);
    this.multipartLimit = Math.min(o.multipartLimit ?? DEFAULT_MULTIPART_LIMIT, this.chunkSize);
    this.label = o.label ?? `drive target ${o.name}`;
    this.signInHint = o.signInHint ?? 'run "hearth auth google --client FILE" again';
  }

  private checkName(name: string): void {
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) throw new PermanentTierError(`object name ${JSON.stringify(name)} is not valid for a Drive file`);
  }

  /** The file id is the one a reader needs; it is only known once the object is there. */
  location(name: string): string {
    const known = this.ids.get(name);
    return `drive://${this.folderId}/${known ? known.id : name}`;
  }

  /** The receipt's checksum is Drive's sha256Checksum of the new file (its md5Checksum if it gave none), already compared with what was sent. */
  async put(name: string, source: ObjectSource, signal?: AbortSignal): Promise<PutReceipt> {
    this.checkName(name);
    // With drive.maxUse the folder is listed once for its size; that listing then
    // answers whether a put replaces a file, so a staged blob costs one request.
    if (this.maxUse !== Infinity) await this.usage();
    const previous = this.listed ? this.ids.get(name) : await this.lookup(name).catch((err: unknown) => (err instanceof ObjectNotFoundError ? undefined : Promise.reject(err)));
    await this.checkSpace(name, source.size - (previous?.size ?? 0));
    let stored: drive_v3.Schema$File;
    try {
      stored = source.size <= this.multipartLimit ? await this.putMultipart(name, source, signal) : await this.putResumable(name, source, signal, true);
    } catch (err) {
      // Drive may have refused for space: the next put reads the quota again.
      this.seenQuota = undefined;
      throw err;
    }
    this.ids.set(name, { id: stored.id!, size: source.size });
    if (this.used !== undefined) this.used += source.size;
    if (this.seenQuota) this.seenQuota.usage += source.size;
    // A name holds one file: an older copy (stored again, or left by a killed run) goes.
    if (previous && previous.id !== stored.id) await this.deleteId(previous.id, name, previous.size).catch(() => {});
    return { checksum: hexSha256Checksum(stored.sha256Checksum) ?? hexMd5Checksum(stored.md5Checksum) };
  }

  /**
   * Drive's free space is shared with Gmail and Photos: a full Drive stops the
   * user's mail, so Hearth refuses before Google does, and keeps below drive.maxUse.
   */
  private async checkSpace(name: string, adding: number): Promise<void> {
    if (adding <= 0) return;
    if (this.maxUse !== Infinity) {
      const used = await this.usage();
      if (used + adding > this.maxUse) {
        throw new PermanentTierError(`${this.label}: storing ${name} would take Hearth's use of Google Drive to ${gb(used + adding)}, over drive.maxUse (${gb(this.maxUse)}); raise it with "hearth config set drive.maxUse SIZE" or let volumes retire staged copies`);
      }
    }
    // A reading less than a minute old that leaves room is trusted; a refusal is
    // always made on a fresh one.
    const fits = (q: { limit: number; usage: number }) => !Number.isFinite(q.limit) || q.usage + adding <= q.limit;
    if (this.seenQuota && Date.now() - this.seenQuota.at < QUOTA_REUSE_MS && fits(this.seenQuota)) return;
    const { limit, usage } = await this.quota();
    this.seenQuota = { limit, usage, at: Date.now() };
    if (!fits({ limit, usage })) {
      throw new PermanentTierError(`${this.label}: Google Drive is full (${gb(usage)} of ${gb(limit)} used, shared with Gmail and Photos): nothing more can be stored; free space in Drive or buy more storage`);
    }
  }

  /** The account's storage: `limit` is NaN for an account without one (Workspace pooled storage). */
  async quota(): Promise<{ limit: number; usage: number }> {
    const about = await this.guard('check the free space', () => this.drive.about.get({ fields: 'storageQuota(limit,usage)' }, { rootUrl: this.rootUrl }));
    return { limit: Number(about.data.storageQuota?.limit ?? NaN), usage: Number(about.data.storageQuota?.usage ?? 0) };
  }

  /** Bytes Hearth keeps in the folder: listed once, then counted as objects come and go. */
  async usage(): Promise<number> {
    if (this.used === undefined) {
      let total = 0;
      for await (const o of this.list()) total += o.size;
      this.used = total;
    }
    return this.used;
  }

  private async putMultipart(name: string, source: ObjectSource, signal: AbortSignal | undefined): Promise<drive_v3.Schema$File> {
    const sha256 = createHash('sha256');
    // googleapis pipes the body, and a pipe does not pass a failing source on: its
    // failure ends the request here.
    const failed = new AbortController();
    const body = Readable.from(hashedRange(source, 0, source.size, sha256, signal)).once('error', (err) => failed.abort(err));
    const answer = await this.guard(`store ${name}`, () =>
      this.drive.files.create(
        { requestBody: { name, parents: [this.folderId], mimeType: OBJECT_MIME }, media: { mimeType: OBJECT_MIME, body }, fields: FILE_FIELDS },
        { rootUrl: this.rootUrl, signal: signal ? AbortSignal.any([signal, failed.signal]) : failed.signal },
      ),
    ).catch((err: unknown) => Promise.reject(sourceFailure(failed.signal.reason) ?? err));
    return this.verify(name, answer.data, sha256, source, signal);
  }

  private async putResumable(name: string, source: ObjectSource, signal: AbortSignal | undefined, mayRestart: boolean): Promise<drive_v3.Schema$File> {
    const head = createHash('sha256').update(await readRange(source, 0, Math.min(HEAD_BYTES, source.size), signal)).digest('hex');
    let entry = this.journal.read(name);
    let offset = 0;
    if (entry && (entry.size !== source.size || entry.headSha256 !== head)) {
      await this.cancelSession(entry.sessionUri);
      this.journal.remove(name);
      entry = undefined;
    }
    if (entry) {
      const status = await this.chunkRequest(entry.sessionUri, `bytes */${source.size}`, undefined, signal, name);
      if (status.gone) {
        this.journal.remove(name);
        entry = undefined;
      } else if (status.file) {
        this.journal.remove(name);
        return this.verify(name, status.file, await hashRange(source, 0, source.size, 'sha256', signal), source, signal);
      } else offset = status.offset!;
    }
    if (!entry) {
      entry = { version: 1, sessionUri: await this.startSession(name, source.size, signal), size: source.size, headSha256: head, startedAt: new Date().toISOString() };
      this.journal.write(name, entry);
    }
    let sha256 = await hashRange(source, 0, offset, 'sha256', signal);
    while (offset < source.size) {
      signal?.throwIfAborted();
      const length = Math.min(this.chunkSize, source.size - offset);
      // Streamed from the source and hashed as it goes, so hashing overlaps sending
      // and no chunk is held in memory.
      const chunk = hashedRange(source, offset, length, sha256, signal);
      const answer = await this.chunkRequest(entry.sessionUri, `bytes ${offset}-${offset + length - 1}/${source.size}`, { stream: chunk, length }, signal, name);
      if (answer.gone) {
        this.journal.remove(name);
        if (!mayRestart) throw new Error(`${this.label}: Drive forgot the upload session of ${name} twice in a row`);
        return this.putResumable(name, source, signal, false);
      }
      const committed = answer.file ? source.size : answer.offset!;
      if (committed < offset || committed > offset + length) throw new Error(`${this.label}: Drive answered the upload of ${name} with offset ${committed} after bytes ${offset}-${offset + length - 1}`);
      // Drive kept less than was sent (rare): the hashes cover what it holds.
      if (committed < offset + length && !answer.file) sha256 = await hashRange(source, 0, committed, 'sha256', signal);
      offset = committed;
      if (answer.file) {
        this.journal.remove(name);
        return this.verify(name, answer.file, sha256, source, signal);
      }
    }
    // Every byte was accepted but no file came back: ask once more.
    const last = await this.chunkRequest(entry.sessionUri, `bytes */${source.size}`, undefined, signal, name);
    if (!last.file) throw new Error(`${this.label}: Drive holds all ${source.size} bytes of ${name} but did not create the file`);
    this.journal.remove(name);
    return this.verify(name, last.file, sha256, source, signal);
  }

  private async accessToken(refresh = false): Promise<string> {
    try {
      if (refresh) await this.auth.refreshAccessToken();
      const { token } = await this.auth.getAccessToken();
      if (!token) throw new Error('no access token');
      return token;
    } catch (err) {
      throw this.translate(faultOf(err), 'sign in', undefined, err);
    }
  }

  private async startSession(name: string, size: number, signal: AbortSignal | undefined, refresh = false): Promise<string> {
    const url = `${this.rootUrl}upload/drive/v3/files?uploadType=resumable&fields=${encodeURIComponent(FILE_FIELDS)}`;
    const res = await this.fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.accessToken(refresh)}`, 'content-type': 'application/json; charset=UTF-8', 'x-upload-content-type': OBJECT_MIME, 'x-upload-content-length': String(size) },
      body: JSON.stringify({ name, parents: [this.folderId], mimeType: OBJECT_MIME }),
      signal,
    }, `start the upload of ${name}`);
    if (res.status === 401 && !refresh) {
      await res.body?.cancel();
      return this.startSession(name, size, signal, true);
    }
    if (!res.ok) throw this.translate(responseFault(res.status, await res.text().catch(() => '')), `start the upload of ${name}`);
    const location = res.headers.get('location');
    await res.body?.cancel();
    if (!location) throw new Error(`${this.label}: Drive started an upload of ${name} without a session URI`);
    return location;
  }

  /**
   * A chunk PUT (or a status query, without body): the new offset, the file, or
   * gone. Sent with node:http(s) and the body piped from the source: fetch copies
   * each piece of a streamed body into a web stream, a fifth of the upload's CPU.
   */
  private async chunkRequest(sessionUri: string, range: string, body: { stream: AsyncIterable<Buffer>; length: number } | undefined, signal: AbortSignal | undefined, name: string): Promise<{ offset?: number; file?: drive_v3.Schema$File; gone?: true }> {
    let res: { status: number; range?: string; text: string };
    try {
      res = await putBody(sessionUri, { 'content-range': range, 'content-length': String(body?.length ?? 0) }, body?.stream, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw sourceFailure(err) ?? this.translate(faultOf(err), `upload ${name}`, undefined, err);
    }
    if (res.status === 308) {
      const r = /^bytes=0-(\d+)$/.exec(res.range ?? '');
      return { offset: r ? Number(r[1]) + 1 : 0 };
    }
    if (res.status === 200 || res.status === 201) return { file: JSON.parse(res.text) as drive_v3.Schema$File };
    if (res.status === 404 || res.status === 410) return { gone: true };
    throw this.translate(responseFault(res.status, res.text), `upload ${name}`);
  }

  private async cancelSession(sessionUri: string): Promise<void> {
    await fetch(sessionUri, { method: 'DELETE' }).then((r) => r.body?.cancel(), () => {});
  }

  private async fetch(url: string, init: RequestInit, doing: string): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (err) {
      if ((init.signal as AbortSignal | undefined)?.aborted) throw err;
      throw this.translate(faultOf(err), doing, undefined, err);
    }
  }

  /**
   * Drive's sha256Checksum against the SHA-256 of what was sent (hashed on the way
   * out). MD5 costs twice SHA-256 here, so it is computed, from the source, only
   * for an answer that carries md5Checksum alone.
   */
  private async verify(name: string, file: drive_v3.Schema$File, sha256: Hash, source: ObjectSource, signal: AbortSignal | undefined): Promise<drive_v3.Schema$File> {
    const wrong =
      Number(file.size) !== source.size ? `size ${file.size} instead of ${source.size}`
      : file.sha256Checksum ? (file.sha256Checksum !== sha256.digest('hex') ? 'another sha256Checksum' : undefined)
      : file.md5Checksum ? (file.md5Checksum !== (await hashRange(source, 0, source.size, 'md5', signal)).digest('hex') ? 'another md5Checksum' : undefined)
      : 'no checksum';
    if (wrong) {
      if (file.id) await this.deleteId(file.id, name, 0).catch(() => {});
      throw new Error(`${this.label}: Drive reports ${wrong} for ${name} than Hearth sent; the copy was deleted and will be sent again`);
    }
    return file;
  }

  /** The file holding `name`, from this tier's memory or one query in the folder. */
  private async lookup(name: string): Promise<{ id: string; size: number }> {
    const known = this.ids.get(name);
    if (known) return known;
    const q = `name = '${name}' and '${this.folderId}' in parents and trashed = false`;
    const answer = await this.guard(`look up ${name}`, () => this.drive.files.list({ q, fields: 'files(id,size)', pageSize: 10, spaces: 'drive' }, { rootUrl: this.rootUrl }));
    const files = answer.data.files ?? [];
    const f = files.at(-1);
    if (!f?.id) throw new ObjectNotFoundError(this.label, name);
    // Copies left by an earlier killed put: the last one listed is kept, the rest go.
    for (const extra of files.slice(0, -1)) if (extra.id) await this.deleteId(extra.id, name, 0).catch(() => {});
    const found = { id: f.id, size: Number(f.size ?? 0) };
    this.ids.set(name, found);
    return found;
  }

  async get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    this.checkName(name);
    if (range && range.length === 0) return Readable.from([]);
    const { id } = await this.lookup(name);
    const headers = range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : undefined;
    const answer = await this.guard(`read ${name}`, () => this.drive.files.get({ fileId: id, alt: 'media' }, { rootUrl: this.rootUrl, responseType: 'stream', headers, signal }), name);
    return answer.data as unknown as Readable;
  }

  async stat(name: string): Promise<ObjectInfo> {
    this.checkName(name);
    const { size } = await this.lookup(name);
    return { name, size };
  }

  /** One listing of the folder: names, sizes and Drive's checksums, 1,000 a page. */
  async *list(): AsyncIterable<ObjectInfo & { id: string }> {
    let pageToken: string | undefined;
    for (let page = 0; page < 100_000; page++) {
      const q = `'${this.folderId}' in parents and trashed = false and mimeType != '${FOLDER_MIME}'`;
      const answer = await this.guard('list the folder', () => this.drive.files.list({ q, fields: `nextPageToken,files(${FILE_FIELDS})`, pageSize: 1000, pageToken, spaces: 'drive' }, { rootUrl: this.rootUrl }));
      for (const f of answer.data.files ?? []) {
        if (!f.id || !f.name) continue;
        const size = Number(f.size ?? 0);
        this.ids.set(f.name, { id: f.id, size });
        const checksums = [hexSha256Checksum(f.sha256Checksum), hexMd5Checksum(f.md5Checksum)].filter((c) => c !== undefined);
        yield { name: f.name, size, id: f.id, ...(checksums.length ? { checksums } : {}) };
      }
      pageToken = answer.data.nextPageToken ?? undefined;
      if (!pageToken) {
        this.listed = true;
        return;
      }
    }
  }

  async delete(name: string): Promise<void> {
    this.checkName(name);
    this.journal.remove(name);
    let file: { id: string; size: number };
    try {
      file = await this.lookup(name);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return;
      throw err;
    }
    await this.deleteId(file.id, name, file.size);
  }

  private async deleteId(id: string, name: string, size: number): Promise<void> {
    try {
      await this.guard(`delete ${name}`, () => this.drive.files.delete({ fileId: id }, { rootUrl: this.rootUrl }), name);
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
    }
    if (this.ids.get(name)?.id === id) this.ids.delete(name);
    if (this.used !== undefined) this.used = Math.max(0, this.used - size);
  }

  async close(): Promise<void> {}

  /** Runs a Drive request, its failure turned into Hearth's one-line error. */
  async guard<T>(doing: string, request: () => Promise<T>, object?: string): Promise<T> {
    try {
      return await request();
    } catch (err) {
      throw sourceFailure(err) ?? this.translate(await gaxiosFault(err), doing, object, err);
    }
  }

  /** One line naming what is wrong and what to do; what retrying cannot fix is permanent. */
  private translate(f: DriveFault, doing: string, object?: string, cause?: unknown): Error {
    const permanent = (message: string): PermanentTierError => new PermanentTierError(`${this.label}: ${message}`, { cause });
    if (f.oauth === 'invalid_grant') return permanent(`the Google sign-in has expired or was revoked (invalid_grant): ${this.signInHint}`);
    if (f.oauth) return permanent(`Google refused the sign-in (${f.oauth}): ${this.signInHint}`);
    if (f.network) return new Error(`${this.label}: cannot reach Google Drive (${f.network}) when trying to ${doing}; check the network`, { cause });
    const reason = f.reason ?? '';
    if (f.status === 404 && object) return new ObjectNotFoundError(this.label, object);
    if (reason === 'storageQuotaExceeded') return permanent(`Google Drive is full (storageQuotaExceeded) when trying to ${doing}; free space in Drive (shared with Gmail and Photos) or buy more storage`);
    if (reason === 'dailyLimitExceeded' || reason === 'uploadLimitExceeded' || reason === 'quotaExceeded') return permanent(`Google's daily limit was reached (${reason}, about 750 GB of uploads a day) when trying to ${doing}; Hearth tries again at its next run`);
    if (f.status === 429 || f.status === undefined || f.status >= 500 || reason === 'userRateLimitExceeded' || reason === 'rateLimitExceeded') {
      return new Error(`${this.label}: Drive is busy (${f.status ?? ''} ${reason || f.message}) when trying to ${doing}; retrying`.replace(/\s+\)/, ')'), { cause });
    }
    if (f.status === 401) return permanent(`Google did not accept the sign-in (401) when trying to ${doing}: ${this.signInHint}`);
    if (f.status === 404) return permanent(`the folder is gone (404 when trying to ${doing}): it was deleted in Drive or belongs to another OAuth client; run "hearth target add drive" again`);
    return permanent(`Drive refused to ${doing} (${f.status} ${reason}: ${f.message})`);
  }
}

function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

function faultOf(err: unknown): DriveFault {
  const e = err as { message?: string; code?: string; cause?: { code?: string }; response?: { data?: { error?: unknown } } };
  const oauth = typeof e.response?.data?.error === 'string' ? (e.response.data.error as string) : e.message === 'invalid_grant' ? 'invalid_grant' : undefined;
  const network = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT'].find((c) => c === e.code || c === e.cause?.code);
  return { message: e.message ?? String(err), oauth, network };
}

/** A googleapis (gaxios) error: status and Drive's reason, reading a streamed error body. */
async function gaxiosFault(err: unknown): Promise<DriveFault> {
  const base = faultOf(err);
  const response = (err as { response?: { status?: number; data?: unknown } }).response;
  if (!response || base.oauth || base.network) return base;
  let data = response.data;
  if (data instanceof Readable || (data && typeof (data as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function')) {
    const chunks: Buffer[] = [];
    for await (const c of data as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
    try {
      data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      data = undefined;
    }
  }
  const error = (data as { error?: { message?: string; errors?: Array<{ reason?: string }> } } | undefined)?.error;
  return { status: response.status, reason: error?.errors?.[0]?.reason, message: error?.message ?? base.message };
}

function responseFault(status: number, text: string): DriveFault {
  try {
    const error = (JSON.parse(text) as { error?: { message?: string; errors?: Array<{ reason?: string }> } }).error;
    return { status, reason: error?.errors?.[0]?.reason, message: error?.message ?? text };
  } catch {
    return { status, message: text.slice(0, 200) };
  }
}

/** One PUT with the body piped from `body` as it comes: status, Range header and the answer's text. */
function putBody(url: string, headers: Record<string, string>, body: AsyncIterable<Buffer> | undefined, signal: AbortSignal | undefined): Promise<{ status: number; range?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { method: 'PUT', headers, signal }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, range: res.headers.range, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) pipeline(Readable.from(body), req).catch(reject);
    else req.end();
  });
}

/** The source itself failed while a body was streamed from it: its own message, not a Drive fault. */
class SourceError extends Error {}

function sourceFailure(err: unknown): SourceError | undefined {
  for (let e = err as { cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as { cause?: unknown } | undefined, depth++) if (e instanceof SourceError) return e;
  return undefined;
}

async function readRange(source: ObjectSource, offset: number, length: number, signal: AbortSignal | undefined): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of hashedRange(source, offset, length, undefined, signal)) pieces.push(piece);
  return Buffer.concat(pieces, length);
}

/** The hash of bytes [offset, offset+length) (a resumed upload re-hashes what Drive has). */
async function hashRange(source: ObjectSource, offset: number, length: number, algorithm: 'md5' | 'sha256', signal: AbortSignal | undefined): Promise<Hash> {
  const hash = createHash(algorithm);
  for await (const _ of hashedRange(source, offset, length, hash, signal));
  return hash;
}

/** Bytes [offset, offset+length) of the source, fed to `hash` as they pass; a source that ends early fails it. */
async function* hashedRange(source: ObjectSource, offset: number, length: number, hash: Hash | undefined, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  if (length === 0) return;
  let left = length;
  const stream = source.open(offset);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      signal?.throwIfAborted();
      const piece = chunk.subarray(0, left);
      hash?.update(piece);
      left -= piece.length;
      yield piece;
      if (left <= 0) break;
    }
  } finally {
    stream.destroy();
  }
  if (left > 0) throw new SourceError(`the source gave ${length - left} bytes where ${length} were declared; the data changed while it was being stored`);
}
