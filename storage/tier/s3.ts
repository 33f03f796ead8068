// An S3 bucket as a Tier: AWS (Glacier Deep Archive by default) or any
// S3-compatible store (B2, Wasabi, R2, MinIO, Scaleway, OpenStack Swift). Format and
// request costs: docs/s3-tier.md.
//
// Keys are <prefix>/<home id>/<object id>: the home id is derived from the PeerId and
// object ids are HMACs, so the bucket shows no file names, dates or volume names.
// Objects larger than one part go up as multipart uploads streamed from the spool
// file, journalled part by part (S3UploadJournal) so a killed upload resumes with the
// missing parts. Bodies always have a known length and checksums go in headers, never
// aws-chunked trailers, which strict stores (Swift, B2) refuse.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  RestoreObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { ObjectNotFoundError, PermanentTierError } from './tier.ts';
import type { ByteRange, ObjectInfo, ObjectSource, PutReceipt, Tier } from './tier.ts';
import { etagChecksum, s3Sha256Checksum } from './checksum.ts';
import { S3UploadJournal, type JournalPart, type UploadJournalEntry } from './s3-upload-journal.ts';

export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
const MAX_PARTS = 10_000;
/**
 * 1 GiB parts: a 4 GiB volume costs 4 UploadParts plus Create and Complete, 1.5
 * requests per GB (the target is at most 2). Parts stream from the spool file, so a
 * large part costs no memory; it costs a re-send of up to 1 GiB when one fails.
 */
export const DEFAULT_PART_SIZE = 1024 * 1024 * 1024;

/** Classes S3 keeps offline: a GET needs a RestoreObject first. */
const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export interface S3TierOptions {
  name: string;
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash; may be empty. */
  prefix: string;
  /** Opaque per-home folder (derived from the PeerId by the caller). */
  homeId: string;
  client: S3Client;
  /** Omitted: the store's default class. */
  storageClass?: string;
  partSize?: number;
  /** Where multipart uploads in flight are journalled. */
  journalDir: string;
  /** Human form of the target for messages, e.g. s3://bucket/prefix. */
  label?: string;
  /**
   * Send SHA-256 checksums (x-amz-checksum-sha256, and per part in Complete, so S3
   * keeps the composite checksum). Default true, for AWS; S3-compatible stores get
   * Content-MD5 alone: Swift refuses a Complete that carries part checksums
   * (MalformedXML), and others ignore or reject the header.
   */
  sha256Checksums?: boolean;
  /**
   * Archive classes bill a minimum duration (180 days for Deep Archive): deleting a
   * younger object costs as much as keeping it. With this, such a delete is handed to
   * `defer` (which records it to be done when due) instead of being sent.
   */
  minimumDuration?: { days(storageClass: string): number; defer(state: S3ObjectState, deleteAt: number): void };
}

export interface S3ObjectState {
  name: string;
  size: number;
  storageClass: string;
  /** True when a GET needs a restore first (Glacier classes). */
  archived: boolean;
  /** none: not requested or expired; ongoing; ready (until expiry). */
  restore: 'none' | 'ongoing' | 'ready';
  restoreExpiry?: string;
  /** Composite or full-object checksum the store keeps, when it keeps one. */
  checksumSha256?: string;
  etag?: string;
  /** When the store last wrote it (ms). */
  lastModified?: number;
}

export type RestoreTier = 'Bulk' | 'Standard' | 'Expedited';

/** Reading an archived object whose restore has not completed. */
export class ColdObjectError extends PermanentTierError {
  readonly cold = true;
  readonly object: string;
  constructor(target: string, name: string) {
    super(`object ${name} on ${target} is in cold storage: it must be restored (RestoreObject) before it can be read`);
    this.name = 'ColdObjectError';
    this.object = name;
  }
}

export function isColdObjectError(err: unknown): err is ColdObjectError {
  return err instanceof Error && (err as { cold?: boolean }).cold === true;
}

/** Builds the SDK client the way every store Hearth supports accepts. */
export function createS3Client(options: { region?: string; endpoint?: string; pathStyle?: boolean; profile?: string; credentials?: { accessKeyId: string; secretAccessKey: string } }): S3Client {
  return new S3Client({
    region: options.region ?? (options.endpoint ? 'us-east-1' : undefined),
    endpoint: options.endpoint,
    forcePathStyle: options.pathStyle ?? false,
    profile: options.profile,
    credentials: options.credentials,
    // S3-compatible stores reject the SDK's default aws-chunked bodies with trailing
    // checksums; Hearth sends known-length bodies and its own checksums in headers.
    ...(options.endpoint ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const, responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
    // Retries are RetryTier's, one policy for every tier.
    maxAttempts: 1,
  });
}

export class S3Tier implements Tier {
  readonly kind = 's3' as const;
  readonly name: string;
  readonly bucket: string;
  readonly storageClass: string | undefined;
  readonly partSize: number;
  private readonly keyPrefix: string;
  private readonly client: S3Client;
  private readonly journal: S3UploadJournal;
  private readonly label: string;
  private readonly minimumDuration: S3TierOptions['minimumDuration'];
  private readonly sha256: boolean;

  constructor(options: S3TierOptions) {
    this.name = options.name;
    this.bucket = options.bucket;
    this.storageClass = options.storageClass || undefined;
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < MIN_PART_SIZE || this.partSize > MAX_PART_SIZE) {
      throw new Error(`s3.partSize must be between 5 MiB and 5 GiB, got ${this.partSize} bytes`);
    }
    const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.keyPrefix = `${prefix ? `${prefix}/` : ''}${options.homeId}/`;
    this.client = options.client;
    this.journal = new S3UploadJournal(options.journalDir);
    this.label = options.label ?? `s3 target ${options.name}`;
    this.minimumDuration = options.minimumDuration;
    this.sha256 = options.sha256Checksums ?? true;
  }

  key(name: string): string {
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) throw new PermanentTierError(`object name ${JSON.stringify(name)} is not valid for an S3 key`);
    return this.keyPrefix + name;
  }

  location(name: string): string {
    return `s3://${this.bucket}/${this.key(name)}`;
  }

  /**
   * Checks at `target add` that the bucket is there and writable under the prefix:
   * HEAD of the bucket, then a small PUT and DELETE. Throws one line naming the fault.
   */
  async checkAccess(): Promise<void> {
    await this.send((abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }), 'check the bucket');
    const probe = `${this.keyPrefix}.hearth-access-check`;
    await this.send((abortSignal) => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: Buffer.from('hearth'), ContentLength: 6, StorageClass: this.classForSmallObject() }), { abortSignal }), 'write a test object');
    await this.send((abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe }), { abortSignal }), 'delete the test object');
  }

  /** The access probe is tiny and deleted at once: archive classes would bill it 180 days. */
  private classForSmallObject(): StorageClass | undefined {
    return this.storageClass && ARCHIVE_CLASSES.has(this.storageClass) ? undefined : (this.storageClass as StorageClass | undefined);
  }

  /**
   * The receipt's checksum is what the store keeps: on AWS the SHA-256 sent (S3
   * checks it on arrival, and keeps the composite of the parts' for a multipart
   * upload), elsewhere the ETag the store answered.
   */
  async put(name: string, source: ObjectSource, signal?: AbortSignal): Promise<PutReceipt> {
    const key = this.key(name);
    if (source.size > this.partSize) return this.putMultipart(name, key, source, signal);
    const digest = await partDigest(source, 0, source.size, signal);
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: bodyOf(source, 0, source.size),
      ContentLength: source.size,
      ContentMD5: digest.md5,
      ChecksumSHA256: this.sha256 ? digest.sha256 : undefined,
      StorageClass: this.storageClass as StorageClass | undefined,
    });
    const answer = await this.send((abortSignal) => this.client.send(command, { abortSignal }), `store ${name}`, signal);
    return { checksum: this.sha256 ? s3Sha256Checksum(digest.sha256) : etagChecksum(answer.ETag) };
  }

  private async putMultipart(name: string, key: string, source: ObjectSource, signal: AbortSignal | undefined): Promise<PutReceipt> {
    const partSize = Math.max(this.partSize, Math.ceil(source.size / MAX_PARTS));
    const count = Math.ceil(source.size / partSize);
    let entry = this.journal.read(name);
    if (entry && (entry.key !== key || entry.size !== source.size || entry.partSize !== partSize || entry.storageClass !== this.storageClass)) {
      await this.abort(entry);
      entry = undefined;
    }
    if (entry) entry = await this.crossCheck(entry);
    if (!entry) {
      const command = new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, StorageClass: this.storageClass as StorageClass | undefined, ChecksumAlgorithm: this.sha256 ? 'SHA256' : undefined });
      const created = await this.send((abortSignal) => this.client.send(command, { abortSignal }), `start the upload of ${name}`, signal);
      entry = { version: 1, key, uploadId: created.UploadId!, size: source.size, partSize, storageClass: this.storageClass, parts: [], startedAt: new Date().toISOString() };
      this.journal.write(name, entry);
    }
    const uploadId = entry.uploadId;
    const done = new Map(entry.parts.map((p) => [p.partNumber, p]));
    const parts: JournalPart[] = [];
    for (let partNumber = 1; partNumber <= count; partNumber++) {
      signal?.throwIfAborted();
      const offset = (partNumber - 1) * partSize;
      const size = Math.min(partSize, source.size - offset);
      const digest = await partDigest(source, offset, size, signal);
      const kept = done.get(partNumber);
      if (kept && kept.size === size && kept.sha256 === digest.sha256) {
        parts.push(kept);
        continue;
      }
      if (kept) {
        // The bytes under this id changed since the upload began (encrypted again):
        // parts of two encryptions must never be completed into one object.
        await this.abort(entry);
        this.journal.remove(name);
        return this.putMultipart(name, key, source, signal);
      }
      const command = new UploadPartCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: bodyOf(source, offset, size),
        ContentLength: size,
        ContentMD5: digest.md5,
        ChecksumSHA256: this.sha256 ? digest.sha256 : undefined,
      });
      const answer = await this.send((abortSignal) => this.client.send(command, { abortSignal }), `upload part ${partNumber} of ${name}`, signal).catch((err: unknown) => {
        if (errorCode(err) === 'NoSuchUpload') this.journal.remove(name);
        throw err;
      });
      const part: JournalPart = { partNumber, size, etag: answer.ETag!, sha256: digest.sha256 };
      parts.push(part);
      entry = { ...entry, parts: [...entry.parts.filter((p) => p.partNumber !== partNumber), part] };
      this.journal.write(name, entry);
    }
    const complete = new CompleteMultipartUploadCommand({
      Bucket: this.bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, ChecksumSHA256: this.sha256 ? p.sha256 : undefined })) },
    });
    const completed = await this.send((abortSignal) => this.client.send(complete, { abortSignal }), `complete the upload of ${name}`, signal).catch((err: unknown) => {
      // The store lost the upload or a part: the next attempt starts over.
      if (errorCode(err) === 'NoSuchUpload' || errorCode(err) === 'InvalidPart') this.journal.remove(name);
      throw err;
    });
    this.journal.remove(name);
    return { checksum: this.sha256 ? s3Sha256Checksum(compositeSha256(parts.map((p) => p.sha256))) : etagChecksum(completed.ETag) };
  }

  /**
   * Where the store lists parts, the journal keeps only those it still has with the
   * same ETag; where it cannot (fauxqs, some providers), the journal is trusted and a
   * part it lost fails the Complete, which starts the upload over.
   */
  private async crossCheck(entry: UploadJournalEntry): Promise<UploadJournalEntry | undefined> {
    try {
      const listed = new Map<number, string>();
      let marker: string | undefined;
      for (let page = 0; page < 20; page++) {
        const answer = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: entry.key, UploadId: entry.uploadId, PartNumberMarker: marker }));
        for (const p of answer.Parts ?? []) listed.set(p.PartNumber!, p.ETag!);
        if (!answer.IsTruncated) break;
        marker = answer.NextPartNumberMarker;
      }
      return { ...entry, parts: entry.parts.filter((p) => listed.get(p.partNumber) === p.etag) };
    } catch (err) {
      if (errorCode(err) === 'NoSuchUpload') return undefined;
      return entry;
    }
  }

  private async abort(entry: UploadJournalEntry): Promise<void> {
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: entry.key, UploadId: entry.uploadId })).catch(() => {});
  }

  /** Abandons the upload in flight for `name`, if any (a removed target, a dropped object). */
  async abandonUpload(name: string): Promise<void> {
    const entry = this.journal.read(name);
    if (!entry) return;
    await this.abort(entry);
    this.journal.remove(name);
  }

  async get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    if (range && range.length === 0) return Readable.from([]);
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name), Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined });
    const answer = await this.send((abortSignal) => this.client.send(command, { abortSignal }), `read ${name}`, signal, name);
    return answer.Body as Readable;
  }

  async stat(name: string): Promise<ObjectInfo> {
    const state = await this.head(name);
    const checksums = [s3Sha256Checksum(state.checksumSha256), etagChecksum(state.etag)].filter((c) => c !== undefined);
    return { name, size: state.size, ...(checksums.length ? { checksums } : {}) };
  }

  /** One HEAD: size, class, restore state and stored checksum. Works on archived objects. */
  async head(name: string): Promise<S3ObjectState> {
    const h = await this.send((abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name), ChecksumMode: 'ENABLED' }), { abortSignal }), `look up ${name}`, undefined, name);
    const storageClass = h.StorageClass ?? 'STANDARD';
    return {
      name,
      size: h.ContentLength ?? 0,
      storageClass,
      archived: ARCHIVE_CLASSES.has(storageClass),
      ...parseRestoreHeader(h.Restore),
      checksumSha256: h.ChecksumSHA256,
      etag: h.ETag,
      lastModified: h.LastModified?.getTime(),
    };
  }

  async *list(): AsyncIterable<ObjectInfo & { storageClass?: string }> {
    let token: string | undefined;
    do {
      const page = await this.send((abortSignal) => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.keyPrefix, ContinuationToken: token }), { abortSignal }), 'list objects');
      for (const o of page.Contents ?? []) {
        const name = o.Key!.slice(this.keyPrefix.length);
        if (name.includes('/') || name.startsWith('.')) continue;
        const etag = etagChecksum(o.ETag);
        yield { name, size: o.Size ?? 0, storageClass: o.StorageClass, ...(etag ? { checksums: [etag] } : {}) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(name: string): Promise<void> {
    if (this.minimumDuration) {
      const state = await this.head(name).catch((err: unknown) => {
        if (err instanceof ObjectNotFoundError) return undefined;
        throw err;
      });
      if (!state) return;
      const days = this.minimumDuration.days(state.storageClass);
      const deleteAt = (state.lastModified ?? 0) + days * 86_400_000;
      if (days > 0 && deleteAt > Date.now()) {
        this.minimumDuration.defer(state, deleteAt);
        return;
      }
    }
    await this.send((abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }), { abortSignal }), `delete ${name}`);
  }

  /**
   * Asks S3 to bring an archived object online for `days`. 'started' (202), 'ready'
   * (200: already restored, expiry extended), 'ongoing' (409), 'not-archived' (403
   * InvalidObjectState: the object can be read at once).
   */
  async requestRestore(name: string, options: { tier: RestoreTier; days: number }): Promise<'started' | 'ongoing' | 'ready' | 'not-archived'> {
    if (options.tier === 'Expedited' && this.storageClass === 'DEEP_ARCHIVE') {
      throw new PermanentTierError('Glacier Deep Archive has no Expedited retrieval: use --tier Bulk (within 48 h) or --tier Standard (within 12 h)');
    }
    try {
      const answer = await this.client.send(
        new RestoreObjectCommand({ Bucket: this.bucket, Key: this.key(name), RestoreRequest: { Days: options.days, GlacierJobParameters: { Tier: options.tier } } }),
      );
      return answer.$metadata.httpStatusCode === 202 ? 'started' : 'ready';
    } catch (err) {
      const code = errorCode(err);
      if (code === 'RestoreAlreadyInProgress') return 'ongoing';
      if (code === 'InvalidObjectState') return 'not-archived';
      throw this.translate(err, `request the restore of ${name}`, name);
    }
  }

  async close(): Promise<void> {}

  private async send<T>(request: (signal: AbortSignal | undefined) => Promise<T>, doing: string, signal?: AbortSignal, object?: string): Promise<T> {
    try {
      return await request(signal);
    } catch (err) {
      throw this.translate(err, doing, object);
    }
  }

  /** One line naming what is wrong and what to do; permanent faults marked so RetryTier stops. */
  private translate(err: unknown, doing: string, object?: string): unknown {
    const code = errorCode(err);
    const status = (err as S3ServiceException).$metadata?.httpStatusCode;
    const where = `${this.label} (bucket ${this.bucket})`;
    if (object && (code === 'NoSuchKey' || code === 'NotFound' || (status === 404 && code !== 'NoSuchBucket' && code !== 'NoSuchUpload'))) {
      return new ObjectNotFoundError(where, object);
    }
    if (object && code === 'InvalidObjectState') return new ColdObjectError(where, object);
    const permanent = (message: string): PermanentTierError => new PermanentTierError(message, { cause: err });
    // HEAD answers carry no body, so a missing bucket there is a bare 404 NotFound.
    if (code === 'NoSuchBucket' || (!object && status === 404 && code === 'NotFound')) {
      return permanent(`${where}: the bucket ${this.bucket} does not exist; create it or check --bucket`);
    }
    switch (code) {
      case 'CredentialsProviderError':
        return permanent(`${where}: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials with --profile`);
      case 'PermanentRedirect':
      case 'AuthorizationHeaderMalformed':
      case 'IllegalLocationConstraintException': {
        const region = (err as { Region?: string; $response?: { headers?: Record<string, string> } }).Region ?? (err as { $response?: { headers?: Record<string, string> } }).$response?.headers?.['x-amz-bucket-region'];
        return permanent(`${where}: the bucket is in another region${region ? ` (${region}): use --region ${region}` : ': give its region with --region'}`);
      }
      case 'InvalidAccessKeyId':
      case 'SignatureDoesNotMatch':
        return permanent(`${where}: the credentials were refused (${code}); check the access key and secret`);
      case 'AccessDenied':
      case 'Forbidden':
        return permanent(`${where}: access denied when trying to ${doing}; the credentials need s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket and s3:RestoreObject on the bucket`);
      case 'InvalidStorageClass':
        return permanent(`${where}: the store refuses storage class ${this.storageClass}; use --storage-class STANDARD or a class this provider offers`);
      case 'NotImplemented':
        return permanent(`${where}: the store does not implement the request to ${doing}`);
      case 'EntityTooLarge':
        return permanent(`${where}: the store refused a part as too large; lower s3.partSize`);
      default:
        break;
    }
    if (status === 403) return permanent(`${where}: refused (403 ${code ?? ''}) when trying to ${doing}; check the credentials' permissions`);
    if (status === 404 && !object) return permanent(`${where}: not found (404 ${code ?? ''}) when trying to ${doing}; check --bucket and --endpoint`);
    const network = (err as NodeJS.ErrnoException).code;
    if (network === 'ECONNREFUSED' || network === 'ENOTFOUND' || network === 'EAI_AGAIN') {
      return new Error(`${where}: cannot reach the endpoint (${network}) when trying to ${doing}; check --endpoint and the network`, { cause: err });
    }
    if (err instanceof Error && !err.message.includes(this.bucket)) return new Error(`${where}: ${doing}: ${err.message}`, { cause: err });
    return err;
  }
}

/** The S3 error code, also through the one-line error translate() wrapped it in. */
function errorCode(err: unknown): string | undefined {
  if (err instanceof S3ServiceException) return err.name;
  const e = err as { name?: string; Code?: string; cause?: unknown };
  if (e?.cause instanceof S3ServiceException) return e.cause.name;
  return e?.Code ?? e?.name;
}

/** x-amz-restore: `ongoing-request="true"` or `ongoing-request="false", expiry-date="..."`. */
export function parseRestoreHeader(header: string | undefined): Pick<S3ObjectState, 'restore' | 'restoreExpiry'> {
  if (!header) return { restore: 'none' };
  if (/ongoing-request="true"/.test(header)) return { restore: 'ongoing' };
  const expiry = /expiry-date="([^"]+)"/.exec(header)?.[1];
  return { restore: 'ready', restoreExpiry: expiry ? new Date(expiry).toISOString() : undefined };
}

function bodyOf(source: ObjectSource, offset: number, size: number): Readable {
  if (size === 0) return Readable.from([]);
  if (source.file !== undefined) return createReadStream(source.file, { start: offset, end: offset + size - 1, highWaterMark: 1024 * 1024 });
  return limit(source.open(offset), size);
}

/** Reads the part once before sending it: S3 wants its checksums in headers, before the body. */
async function partDigest(source: ObjectSource, offset: number, size: number, signal: AbortSignal | undefined): Promise<{ sha256: string; md5: string }> {
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  let seen = 0;
  await pipeline(
    bodyOf(source, offset, size),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        sha256.update(chunk);
        md5.update(chunk);
        seen += chunk.length;
      }
    },
    { signal },
  );
  if (seen !== size) throw new Error(`the source gave ${seen} bytes where ${size} were declared; the data changed while it was being stored`);
  return { sha256: sha256.digest('base64'), md5: md5.digest('base64') };
}

/** The first `size` bytes of a stream opened at an offset. */
function limit(stream: Readable, size: number): Readable {
  let left = size;
  return Readable.from(
    (async function* () {
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (left <= 0) break;
          const piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
          left -= piece.length;
          yield piece;
        }
      } finally {
        stream.destroy();
      }
    })(),
  );
}

/** base64(SHA-256 of the parts' raw SHA-256s) + "-N": what S3 reports for a multipart object. */
export function compositeSha256(partSha256s: string[]): string {
  const h = createHash('sha256');
  for (const p of partSha256s) h.update(Buffer.from(p, 'base64'));
  return `${h.digest('base64')}-${partSha256s.length}`;
}
