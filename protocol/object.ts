// /hearth/object/1: an owner stores its encrypted objects at a relative's home
// (the host) and reads them back. One request per stream; the handler and the
// client side sit together, as in js-libp2p's ping service. Wire format and
// limits: docs/object-protocol.md.
import { Readable } from 'node:stream';
import type { Connection, PeerId, Startable, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface';
import {
  DEFAULT_IDLE_TIMEOUT,
  MalformedMessageError,
  ProtocolViolationError,
  sendBytes,
  sendExactly,
  sendJson,
  StreamReader,
} from './messages.ts';
import {
  HostStoreError,
  isValidMerkleRoot,
  isValidObjectId,
  type DeclaredObject,
  type HostedObjectInfo,
  type HostStore,
  type OwnerUsage,
  type Upload,
} from '../storage/hoststore/host-store.ts';
import { MerkleBuilder } from '../storage/merkle.ts';
import { limited, UNLIMITED, type RateLimit } from './rate-limit.ts';
import type { ByteRange, ObjectSource } from '../storage/tier/tier.ts';

export const PROTOCOL = '/hearth/object/1';
/** Requests are a few short fields; anything longer is an attack or a bug. */
export const MAX_REQUEST_SIZE = 4096;
/** Responses carry at most one list batch. */
export const MAX_RESPONSE_SIZE = 1024 * 1024;
export const LIST_BATCH = 1000;
// An owner runs a few transfers to each relative at once; more is misbehaviour.
export const MAX_INBOUND_STREAMS = 16;
export const MAX_OUTBOUND_STREAMS = 16;
/** How much of an object's source a put reads at a time. */
export const SOURCE_CHUNK = 1024 * 1024;
/**
 * Bytes a host lets wait for its upload writer before pausing the stream: bytes
 * kept waiting are promoted by V8 and cost full collections (see STREAM_WINDOW in
 * node/host.ts); the writer holds 4 MiB of its own.
 */
const RECEIVE_HIGH_WATER_MARK = 1024 * 1024;

export type ObjectRequest =
  | { op: 'put'; id: string; size: number; merkleRoot: string; leafSize: number }
  | { op: 'get'; id: string; offset?: number; length?: number }
  | { op: 'stat'; id: string }
  | { op: 'list' }
  | { op: 'delete'; id: string }
  | { op: 'usage' };

/** Error codes a host answers with (HostStore's), plus EINTERNAL for the rest. */
export type ObjectErrorCode = HostStoreError['code'] | 'EINTERNAL';

/** The host refused a request and said why. */
export class RemoteObjectError extends Error {
  readonly code: ObjectErrorCode;
  /** With ENOSPC: the bytes the host said were free on its disk. */
  readonly free: number | undefined;
  constructor(code: ObjectErrorCode, message: string, free?: number) {
    super(message);
    this.name = 'RemoteObjectError';
    this.code = code;
    this.free = free;
  }
}

/**
 * The daemon's bandwidth caps and its record of transfer rates, shared by the
 * host and client sides: every object's bytes to relatives (puts sent, gets
 * served) pass `upload`, every byte from them (puts received, gets read) passes
 * `download`. Directions are this home's: 'to' the relative or 'from' it.
 */
export interface TransferControl {
  upload: RateLimit;
  download: RateLimit;
  /** Told of each object transfer that completed; times from performance.now(). */
  transferred?(peer: string, direction: 'to' | 'from', bytes: number, startedAt: number, endedAt: number): void;
}

const NO_CONTROL: TransferControl = { upload: UNLIMITED, download: UNLIMITED };

const byteLength = (batch: readonly Uint8Array[]): number => batch.reduce((n, chunk) => n + chunk.byteLength, 0);

export interface ProtocolRegistrar {
  handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>;
  unhandle(protocol: string): Promise<void>;
}

export interface ObjectServiceComponents {
  /** A libp2p node, or its registrar when used as a libp2p service. */
  registrar: ProtocolRegistrar;
}

export interface ObjectServiceInit {
  store: HostStore;
  /** Second line after the connection gater: streams from anyone else are reset. */
  isMember(peer: PeerId): boolean | Promise<boolean>;
  /** Abort a stream whose peer sends nothing for this long while data is expected. */
  idleTimeout?: number;
  maxInboundStreams?: number;
  maxOutboundStreams?: number;
  /** Where refusals go (a full disk, a quota, a refused id), one line each. */
  log?: (line: string) => void;
  transfers?: TransferControl;
}

/** The host side: serves the relatives' requests from a HostStore. */
export class ObjectService implements Startable {
  readonly protocol = PROTOCOL;
  readonly #registrar: ProtocolRegistrar;
  readonly #store: HostStore;
  readonly #isMember: (peer: PeerId) => boolean | Promise<boolean>;
  readonly #idleTimeout: number;
  readonly #maxInboundStreams: number;
  readonly #maxOutboundStreams: number;
  readonly #log: (line: string) => void;
  readonly #transfers: TransferControl;
  #started = false;

  constructor(components: ObjectServiceComponents, init: ObjectServiceInit) {
    this.#registrar = components.registrar;
    this.#store = init.store;
    this.#isMember = init.isMember;
    this.#idleTimeout = init.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
    this.#maxInboundStreams = init.maxInboundStreams ?? MAX_INBOUND_STREAMS;
    this.#maxOutboundStreams = init.maxOutboundStreams ?? MAX_OUTBOUND_STREAMS;
    this.#log = init.log ?? (() => {});
    this.#transfers = init.transfers ?? NO_CONTROL;
  }

  readonly [Symbol.toStringTag] = '@hearth/object';

  async start(): Promise<void> {
    await this.#registrar.handle(this.protocol, (stream, connection) => this.#handle(stream, connection), {
      maxInboundStreams: this.#maxInboundStreams,
      maxOutboundStreams: this.#maxOutboundStreams,
      // Bulk data never goes through a relay: relays apply no backpressure.
      runOnLimitedConnection: false,
    });
    this.#started = true;
  }

  async stop(): Promise<void> {
    await this.#registrar.unhandle(this.protocol);
    this.#started = false;
  }

  isStarted(): boolean {
    return this.#started;
  }

  async #handle(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer;
    const reader = new StreamReader(stream, { idleTimeout: this.#idleTimeout, highWaterMark: RECEIVE_HIGH_WATER_MARK });
    try {
      if (!(await this.#isMember(peer))) throw new Error(`${peer} is not a family member`);
      const request = parseRequest(await reader.readJson(MAX_REQUEST_SIZE));
      try {
        await this.#serve(request, peer.toString(), stream, reader);
      } catch (caught) {
        // A refusal the owner can act on is an answer; anything else resets the stream.
        const err = await this.#store.refusalFor(caught);
        if (!(err instanceof HostStoreError)) throw err;
        if (err.code !== 'ENOOBJECT') this.#log(`${request.op}${'id' in request ? ` of ${request.id}` : ''} from ${peer} refused: ${err.message}`);
        if (stream.writeStatus !== 'writable') throw err;
        await sendJson(stream, { error: err.message, code: err.code, ...(err.free === undefined ? {} : { free: err.free }) }, MAX_RESPONSE_SIZE);
      }
      await stream.close();
    } catch (err) {
      stream.log.error('%s request from %p failed - %e', this.protocol, peer, err);
      stream.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      reader.detach();
    }
  }

  async #serve(request: ObjectRequest, owner: string, stream: Stream, reader: StreamReader): Promise<void> {
    const store = this.#store;
    switch (request.op) {
      case 'put':
        return this.#receive(owner, await store.beginPut(owner, request.id, request), stream, reader);
      case 'get': {
        const read = await store.read(owner, request.id, request);
        await sendJson(stream, { size: read.size, offset: read.offset, length: read.length }, MAX_RESPONSE_SIZE);
        const startedAt = performance.now();
        for await (const chunk of read.stream) {
          for await (const part of limited(chunk as Buffer, this.#transfers.upload)) await sendBytes(stream, part);
        }
        this.#transfers.transferred?.(owner, 'to', read.length, startedAt, performance.now());
        return;
      }
      case 'stat':
        return sendJson(stream, await store.stat(owner, request.id), MAX_RESPONSE_SIZE);
      case 'list': {
        let batch: HostedObjectInfo[] = [];
        for await (const info of store.list(owner)) {
          batch.push(info);
          if (batch.length === LIST_BATCH) {
            await sendJson(stream, { objects: batch, more: true }, MAX_RESPONSE_SIZE);
            batch = [];
          }
        }
        return sendJson(stream, { objects: batch, more: false }, MAX_RESPONSE_SIZE);
      }
      case 'delete':
        return sendJson(stream, { ok: true, deleteAt: (await store.delete(owner, request.id)) ?? null }, MAX_RESPONSE_SIZE);
      case 'usage': {
        const usage = await store.usage(owner);
        // JSON has no Infinity: null means no quota.
        return sendJson(stream, { ...usage, quota: Number.isFinite(usage.quota) ? usage.quota : null }, MAX_RESPONSE_SIZE);
      }
    }
  }

  async #receive(owner: string, upload: Upload, stream: Stream, reader: StreamReader): Promise<void> {
    const superseded = (): void => stream.abort(upload.signal.reason as Error);
    upload.signal.addEventListener('abort', superseded);
    const startedAt = performance.now();
    try {
      await sendJson(stream, { offset: upload.offset }, MAX_RESPONSE_SIZE);
      // Awaiting the download cap and each disk write before taking the next batch
      // is the backpressure: the reader pauses the stream while batches pile up.
      for await (const batch of reader.readBytes(upload.size - upload.offset, this.#transfers.download.slice())) {
        await this.#transfers.download.take(byteLength(batch), upload.signal);
        await upload.write(batch);
      }
      await upload.finish();
    } finally {
      upload.signal.removeEventListener('abort', superseded);
      await upload.abandon();
    }
    this.#transfers.transferred?.(owner, 'from', upload.size - upload.offset, startedAt, performance.now());
    await sendJson(stream, { ok: true }, MAX_RESPONSE_SIZE);
  }
}

/** For `createLibp2p({ services: { object: objectService(init) } })`. */
export function objectService(init: ObjectServiceInit): (components: ObjectServiceComponents) => ObjectService {
  return (components) => new ObjectService(components, init);
}

export function parseRequest(message: Record<string, unknown>): ObjectRequest {
  const { op } = message;
  const id = (): string => {
    if (!isValidObjectId(message.id)) throw new MalformedMessageError(`${String(op)} request has an invalid object id`);
    return message.id;
  };
  const count = (name: string, optional: boolean): number | undefined => {
    const value = message[name];
    if (value === undefined && optional) return undefined;
    if (!Number.isSafeInteger(value) || (value as number) < 0) throw new MalformedMessageError(`${String(op)} request field ${name} must be a non-negative integer`);
    return value as number;
  };
  switch (op) {
    case 'put': {
      if (!isValidMerkleRoot(message.merkleRoot)) throw new MalformedMessageError('put request field merkleRoot must be 64 lowercase hex digits');
      // Any count parses; the store refuses a leaf size it does not index, with an answer.
      return { op, id: id(), size: count('size', false) as number, merkleRoot: message.merkleRoot, leafSize: count('leafSize', false) as number };
    }
    case 'get':
      return { op, id: id(), offset: count('offset', true), length: count('length', true) };
    case 'stat':
    case 'delete':
      return { op, id: id() };
    case 'list':
    case 'usage':
      return { op };
    default:
      throw new MalformedMessageError(`unknown request op ${JSON.stringify(op)}`);
  }
}

export interface Dialer {
  dialProtocol(peer: PeerId, protocols: string, options?: { signal?: AbortSignal }): Promise<Stream>;
}

export interface ObjectClientInit {
  /** A libp2p node that can reach the host (its addresses known to the peer store). */
  node: Dialer;
  peerId: PeerId;
  idleTimeout?: number;
  transfers?: TransferControl;
}

/** The Merkle root a put declares, with the leaf size it was computed with. */
export type MerkleRootOf = Omit<DeclaredObject, 'size'>;

export interface PutResult {
  /** Bytes the host already had, so the transfer started there. */
  offset: number;
  /** Bytes sent in this call. */
  sent: number;
}

export interface GetResult {
  /** The whole object's size. */
  size: number;
  offset: number;
  length: number;
  stream: Readable;
}

interface Call {
  stream: Stream;
  reader: StreamReader;
  cleanup(): void;
}

/** The owner side, talking to one host. */
export class ObjectClient {
  readonly peerId: PeerId;
  readonly #node: Dialer;
  readonly #idleTimeout: number;
  readonly #transfers: TransferControl;

  constructor(init: ObjectClientInit) {
    this.#node = init.node;
    this.peerId = init.peerId;
    this.#idleTimeout = init.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
    this.#transfers = init.transfers ?? NO_CONTROL;
  }

  /**
   * Store an object. The host answers with the bytes it already holds from an
   * earlier attempt, and only the rest is read from source.open(offset) and sent.
   * `root` is the Merkle root of the whole object's bytes, which the host checks
   * before the object becomes visible (EHASH when they differ).
   */
  async put(id: string, source: ObjectSource, root: MerkleRootOf, signal?: AbortSignal): Promise<PutResult> {
    const request: ObjectRequest = { op: 'put', id, size: source.size, merkleRoot: root.merkleRoot, leafSize: root.leafSize };
    return this.#withCall(request, signal, async ({ stream, reader }) => {
      const { offset } = await readReply(reader);
      if (!Number.isSafeInteger(offset) || (offset as number) < 0 || (offset as number) > source.size) {
        throw new ProtocolViolationError(`host answered put with offset ${String(offset)} for an object of ${source.size} bytes`);
      }
      const start = offset as number;
      if (start === source.size) {
        await readReply(reader);
        return { offset: start, sent: 0 };
      }
      // Read while sending: a host that fails mid-put (a full disk) answers why and
      // stops reading, and that answer is the error, not the stalled or reset send.
      // A send that fails while the stream is still writable failed on our side (the
      // source's copy is gone or unreadable, or gave the wrong length): the host is
      // still waiting for bytes and will not answer, so that failure is the error at once.
      const startedAt = performance.now();
      const answer = readReply(reader);
      const sending = sendExactly(stream, source.open(start), source.size - start, { signal, limit: this.#transfers.upload });
      try {
        await Promise.race([sending, answer]);
      } catch (err) {
        sending.catch(() => {});
        answer.catch(() => {});
        if (stream.writeStatus === 'writable') throw err;
        const refusal = await answer.then(() => undefined, (answered: unknown) => (answered instanceof RemoteObjectError ? answered : undefined));
        throw refusal ?? err;
      }
      const sent = await sending;
      await answer;
      this.#transfers.transferred?.(this.peerId.toString(), 'to', sent, startedAt, performance.now());
      return { offset: start, sent };
    });
  }

  /** Read a whole object or a byte range; the caller must consume or destroy the stream. */
  async get(id: string, range?: Partial<ByteRange>, signal?: AbortSignal): Promise<GetResult> {
    const call = await this.#open({ op: 'get', id, offset: range?.offset, length: range?.length }, signal);
    const { stream, reader } = call;
    let header: Record<string, unknown>;
    try {
      header = await readReply(reader);
      for (const field of ['size', 'offset', 'length']) {
        if (!Number.isSafeInteger(header[field])) throw new ProtocolViolationError(`host answered get without a valid ${field}`);
      }
    } catch (err) {
      abortCall(call, err);
      throw err;
    }
    const length = header.length as number;
    const transfers = this.#transfers;
    const peer = this.peerId.toString();
    async function* body(): AsyncGenerator<Uint8Array> {
      let complete = false;
      const startedAt = performance.now();
      try {
        for await (const batch of reader.readBytes(length, transfers.download.slice())) {
          await transfers.download.take(byteLength(batch), signal);
          yield* batch;
        }
        complete = true;
        transfers.transferred?.(peer, 'from', length, startedAt, performance.now());
        await stream.close();
      } finally {
        // Also reached when the consumer destroys the stream early.
        if (!complete) abortCall(call, new Error(`read of object ${id} stopped early`));
        else call.cleanup();
      }
    }
    return { size: header.size as number, offset: header.offset as number, length, stream: Readable.from(body(), { objectMode: false }) };
  }

  async stat(id: string, signal?: AbortSignal): Promise<HostedObjectInfo> {
    return this.#withCall({ op: 'stat', id }, signal, async ({ reader }) => parseObjectInfo(await readReply(reader)));
  }

  async *list(signal?: AbortSignal): AsyncGenerator<HostedObjectInfo> {
    const call = await this.#open({ op: 'list' }, signal);
    let complete = false;
    try {
      for (;;) {
        const reply = await readReply(call.reader);
        if (!Array.isArray(reply.objects)) throw new ProtocolViolationError('host answered list without an objects array');
        for (const info of reply.objects) yield parseObjectInfo(info);
        if (reply.more !== true) break;
      }
      complete = true;
      await call.stream.close();
    } finally {
      if (!complete) abortCall(call, new Error('object list stopped early'));
      else call.cleanup();
    }
  }

  /** Ask the host to delete; returns when it will really be purged (undefined: nothing stored). */
  async delete(id: string, signal?: AbortSignal): Promise<number | undefined> {
    return this.#withCall({ op: 'delete', id }, signal, async ({ reader }) => {
      const { deleteAt } = await readReply(reader);
      return typeof deleteAt === 'number' ? deleteAt : undefined;
    });
  }

  async usage(signal?: AbortSignal): Promise<OwnerUsage> {
    return this.#withCall({ op: 'usage' }, signal, async ({ reader }) => {
      const reply = await readReply(reader);
      return {
        used: Number(reply.used),
        quota: reply.quota === null ? Infinity : Number(reply.quota),
        pendingDeletionBytes: Number(reply.pendingDeletionBytes),
      };
    });
  }

  async #open(request: ObjectRequest, signal?: AbortSignal): Promise<Call> {
    signal?.throwIfAborted();
    const stream = await this.#node.dialProtocol(this.peerId, PROTOCOL, { signal });
    const reader = new StreamReader(stream, { idleTimeout: this.#idleTimeout });
    const onAbort = (): void => stream.abort(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const call: Call = {
      stream,
      reader,
      cleanup: () => {
        signal?.removeEventListener('abort', onAbort);
        reader.detach();
      },
    };
    try {
      await sendJson(stream, request, MAX_REQUEST_SIZE, { signal });
    } catch (err) {
      abortCall(call, err);
      throw err;
    }
    return call;
  }

  async #withCall<T>(request: ObjectRequest, signal: AbortSignal | undefined, run: (call: Call) => Promise<T>): Promise<T> {
    const call = await this.#open(request, signal);
    try {
      const result = await run(call);
      await call.stream.close();
      call.cleanup();
      return result;
    } catch (err) {
      abortCall(call, err);
      throw err;
    }
  }
}

function abortCall(call: Call, err: unknown): void {
  call.stream.abort(err instanceof Error ? err : new Error(String(err)));
  call.cleanup();
}

/** Read the host's answer; a refusal becomes a RemoteObjectError. */
async function readReply(reader: StreamReader): Promise<Record<string, unknown>> {
  const reply = await reader.readJson(MAX_RESPONSE_SIZE);
  if (typeof reply.error === 'string') {
    const code = typeof reply.code === 'string' ? (reply.code as ObjectErrorCode) : 'EINTERNAL';
    throw new RemoteObjectError(code, reply.error, Number.isSafeInteger(reply.free) ? (reply.free as number) : undefined);
  }
  return reply;
}

function parseObjectInfo(value: unknown): HostedObjectInfo {
  const info = value as Record<string, unknown>;
  if (!isValidObjectId(info?.name) || !Number.isSafeInteger(info.size)) throw new ProtocolViolationError('host sent an invalid object entry');
  const result: HostedObjectInfo = { name: info.name, size: info.size as number };
  if (typeof info.deleteAt === 'number') result.deleteAt = info.deleteAt;
  return result;
}

/** Merkle root (hex) of a source's whole contents, for owners that do not already know it. */
export async function merkleRootOfSource(source: ObjectSource, leafSize: number, signal?: AbortSignal): Promise<string> {
  const merkle = new MerkleBuilder(leafSize);
  for await (const chunk of source.open(0)) {
    signal?.throwIfAborted();
    merkle.update(chunk as Buffer);
  }
  if (merkle.size !== source.size) throw new Error(`object source has ${merkle.size} bytes but declared ${source.size}`);
  return merkle.digest();
}
