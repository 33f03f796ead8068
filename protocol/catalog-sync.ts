// /hearth/catalog/1: an owner keeps a copy of its catalog log at each relative,
// and pulls it back when it rebuilds its home from the recovery phrase. The host
// verifies every pushed record against the owner's PeerId (signature, hash chain)
// and serves only the asker's own log: a stream's owner is the PeerId Noise
// authenticated, never a field of the request. Shaped like js-libp2p's ping
// service: protocol id and limits, handler and client side by side. Family-only:
// registered as a service of createHearthHost, whose guard resets non-members.
// Wire format: docs/protocols.md, "/hearth/catalog/1".
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface';
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal';
import {
  CatalogChainError, HEADER_BYTES, MAX_ENVELOPE_BYTES, ZERO_HASH, decodeEnvelope, envelopeHash,
  type ChainErrorCode, type ChainHead,
} from '../storage/catalog/envelope.ts';
import { CatalogQuotaError, type HostCatalogStore } from '../storage/hostcatalog/host-catalog-store.ts';
import {
  MalformedMessageError, ProtocolViolationError, StreamReader, encodeFrame, sendBytes, sendJson,
} from './messages.ts';

export const CATALOG_PROTOCOL = '/hearth/catalog/1';

export const CATALOG_LIMITS = {
  /** A request is a few short fields. */
  maxRequestBytes: 1024,
  /** A reply: a head, counts, and at most one error line. */
  maxReplyBytes: 2048,
  /** Envelope bytes in one push; the host holds one batch per stream in memory. */
  maxBatchBytes: 4 * 1024 * 1024,
  /** One head or push exchange, batch included. */
  timeoutMs: 30_000,
  /** A pull may take long; it fails only when no byte moves for this long. */
  idleTimeoutMs: 30_000,
  maxInboundStreams: 4,
  maxOutboundStreams: 4,
};

const MAX_ERROR_LENGTH = 500;

/**
 * Why a sync stopped: a host's refusal (its chain error code, or 'quota': the copy
 * would outgrow what the host grants), or 'behind' (see syncCatalogTo).
 */
export type CatalogSyncCode = ChainErrorCode | 'quota' | 'behind';

export class CatalogSyncError extends Error {
  readonly code: CatalogSyncCode;
  /** The record at fault, when one is. */
  readonly seq: number | undefined;
  /** What the host holds of the owner's log. */
  readonly hostHead: ChainHead;
  constructor(code: CatalogSyncCode, seq: number | undefined, hostHead: ChainHead, message: string) {
    super(message);
    this.name = 'CatalogSyncError';
    this.code = code;
    this.seq = seq;
    this.hostHead = hostHead;
  }
}

export interface CatalogPushResult {
  /** The host's head after the push. */
  head: ChainHead;
  /** Records the host stored; records it already held are not counted. */
  added: number;
}

export interface CatalogCallOptions {
  signal?: AbortSignal;
}

export interface CatalogSyncServiceInit {
  /** Where this home keeps its relatives' logs. */
  store: HostCatalogStore;
  /**
   * Most bytes `owner`'s catalog copy may take here (the daemon: the quota it
   * grants the owner, less the owner's objects). Unbounded when absent.
   */
  catalogRoomFor?(owner: string): number | Promise<number>;
  timeoutMs?: number;
  idleTimeoutMs?: number;
  /** Both sides: the host refuses bigger batches, the client cuts its pushes to this size. */
  maxBatchBytes?: number;
  maxInboundStreams?: number;
  maxOutboundStreams?: number;
}

export interface CatalogSyncComponents {
  registrar: Registrar;
  connectionManager: ConnectionManager;
}

type CatalogRequest =
  | { op: 'head' }
  | { op: 'push'; from: ChainHead; count: number; bytes: number }
  | { op: 'pull'; fromSeq: number };

interface Call {
  stream: Stream;
  reader: StreamReader;
  signal: AbortSignal;
  finish(): void;
}

export class CatalogSyncService implements Startable {
  readonly protocol = CATALOG_PROTOCOL;
  private readonly components: CatalogSyncComponents;
  private readonly store: HostCatalogStore;
  private readonly catalogRoomFor: ((owner: string) => number | Promise<number>) | undefined;
  private readonly timeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly maxBatchBytes: number;
  private readonly maxInboundStreams: number;
  private readonly maxOutboundStreams: number;

  constructor(components: CatalogSyncComponents, init: CatalogSyncServiceInit) {
    this.components = components;
    this.store = init.store;
    this.catalogRoomFor = init.catalogRoomFor;
    this.timeoutMs = init.timeoutMs ?? CATALOG_LIMITS.timeoutMs;
    this.idleTimeoutMs = init.idleTimeoutMs ?? CATALOG_LIMITS.idleTimeoutMs;
    this.maxBatchBytes = init.maxBatchBytes ?? CATALOG_LIMITS.maxBatchBytes;
    if (this.maxBatchBytes < MAX_ENVELOPE_BYTES) throw new Error(`maxBatchBytes must hold at least one record of the largest size, ${MAX_ENVELOPE_BYTES} bytes`);
    this.maxInboundStreams = init.maxInboundStreams ?? CATALOG_LIMITS.maxInboundStreams;
    this.maxOutboundStreams = init.maxOutboundStreams ?? CATALOG_LIMITS.maxOutboundStreams;
    this.handleCatalog = this.handleCatalog.bind(this);
  }

  readonly [Symbol.toStringTag] = '@hearth/catalog';

  async start(): Promise<void> {
    await this.components.registrar.handle(this.protocol, this.handleCatalog, {
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxOutboundStreams,
    });
  }

  async stop(): Promise<void> {
    await this.components.registrar.unhandle(this.protocol);
  }

  /** What `peer` holds of this home's log. */
  async head(peer: PeerId, options: CatalogCallOptions = {}): Promise<ChainHead> {
    return this.exchange(peer, { op: 'head' }, options, async (call) => parseAcceptance(peer, await call.reader.readJson(CATALOG_LIMITS.maxReplyBytes)).head);
  }

  /**
   * Send records of this home's log that follow `from` (the host's head, as head()
   * answered) in batches of at most maxBatchBytes, one stream each; every batch is
   * stored whole or refused whole. A refusal throws CatalogSyncError with the
   * host's reason; batches before it stay stored.
   */
  async push(peer: PeerId, from: ChainHead, envelopes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: CatalogCallOptions = {}): Promise<CatalogPushResult> {
    let head = from;
    let added = 0;
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    const send = async (): Promise<void> => {
      const result = await this.pushBatch(peer, head, batch, batchBytes, options);
      head = result.head;
      added += result.added;
      batch = [];
      batchBytes = 0;
    };
    for await (const envelope of envelopes) {
      if (envelope.byteLength > MAX_ENVELOPE_BYTES) {
        throw new Error(`catalog record of ${envelope.byteLength} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit; no host would take it`);
      }
      if (batchBytes + envelope.byteLength > this.maxBatchBytes) await send();
      batch.push(envelope);
      batchBytes += envelope.byteLength;
    }
    if (batch.length > 0) await send();
    return { head, added };
  }

  /**
   * This home's log as `peer` holds it, from record `fromSeq` on, one record at a
   * time: the stream is paused while the consumer works, so memory stays flat
   * however long the log. Stopping early resets the stream.
   */
  async *pull(peer: PeerId, fromSeq = 1, options: CatalogCallOptions = {}): AsyncGenerator<Buffer> {
    const first = Math.max(1, fromSeq);
    const call = await this.open(peer, { op: 'pull', fromSeq: first }, options.signal ?? null);
    let complete = false;
    try {
      const reply = await call.reader.readJson(CATALOG_LIMITS.maxReplyBytes);
      const { head } = parseAcceptance(peer, reply);
      const count = wholeNumber(reply.count, 'pull reply: count');
      if (count !== Math.max(0, head.seq - first + 1)) {
        throw new ProtocolViolationError(`relative ${peer} announced ${count} records from ${first} for a log ending at ${head.seq}`);
      }
      let last: Buffer | undefined;
      for (let seq = first; seq < first + count; seq++) {
        last = await call.reader.readFrame(MAX_ENVELOPE_BYTES);
        const sent = decodeEnvelope(last).seq;
        if (sent !== seq) throw new ProtocolViolationError(`relative ${peer} sent record ${sent} where record ${seq} belongs`);
        yield last;
      }
      if (last && envelopeHash(last) !== head.hash) throw new ProtocolViolationError(`relative ${peer} sent a last record other than the head it announced`);
      complete = true;
      await closeGracefully(call.stream, call.signal);
    } finally {
      if (!complete) call.stream.abort(new Error('catalog pull stopped early'));
      call.finish();
    }
  }

  private async pushBatch(peer: PeerId, from: ChainHead, batch: readonly Uint8Array[], bytes: number, options: CatalogCallOptions): Promise<CatalogPushResult> {
    return this.exchange(peer, { op: 'push', from, count: batch.length, bytes }, options, async (call) => {
      for (const envelope of batch) await sendBytes(call.stream, encodeFrame(envelope), { signal: call.signal, idleTimeout: this.idleTimeoutMs });
      const reply = await call.reader.readJson(CATALOG_LIMITS.maxReplyBytes);
      if (reply.ok === false) throw parseRefusal(peer, reply);
      const { head } = parseAcceptance(peer, reply);
      const expected: ChainHead = { seq: from.seq + batch.length, hash: envelopeHash(batch[batch.length - 1]!) };
      if (head.seq !== expected.seq || head.hash !== expected.hash) {
        throw new ProtocolViolationError(`relative ${peer} answered head ${head.seq} after a push ending at record ${expected.seq}, or holds another record there`);
      }
      return { head, added: wholeNumber(reply.added, 'push reply: added') };
    });
  }

  /** One request, its answer, a clean close; the whole within timeoutMs. */
  private async exchange<T>(peer: PeerId, request: CatalogRequest, options: CatalogCallOptions, run: (call: Call) => Promise<T>): Promise<T> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const call = await this.open(peer, request, options.signal ? AbortSignal.any([options.signal, timeout]) : timeout);
    try {
      const result = await run(call);
      await closeGracefully(call.stream, call.signal);
      return result;
    } catch (err) {
      call.stream.abort(asError(err));
      throw timeout.aborted && !(err instanceof CatalogSyncError)
        ? new Error(`relative ${peer} did not complete a catalog ${request.op} within ${this.timeoutMs / 1000} s: try again later`, { cause: err })
        : err;
    } finally {
      call.finish();
    }
  }

  private async open(peer: PeerId, request: CatalogRequest, signal: AbortSignal | null): Promise<Call> {
    signal?.throwIfAborted();
    const stream = await this.openStream(peer, signal);
    const reader = new StreamReader(stream, { idleTimeout: this.idleTimeoutMs });
    const onAbort = (): void => stream.abort(signal?.reason instanceof Error ? signal.reason : new Error('catalog request aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const call: Call = {
      stream,
      reader,
      signal: signal ?? new AbortController().signal,
      finish: () => {
        signal?.removeEventListener('abort', onAbort);
        reader.detach();
      },
    };
    try {
      await sendJson(stream, request, CATALOG_LIMITS.maxRequestBytes, { signal: call.signal, idleTimeout: this.idleTimeoutMs });
    } catch (err) {
      stream.abort(asError(err));
      call.finish();
      throw err;
    }
    return call;
  }

  private async openStream(peer: PeerId, signal: AbortSignal | null): Promise<Stream> {
    const open = (): Promise<Stream> => this.components.connectionManager.openStream(peer, this.protocol, signal ? { signal } : {});
    try {
      return await open();
    } catch (err) {
      if (err instanceof Error) throw err;
      // The connection was closing (the relative hung up, as a joiner does right
      // after pairing): libp2p ends the stream mid-negotiation and rejects with the
      // close event, not an Error. Nothing was sent; a fresh connection may serve.
      signal?.throwIfAborted();
      return open().catch((again: unknown) => {
        throw again instanceof Error ? again : new Error(`relative ${peer} closed the connection while ${this.protocol} was being negotiated: try again`);
      });
    }
  }

  private async handleCatalog(stream: Stream, connection: Connection): Promise<void> {
    const owner = connection.remotePeer.toString();
    const reader = new StreamReader(stream, { idleTimeout: this.idleTimeoutMs });
    // Head and push are short exchanges; a pull is bounded by its idle timeouts instead.
    const timer = setTimeout(() => stream.abort(new Error(`${this.protocol} exchange took longer than ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      const request = parseRequest(await reader.readJson(CATALOG_LIMITS.maxRequestBytes), this.maxBatchBytes);
      switch (request.op) {
        case 'head':
          await this.reply(stream, { ok: true, head: await this.store.head(owner) });
          break;
        case 'push':
          await this.receivePush(stream, reader, owner, request);
          break;
        case 'pull':
          clearTimeout(timer);
          await this.servePull(stream, owner, request.fromSeq);
          break;
      }
      await closeGracefully(stream);
    } catch (err) {
      stream.log.error('%s request from %p failed - %e', this.protocol, connection.remotePeer, err);
      stream.abort(asError(err));
    } finally {
      clearTimeout(timer);
      reader.detach();
    }
  }

  private async receivePush(stream: Stream, reader: StreamReader, owner: string, request: Extract<CatalogRequest, { op: 'push' }>): Promise<void> {
    const envelopes: Buffer[] = [];
    let remaining = request.bytes;
    for (let i = 0; i < request.count; i++) {
      // A frame may not run past the batch size the request declared.
      const envelope = await reader.readFrame(Math.min(MAX_ENVELOPE_BYTES, remaining));
      if (envelope.byteLength < HEADER_BYTES) throw new MalformedMessageError(`push record ${i + 1} of ${request.count} is ${envelope.byteLength} bytes, shorter than any catalog record`);
      envelopes.push(envelope);
      remaining -= envelope.byteLength;
    }
    if (remaining !== 0) throw new MalformedMessageError(`push declared ${request.bytes} bytes but its ${request.count} records hold ${request.bytes - remaining}`);
    try {
      const maxBytes = this.catalogRoomFor ? await this.catalogRoomFor(owner) : undefined;
      const { head, added } = await this.store.append(owner, envelopes, { from: request.from, ...(maxBytes !== undefined ? { maxBytes } : {}) });
      await this.reply(stream, { ok: true, head, added });
    } catch (err) {
      const refusal = err instanceof CatalogChainError ? { code: err.code, seq: err.seq ?? null } : err instanceof CatalogQuotaError ? { code: 'quota', seq: null } : undefined;
      if (!refusal) throw err;
      await this.reply(stream, { ok: false, ...refusal, error: (err as Error).message.slice(0, MAX_ERROR_LENGTH), head: await this.store.head(owner) });
    }
  }

  private async servePull(stream: Stream, owner: string, fromSeq: number): Promise<void> {
    const head = await this.store.head(owner);
    const count = Math.max(0, head.seq - fromSeq + 1);
    await this.reply(stream, { ok: true, head, count });
    // sendBytes waits while the owner's side is paused, so records are read from
    // the store only as fast as the owner takes them.
    for await (const envelope of this.store.read(owner, fromSeq, head.seq)) {
      await sendBytes(stream, encodeFrame(envelope), { idleTimeout: this.idleTimeoutMs });
    }
  }

  private async reply(stream: Stream, message: Record<string, unknown>): Promise<void> {
    await sendJson(stream, message, CATALOG_LIMITS.maxReplyBytes, { idleTimeout: this.idleTimeoutMs });
  }
}

/** For `createHearthHost({ services: { catalog: catalogSyncService(init) } })`. */
export function catalogSyncService(init: CatalogSyncServiceInit): (components: CatalogSyncComponents) => CatalogSyncService {
  return (components) => new CatalogSyncService(components, init);
}

/** What syncCatalogTo needs of the owner's catalog (storage/catalog's Catalog). */
export interface CatalogSource {
  head(): ChainHead;
  envelopes(fromSeq?: number): AsyncIterable<{ seq: number; bytes: Uint8Array }>;
}

/** What recoverCatalogFrom needs of the owner's catalog (storage/catalog's Catalog). */
export interface CatalogSink {
  head(): ChainHead;
  /** Verifies every record (signature, chain, decryption) before storing it. */
  importEnvelopes(source: AsyncIterable<Uint8Array>): Promise<ChainHead>;
}

/**
 * Push every record `peer` lacks of this home's log. Throws CatalogSyncError
 * 'fork' when the host's head is a record this catalog does not have, and
 * 'behind' when the host holds more records than this catalog (this home's state
 * is older than its copy: recover it first), before sending anything.
 */
export async function syncCatalogTo(service: CatalogSyncService, peer: PeerId, catalog: CatalogSource, options: CatalogCallOptions = {}): Promise<CatalogPushResult> {
  const hostHead = await service.head(peer, options);
  const local = catalog.head();
  if (hostHead.seq > local.seq) {
    throw new CatalogSyncError('behind', local.seq + 1, hostHead,
      `relative ${peer} holds this home's catalog up to record ${hostHead.seq}, but this catalog ends at record ${local.seq}: it is older than the copy there; recover the catalog from that relative before backing up`);
  }
  return service.push(peer, hostHead, recordsAfter(catalog, hostHead, peer), options);
}

/**
 * Pull this home's log back from `peer` into `catalog`, from the catalog's own
 * head on (so an interrupted recovery resumes); the catalog checks every record.
 */
export async function recoverCatalogFrom(service: CatalogSyncService, peer: PeerId, catalog: CatalogSink, options: CatalogCallOptions = {}): Promise<{ head: ChainHead; pulled: number }> {
  const before = catalog.head();
  // Starting at the held head, not after it: the catalog then checks that the
  // relative's log runs through the record it already has.
  const head = await catalog.importEnvelopes(service.pull(peer, Math.max(1, before.seq), options));
  return { head, pulled: head.seq - before.seq };
}

/** The records after `hostHead`, once the catalog's own record at hostHead is known to be the host's. */
async function* recordsAfter(catalog: CatalogSource, hostHead: ChainHead, peer: PeerId): AsyncGenerator<Uint8Array> {
  let seen = hostHead.seq === 0;
  for await (const { seq, bytes } of catalog.envelopes(Math.max(1, hostHead.seq))) {
    if (!seen) {
      if (seq !== hostHead.seq || envelopeHash(bytes) !== hostHead.hash) {
        throw new CatalogSyncError('fork', hostHead.seq, hostHead,
          `relative ${peer} holds a record ${hostHead.seq} of this home's catalog other than this catalog's: the logs forked; the relative's copy cannot be extended`);
      }
      seen = true;
      continue;
    }
    yield bytes;
  }
  if (!seen) throw new Error(`this catalog has no record ${hostHead.seq} though its head is past it: run catalog verify`);
}

export function parseRequest(message: Record<string, unknown>, maxBatchBytes: number): CatalogRequest {
  switch (message.op) {
    case 'head':
      return { op: 'head' };
    case 'push': {
      const count = wholeNumber(message.count, 'push request: count');
      const bytes = wholeNumber(message.bytes, 'push request: bytes');
      if (count === 0) throw new MalformedMessageError('push request: count must be 1 or more');
      if (bytes > maxBatchBytes) throw new MalformedMessageError(`push request: ${bytes} bytes is over the ${maxBatchBytes}-byte batch limit`);
      return { op: 'push', from: chainHead(message.from, 'push request: from'), count, bytes };
    }
    case 'pull': {
      const fromSeq = wholeNumber(message.fromSeq, 'pull request: fromSeq');
      if (fromSeq === 0) throw new MalformedMessageError('pull request: fromSeq must be 1 or more');
      return { op: 'pull', fromSeq };
    }
    default:
      throw new MalformedMessageError(`unknown ${CATALOG_PROTOCOL} request op ${JSON.stringify(message.op)?.slice(0, 40)}`);
  }
}

function parseAcceptance(peer: PeerId, reply: Record<string, unknown>): { head: ChainHead } {
  if (reply.ok !== true) throw new ProtocolViolationError(`relative ${peer} answered a catalog request with neither an acceptance nor a refusal`);
  return { head: chainHead(reply.head, 'catalog reply: head') };
}

const REFUSAL_CODES: readonly string[] = ['malformed', 'signature', 'replay', 'gap', 'fork', 'quota'] satisfies Array<ChainErrorCode | 'quota'>;

function parseRefusal(peer: PeerId, reply: Record<string, unknown>): CatalogSyncError {
  const { code, seq, error } = reply;
  if (typeof code !== 'string' || !REFUSAL_CODES.includes(code) || typeof error !== 'string' || (seq !== null && !Number.isSafeInteger(seq))) {
    throw new ProtocolViolationError(`relative ${peer} refused a catalog push without a valid reason`);
  }
  return new CatalogSyncError(code as ChainErrorCode | 'quota', seq === null ? undefined : (seq as number), chainHead(reply.head, 'push refusal: head'),
    `relative ${peer} refused the catalog push: ${error.slice(0, MAX_ERROR_LENGTH)}`);
}

function chainHead(value: unknown, what: string): ChainHead {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new MalformedMessageError(`${what} must be an object {seq, hash}`);
  const { seq, hash } = value as Record<string, unknown>;
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) throw new MalformedMessageError(`${what}.hash must be 64 lowercase hex digits`);
  const head = { seq: wholeNumber(seq, `${what}.seq`), hash };
  if (head.seq === 0 && hash !== ZERO_HASH) throw new MalformedMessageError(`${what}: an empty log's hash is all zeros`);
  return head;
}

function wholeNumber(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new MalformedMessageError(`${what} must be a whole number, 0 or more`);
  return value as number;
}

/**
 * Close our writable end once the exchange is complete. The other side closes
 * too, and when that ends the stream while close() still waits for a 'drain'
 * (the muxer's send window was used up by the last bytes) close() rejects with
 * the close event: the stream did end cleanly, so only a reset is an error.
 */
async function closeGracefully(stream: Stream, signal?: AbortSignal): Promise<void> {
  try {
    await stream.close(signal ? { signal } : {});
  } catch (err) {
    if (stream.status !== 'closed') throw err instanceof Error ? err : new Error(`the stream was ${stream.status} while closing`);
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
