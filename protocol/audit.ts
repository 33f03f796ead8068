// /hearth/audit/1: an owner checks that a relative still holds its objects. It
// sends a fresh random seed and, per object, how many leaves to sample; the host
// derives the leaf indices from the seed (so it cannot pick easy ones), reads them
// and answers with each leaf and its Merkle path; the owner checks them against
// the roots it kept. This module holds the sampling rules both sides share, the
// host's service and the owner's client; node/audit.ts plans and judges audits.
// Wire format, the sampling math and limits: docs/audit.md.
import { createHmac, createSecretKey } from 'node:crypto';
import type { Connection, PeerId, Startable, Stream, StreamMessageEvent } from '@libp2p/interface';
import { encodeFrame, encodeJsonFrame, MalformedMessageError, ProtocolViolationError, sendBytes, sendJson, StreamReader } from './messages.ts';
import type { Dialer, ProtocolRegistrar } from './object.ts';
import { HostStoreError, isValidObjectId, type HostStore } from '../storage/hoststore/host-store.ts';
import { MerkleIndexStore } from '../storage/hoststore/merkle-index.ts';
import { HOSTED_LEAF_SIZE } from '../storage/hoststore/merkle-index-file.ts';
import { merkleLeafCount, type MerkleProof } from '../storage/merkle.ts';

export const AUDIT_PROTOCOL = '/hearth/audit/1';
export const AUDIT_SEED_BYTES = 32;
const HASH_SIZE = 32;
/** index (u64 BE) and leaf length (u32 BE) before each sample's leaf. */
const SAMPLE_HEADER_BYTES = 12;

export const AUDIT_LIMITS = {
  /** One request: a seed and up to maxObjectsPerRequest short object entries. */
  maxRequestBytes: 256 * 1024,
  /** One answer header: an id and a count, or a refusal with a short message. */
  maxAnswerHeaderBytes: 1024,
  maxObjectsPerRequest: 1000,
  maxSamplesPerObject: 4096,
  maxSamplesPerRequest: 16384,
  /** The one leaf size audited: the one hosts index (a leaf size of the owner's choosing would size the host's work). */
  leafSize: HOSTED_LEAF_SIZE,
  /** A path has one hash per tree level: 64 covers any object size. */
  maxPathHashes: 64,
  /** The host gives up on one request after this (the owner's own deadline is usually shorter). */
  requestTimeoutMs: 30 * 60_000,
  /** Either side fails a stream whose peer takes nothing or sends nothing for this long. */
  idleTimeoutMs: 60_000,
  maxInboundStreams: 2,
  maxOutboundStreams: 2,
};

/** What one audit must be able to detect, and the per-object floor. */
export const AUDIT_TARGET = {
  /** Fraction of the owner's leaves a host may have lost or damaged... */
  lossFraction: 0.01,
  /** ...and the probability with which one audit must catch that. */
  confidence: 0.99,
  minSamplesPerObject: 2,
};

// ---- Sampling (both sides) ----

/**
 * Samples one audit needs so that a host missing `lossFraction` of the leaves
 * answers every one of them from intact leaves with probability at most
 * 1 - confidence: (1 - f)^n <= 1 - c, so n = ceil(ln(1 - c) / ln(1 - f)). 459 for 1% and 99%.
 */
export function samplesNeeded(lossFraction: number = AUDIT_TARGET.lossFraction, confidence: number = AUDIT_TARGET.confidence): number {
  if (!(lossFraction > 0 && lossFraction < 1)) throw new RangeError(`loss fraction must be between 0 and 1, got ${lossFraction}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be between 0 and 1, got ${confidence}`);
  return Math.ceil(Math.log(1 - confidence) / Math.log(1 - lossFraction));
}

/**
 * Samples per object: `total` shared in proportion to leaf counts (rounded up),
 * at least `minPerObject`, and never more than the object's leaves (then every
 * leaf is checked). Each object getting at least its proportional share is what
 * keeps the whole audit's guarantee however the damage is spread (docs/audit.md).
 */
export function allocateSamples(leafCounts: readonly number[], total: number, minPerObject: number = AUDIT_TARGET.minSamplesPerObject): number[] {
  const allLeaves = leafCounts.reduce((sum, count) => sum + count, 0);
  return leafCounts.map((count) => (count === 0 ? 0 : Math.min(count, Math.max(minPerObject, Math.ceil((total * count) / allLeaves)))));
}

/**
 * The leaves of object `id` sampled by `seed`: min(count, leafCount) distinct
 * indices, ascending. Draw i is HMAC-SHA256(seed, "hearth/audit/1 sample" 0x00 id
 * 0x00 i as u32 BE), its first 8 bytes as a big-endian integer mod leafCount;
 * repeats are skipped. When more than half the leaves are wanted, the draws pick
 * the leaves left out instead, so the number of draws stays near the count.
 */
export function sampleIndices(seed: Uint8Array, id: string, leafCount: number, count: number): number[] {
  if (seed.length !== AUDIT_SEED_BYTES) throw new RangeError(`audit seed must be ${AUDIT_SEED_BYTES} bytes, got ${seed.length}`);
  const wanted = Math.min(count, leafCount);
  const all = (): number[] => Array.from({ length: leafCount }, (_, index) => index);
  if (wanted === leafCount) return all();
  const complement = wanted * 2 > leafCount;
  const draws = complement ? leafCount - wanted : wanted;
  const prefix = Buffer.from(`hearth/audit/1 sample\0${id}\0`, 'utf8');
  const counter = Buffer.alloc(4);
  const chosen = new Set<number>();
  const modulus = BigInt(leafCount);
  // One key object for all draws: importing the raw key each time costs more than the HMAC.
  const key = createSecretKey(seed);
  for (let i = 0; chosen.size < draws; i++) {
    counter.writeUInt32BE(i);
    const mac = createHmac('sha256', key).update(prefix).update(counter).digest();
    chosen.add(Number(mac.readBigUInt64BE(0) % modulus));
  }
  if (complement) return all().filter((index) => !chosen.has(index));
  return [...chosen].sort((a, b) => a - b);
}

/** Byte length of a leaf: leafSize, except the last, which holds the rest. */
export function leafLength(index: number, size: number, leafSize: number): number {
  return Math.min(leafSize, size - index * leafSize);
}

// ---- Messages ----

export interface AuditRequestItem {
  id: string;
  /** The object's size as the owner recorded it: it fixes the leaf count, hence the indices. */
  size: number;
  leafSize: number;
  samples: number;
}

export interface AuditRequest {
  seed: Uint8Array;
  objects: AuditRequestItem[];
}

/** Why a host cannot answer for an object. */
export type AuditRefusal = 'missing' | 'size' | 'unreadable';
const REFUSALS: readonly string[] = ['missing', 'size', 'unreadable'];

export type AuditAnswer =
  | { id: string; proofs: MerkleProof[] }
  | { id: string; error: AuditRefusal; message: string };

export function parseAuditRequest(message: Record<string, unknown>): AuditRequest {
  if (message.op !== 'audit') throw new MalformedMessageError(`unknown request op ${JSON.stringify(message.op)}`);
  if (typeof message.seed !== 'string' || !/^[0-9a-f]{64}$/.test(message.seed)) throw new MalformedMessageError('audit request seed must be 64 lowercase hex digits');
  const { objects } = message;
  if (!Array.isArray(objects) || objects.length === 0 || objects.length > AUDIT_LIMITS.maxObjectsPerRequest) {
    throw new MalformedMessageError(`audit request must list 1 to ${AUDIT_LIMITS.maxObjectsPerRequest} objects`);
  }
  let samples = 0;
  const items = objects.map((value: unknown): AuditRequestItem => {
    const item = (value ?? {}) as Record<string, unknown>;
    if (!isValidObjectId(item.id)) throw new MalformedMessageError('audit request has an invalid object id');
    const whole = (name: string, max: number): number => {
      const n = item[name];
      if (!Number.isSafeInteger(n) || (n as number) < 0 || (n as number) > max) throw new MalformedMessageError(`audit request field ${name} of ${item.id} must be a whole number up to ${max}`);
      return n as number;
    };
    const size = whole('size', Number.MAX_SAFE_INTEGER);
    const leafSize = item.leafSize;
    if (leafSize !== AUDIT_LIMITS.leafSize) throw new MalformedMessageError(`audit request leafSize of ${item.id} must be ${AUDIT_LIMITS.leafSize}`);
    const sampled = whole('samples', Math.min(AUDIT_LIMITS.maxSamplesPerObject, merkleLeafCount(size, leafSize)));
    samples += sampled;
    return { id: item.id, size, leafSize, samples: sampled };
  });
  if (samples > AUDIT_LIMITS.maxSamplesPerRequest) throw new MalformedMessageError(`audit request asks ${samples} samples, over ${AUDIT_LIMITS.maxSamplesPerRequest}`);
  return { seed: Buffer.from(message.seed, 'hex'), objects: items };
}

/** A sample frame: index (u64 BE), leaf length (u32 BE), the leaf, then the path's 32-byte hashes. */
export function encodeSample(proof: MerkleProof): Buffer {
  const frame = Buffer.allocUnsafe(SAMPLE_HEADER_BYTES + proof.leaf.length + proof.path.length * HASH_SIZE);
  frame.writeBigUInt64BE(BigInt(proof.index), 0);
  frame.writeUInt32BE(proof.leaf.length, 8);
  proof.leaf.copy(frame, SAMPLE_HEADER_BYTES);
  let at = SAMPLE_HEADER_BYTES + proof.leaf.length;
  for (const sibling of proof.path) {
    frame.set(sibling, at);
    at += HASH_SIZE;
  }
  return frame;
}

export function decodeSample(frame: Buffer): MerkleProof {
  if (frame.length < SAMPLE_HEADER_BYTES) throw new MalformedMessageError('audit sample frame is shorter than its header');
  const index = frame.readBigUInt64BE(0);
  if (index > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedMessageError('audit sample index is out of range');
  const leafBytes = frame.readUInt32BE(8);
  const pathBytes = frame.length - SAMPLE_HEADER_BYTES - leafBytes;
  if (pathBytes < 0 || pathBytes % HASH_SIZE !== 0) throw new MalformedMessageError('audit sample frame length does not match its leaf length and whole path hashes');
  const path: Buffer[] = [];
  for (let at = SAMPLE_HEADER_BYTES + leafBytes; at < frame.length; at += HASH_SIZE) path.push(frame.subarray(at, at + HASH_SIZE));
  return { index: Number(index), leaf: frame.subarray(SAMPLE_HEADER_BYTES, SAMPLE_HEADER_BYTES + leafBytes), path };
}

function sampleFrameLimit(leafSize: number): number {
  return SAMPLE_HEADER_BYTES + leafSize + AUDIT_LIMITS.maxPathHashes * HASH_SIZE;
}

// ---- Host side ----

/** What proves leaves of stored objects: a MerkleIndexStore, unless a test stands in for a dishonest host. */
export interface LeafProver {
  /** Throws HostStoreError ENOOBJECT when the owner has no such object here. */
  open(owner: string, id: string, leafSize: number): Promise<ProvableObject>;
}

export interface ProvableObject {
  readonly size: number;
  /** Proofs in the order asked. */
  prove(indices: readonly number[]): Promise<MerkleProof[]>;
  close(): Promise<void>;
}

export interface AuditServiceComponents {
  /** A libp2p node, or its registrar when used as a libp2p service. */
  registrar: ProtocolRegistrar;
}

export interface AuditServiceInit {
  store: HostStore;
  /** Second line after the connection gater: streams from anyone else are reset. */
  isMember(peer: PeerId): boolean | Promise<boolean>;
  /** Defaults to a MerkleIndexStore over `store`. */
  prover?: LeafProver;
  requestTimeoutMs?: number;
  maxInboundStreams?: number;
  maxOutboundStreams?: number;
}

/** The host side: answers a relative's audits of its own objects. */
export class AuditService implements Startable {
  readonly protocol = AUDIT_PROTOCOL;
  readonly prover: LeafProver;
  readonly #registrar: ProtocolRegistrar;
  readonly #isMember: (peer: PeerId) => boolean | Promise<boolean>;
  readonly #requestTimeoutMs: number;
  readonly #maxInboundStreams: number;
  readonly #maxOutboundStreams: number;
  #started = false;

  constructor(components: AuditServiceComponents, init: AuditServiceInit) {
    this.#registrar = components.registrar;
    this.#isMember = init.isMember;
    this.prover = init.prover ?? new MerkleIndexStore({ store: init.store });
    this.#requestTimeoutMs = init.requestTimeoutMs ?? AUDIT_LIMITS.requestTimeoutMs;
    this.#maxInboundStreams = init.maxInboundStreams ?? AUDIT_LIMITS.maxInboundStreams;
    this.#maxOutboundStreams = init.maxOutboundStreams ?? AUDIT_LIMITS.maxOutboundStreams;
  }

  readonly [Symbol.toStringTag] = '@hearth/audit';

  async start(): Promise<void> {
    await this.#registrar.handle(this.protocol, (stream, connection) => this.#handle(stream, connection), {
      maxInboundStreams: this.#maxInboundStreams,
      maxOutboundStreams: this.#maxOutboundStreams,
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
    const reader = new StreamReader(stream, { idleTimeout: AUDIT_LIMITS.idleTimeoutMs });
    const timer = setTimeout(() => stream.abort(new Error(`audit request took longer than ${this.#requestTimeoutMs} ms`)), this.#requestTimeoutMs);
    try {
      if (!(await this.#isMember(peer))) throw new Error(`${peer} is not a family member`);
      const request = parseAuditRequest(await reader.readJson(AUDIT_LIMITS.maxRequestBytes));
      // The owner is whoever Noise authenticated: nobody audits (reads) another owner's objects.
      for (const item of request.objects) await this.#answer(stream, peer.toString(), request.seed, item);
      await stream.close();
    } catch (err) {
      stream.log.error('%s request from %p failed - %e', this.protocol, peer, err);
      stream.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      clearTimeout(timer);
      reader.detach();
    }
  }

  async #answer(stream: Stream, owner: string, seed: Uint8Array, item: AuditRequestItem): Promise<void> {
    const answer = await this.#prove(owner, seed, item);
    if ('error' in answer) return sendJson(stream, answer, AUDIT_LIMITS.maxAnswerHeaderBytes);
    await sendJson(stream, { id: item.id, leaves: answer.proofs.length }, AUDIT_LIMITS.maxAnswerHeaderBytes);
    for (const proof of answer.proofs) await sendBytes(stream, encodeFrame(encodeSample(proof)));
  }

  /** All of one object's proofs, or why there are none; read before anything is sent, so a read error is an answer. */
  async #prove(owner: string, seed: Uint8Array, item: AuditRequestItem): Promise<AuditAnswer> {
    let object: ProvableObject;
    try {
      object = await this.prover.open(owner, item.id, item.leafSize);
    } catch (err) {
      return refusal(item.id, err);
    }
    try {
      if (object.size !== item.size) return { id: item.id, error: 'size', message: `object is ${object.size} bytes here, not ${item.size}` };
      return { id: item.id, proofs: await object.prove(sampleIndices(seed, item.id, merkleLeafCount(item.size, item.leafSize), item.samples)) };
    } catch (err) {
      return refusal(item.id, err);
    } finally {
      await object.close();
    }
  }
}

function refusal(id: string, err: unknown): AuditAnswer {
  const message = (err instanceof Error ? err.message : String(err)).slice(0, 400);
  const missing = err instanceof HostStoreError && err.code === 'ENOOBJECT';
  return { id, error: missing ? 'missing' : 'unreadable', message };
}

/** For `createLibp2p({ services: { audit: auditService(init) } })`. */
export function auditService(init: AuditServiceInit): (components: AuditServiceComponents) => AuditService {
  return (components) => new AuditService(components, init);
}

// ---- Owner side ----

export interface AuditCallOptions {
  signal?: AbortSignal;
  /** Fail when the host sends nothing for this long (it may be reading a cold disk). */
  idleTimeout?: number;
  /** Adds the bytes of every frame sent and received on the stream. */
  traffic?: { bytes: number };
}

/**
 * Ask one host for one batch (at most AUDIT_LIMITS' objects and samples) and
 * yield its answers in request order. Checks the framing only: that the answers
 * prove anything is for the caller to judge. Throws ProtocolViolationError when
 * the host breaks the framing; the answers already yielded stand.
 */
export async function* requestAudit(node: Dialer, peer: PeerId, request: AuditRequest, options: AuditCallOptions = {}): AsyncGenerator<AuditAnswer> {
  const { signal } = options;
  signal?.throwIfAborted();
  const frame = encodeJsonFrame({ op: 'audit', seed: Buffer.from(request.seed).toString('hex'), objects: request.objects }, AUDIT_LIMITS.maxRequestBytes);
  const stream = await node.dialProtocol(peer, AUDIT_PROTOCOL, { signal });
  const reader = new StreamReader(stream, { idleTimeout: options.idleTimeout ?? AUDIT_LIMITS.idleTimeoutMs });
  const onAbort = (): void => stream.abort(signal?.reason instanceof Error ? signal.reason : new Error('audit aborted'));
  const onMessage = (evt: StreamMessageEvent): void => {
    if (options.traffic) options.traffic.bytes += evt.data.byteLength;
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  stream.addEventListener('message', onMessage);
  let complete = false;
  try {
    await sendBytes(stream, frame, { signal });
    if (options.traffic) options.traffic.bytes += frame.length;
    for (const item of request.objects) yield await readAnswer(reader, item);
    await stream.close({ signal });
    complete = true;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stream.removeEventListener('message', onMessage);
    reader.detach();
    if (!complete) stream.abort(new Error('audit stopped before the last answer'));
  }
}

async function readAnswer(reader: StreamReader, item: AuditRequestItem): Promise<AuditAnswer> {
  const header = await reader.readJson(AUDIT_LIMITS.maxAnswerHeaderBytes);
  if (typeof header.id !== 'string') throw new MalformedMessageError('audit answer has no object id');
  if (header.error !== undefined) {
    if (typeof header.error !== 'string' || !REFUSALS.includes(header.error)) throw new MalformedMessageError(`audit answer has an unknown error ${JSON.stringify(header.error)}`);
    return { id: header.id, error: header.error as AuditRefusal, message: String(header.message ?? '') };
  }
  const { leaves } = header;
  if (!Number.isSafeInteger(leaves) || (leaves as number) < 0 || (leaves as number) > item.samples) {
    throw new ProtocolViolationError(`host announced ${String(leaves)} leaves of ${item.id} where ${item.samples} were asked`);
  }
  const proofs: MerkleProof[] = [];
  for (let i = 0; i < (leaves as number); i++) proofs.push(decodeSample(await reader.readFrame(sampleFrameLimit(item.leafSize))));
  return { id: header.id, proofs };
}
