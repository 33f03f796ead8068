// The owner's audit of one relative: every object of this home placed there is
// sampled (docs/audit.md has the math), the relative proves the sampled leaves
// over /hearth/audit/1, and each proof is checked against the Merkle root the
// catalog kept. A relative that does not answer within the deadline, or breaks
// off, is asked again with the same seed, so for the same leaves: an honest host
// only needed more time, and a host that saw the seed and stopped short of an
// object it cannot prove gains no second draw. Objects still unanswered then fail.
// A relative that cannot be reached at all (its computer sleeps) has not failed:
// only a challenge it took and answered wrongly, or not in time, is a failure.
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PeerId } from '@libp2p/interface';
import type { Catalog } from '../storage/catalog/catalog.ts';
import { merkleLeafCount, verifyMerkleProof } from '../storage/merkle.ts';
import { ProtocolViolationError } from '../protocol/messages.ts';
import type { Dialer } from '../protocol/object.ts';
import {
  allocateSamples, AUDIT_LIMITS, AUDIT_SEED_BYTES, AUDIT_TARGET, leafLength, requestAudit, sampleIndices, samplesNeeded,
  type AuditAnswer, type AuditRequestItem,
} from '../protocol/audit.ts';

/** What the owner knows of an object: enough to ask for samples and check them. */
export interface AuditObject {
  id: string;
  /** Encrypted size. */
  size: number;
  merkleRoot: string;
  leafSize: number;
}

export interface PlannedObject extends AuditObject {
  leafCount: number;
  samples: number;
}

export interface AuditTarget {
  lossFraction?: number;
  confidence?: number;
  minSamplesPerObject?: number;
}

export interface AuditPlan {
  objects: PlannedObject[];
  samples: number;
  bytes: number;
  /** Most bytes the audit can move, both directions, framing included (docs/audit.md). */
  trafficBound: number;
}

export interface AuditRelativeOptions extends AuditTarget {
  /** A started libp2p node that can dial the relative (its addresses known to the peer store). */
  node: Dialer;
  peerId: PeerId | string;
  /** This home's objects placed at the relative: objectsAt(catalog, peerId). */
  objects: readonly AuditObject[];
  /** The audit's seed (32 bytes); random when absent. Retries ask with the same seed. */
  seed?: Uint8Array;
  /** Deadline for one attempt's answers, in ms. */
  timeoutMs?: number;
  /** Attempts after one that timed out or broke off. */
  retries?: number;
  /** Pause before a retry, so a connection that broke has closed and the retry dials afresh. */
  retryDelayMs?: number;
  /** Cancels the whole audit (the promise rejects). */
  signal?: AbortSignal;
}

export interface AuditFailure {
  id: string;
  reason: string;
}

/**
 * passed: every object proved. failed: at least one object's challenge was answered
 * wrongly, broke the protocol, or went unanswered past the deadline. unreachable:
 * nothing failed, but the relative could not be reached for some or all objects
 * (their placements stay; the monthly audit tries again).
 */
export type AuditStatus = 'passed' | 'failed' | 'unreachable';

export interface AuditReport {
  /** The relative's PeerId. */
  peer: string;
  status: AuditStatus;
  objects: number;
  /** Encrypted bytes covered. */
  bytes: number;
  /** Leaves asked for, over all objects. */
  samples: number;
  passed: boolean;
  failedObjects: string[];
  /** One line per failed object saying what was wrong. */
  failures: AuditFailure[];
  /** Objects not asked about because the relative could not be reached (not failures). */
  unreached: string[];
  durationMs: number;
  /** Bytes of requests and answers on the audit streams (framing included; Noise and Yamux overhead not). */
  bytesTransferred: number;
  attempts: number;
  /** When the relative last answered anything (the daemon adds it; ISO, or null for never). */
  lastSeen?: string | null;
  /** Why the relative's last attempt ended early: timeout, unreachable, or a protocol violation. */
  error?: string;
}

export const AUDIT_DEFAULTS = {
  /** Long enough for a host to read ~500 random 64 KiB blocks from a sleeping disk. */
  timeoutMs: 10 * 60_000,
  retries: 1,
  retryDelayMs: 5_000,
};

/** The owner's objects placed at one relative, as the catalog records them. */
export async function objectsAt(catalog: Pick<Catalog, 'objects'>, peerId: string): Promise<AuditObject[]> {
  const objects: AuditObject[] = [];
  for await (const object of catalog.objects()) {
    if (object.placements.some((p) => p.tier === 'peer' && p.target === peerId)) {
      objects.push({ id: object.id, size: object.size, merkleRoot: object.merkleRoot, leafSize: object.leafSize });
    }
  }
  return objects;
}

/** How many leaves of each object one audit samples, and what that costs on the wire. */
export function planAudit(objects: readonly AuditObject[], target: AuditTarget = {}): AuditPlan {
  const unique = [...new Map(objects.map((o) => [o.id, o])).values()];
  const leafCounts = unique.map((o) => merkleLeafCount(o.size, o.leafSize));
  const total = samplesNeeded(target.lossFraction ?? AUDIT_TARGET.lossFraction, target.confidence ?? AUDIT_TARGET.confidence);
  const samples = allocateSamples(leafCounts, total, target.minSamplesPerObject ?? AUDIT_TARGET.minSamplesPerObject);
  const planned = unique.map((o, i): PlannedObject => {
    if (o.leafSize !== AUDIT_LIMITS.leafSize) throw new Error(`object ${o.id} has ${o.leafSize}-byte Merkle leaves; hosts audit ${AUDIT_LIMITS.leafSize}-byte leaves only`);
    if (samples[i]! > AUDIT_LIMITS.maxSamplesPerObject) throw new Error(`object ${o.id} would need ${samples[i]} samples, over the protocol's ${AUDIT_LIMITS.maxSamplesPerObject}: lower the audit's confidence`);
    return { ...o, leafCount: leafCounts[i]!, samples: samples[i]! };
  });
  return {
    objects: planned,
    samples: planned.reduce((sum, o) => sum + o.samples, 0),
    bytes: planned.reduce((sum, o) => sum + o.size, 0),
    trafficBound: trafficBound(planned),
  };
}

/**
 * Per request: its envelope (~100 bytes). Per object: its entry in the request and
 * its answer header (each about the id plus 70 bytes). Per sample: a frame of at
 * most 3 length bytes + 12 header bytes + the leaf + one 32-byte hash per tree level.
 */
function trafficBound(objects: readonly PlannedObject[]): number {
  let bytes = 110 * Math.max(1, batches(objects).length);
  for (const o of objects) bytes += 2 * (o.id.length + 70) + o.samples * (3 + 12 + o.leafSize + 32 * treeHeight(o.leafCount));
  return bytes;
}

function treeHeight(leafCount: number): number {
  return leafCount <= 1 ? 0 : (leafCount - 1).toString(2).length;
}

/** Requests within the protocol's limits on objects, samples and message size. */
function batches(objects: readonly PlannedObject[]): PlannedObject[][] {
  const out: PlannedObject[][] = [];
  let batch: PlannedObject[] = [];
  let samples = 0;
  let bytes = 0;
  for (const o of objects) {
    const entry = o.id.length + 80;
    if (batch.length === AUDIT_LIMITS.maxObjectsPerRequest || samples + o.samples > AUDIT_LIMITS.maxSamplesPerRequest || bytes + entry > AUDIT_LIMITS.maxRequestBytes - 200) {
      out.push(batch);
      batch = [];
      samples = 0;
      bytes = 0;
    }
    batch.push(o);
    samples += o.samples;
    bytes += entry;
  }
  if (batch.length) out.push(batch);
  return out;
}

/** Audit every listed object at one relative; resolves with the report (a failed audit is a report, not a rejection). */
export async function auditRelative(options: AuditRelativeOptions): Promise<AuditReport> {
  const started = performance.now();
  const peerId = typeof options.peerId === 'string' ? peerIdFromString(options.peerId) : options.peerId;
  if (options.seed && options.seed.length !== AUDIT_SEED_BYTES) throw new Error(`audit seed must be ${AUDIT_SEED_BYTES} bytes`);
  const timeoutMs = options.timeoutMs ?? AUDIT_DEFAULTS.timeoutMs;
  const retries = options.retries ?? AUDIT_DEFAULTS.retries;
  const plan = planAudit(options.objects, options);
  const failures = new Map<string, string>();
  const traffic = { bytes: 0 };
  let pending = plan.objects;
  let attempts = 0;
  let error: string | undefined;
  // One seed for every attempt: a fresh one would let a host that broke off redraw its samples.
  const seed = options.seed ?? randomBytes(AUDIT_SEED_BYTES);
  let unreachable = false;
  let answeredAny = false;
  while (pending.length > 0 && attempts <= retries) {
    if (attempts > 0) await delay(options.retryDelayMs ?? AUDIT_DEFAULTS.retryDelayMs, undefined, options.signal ? { signal: options.signal } : {});
    attempts++;
    const result = await attempt({ node: options.node, peerId, seed, timeoutMs, signal: options.signal, traffic, failures }, pending);
    // The object the relative stopped at goes last, so the ones after it are not held hostage.
    const [stuck, ...rest] = result.unanswered;
    pending = stuck ? [...rest, stuck] : [];
    error = result.error;
    // A relative that answered part of this audit and then broke off saw the seed: it
    // broke off (a failure once the retries are spent), it was not unreachable.
    answeredAny ||= (result.answered ?? 0) > 0;
    unreachable = result.unreachable === true && !answeredAny;
  }
  // The last attempt decides: a relative that went to sleep mid-audit is unreachable, not failed.
  if (!unreachable) for (const o of pending) failures.set(o.id, `not answered after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${error}`);
  const failed = plan.objects.filter((o) => failures.has(o.id));
  const unreached = unreachable ? pending.map((o) => o.id) : [];
  return {
    peer: peerId.toString(),
    status: failed.length > 0 ? 'failed' : unreached.length > 0 ? 'unreachable' : 'passed',
    objects: plan.objects.length,
    bytes: plan.bytes,
    samples: plan.samples,
    passed: failed.length === 0 && unreached.length === 0,
    failedObjects: failed.map((o) => o.id),
    failures: failed.map((o) => ({ id: o.id, reason: failures.get(o.id)! })),
    unreached,
    durationMs: Math.round(performance.now() - started),
    bytesTransferred: traffic.bytes,
    attempts,
    ...(pending.length > 0 && error ? { error } : {}),
  };
}

interface AttemptContext {
  node: Dialer;
  peerId: PeerId;
  seed: Uint8Array;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  traffic: { bytes: number };
  /** Judged objects that failed, with why. */
  failures: Map<string, string>;
}

/**
 * A report for a relative that could not be dialled at all: nothing was asked, so
 * nothing failed.
 */
export function unreachableReport(peer: string, objects: readonly AuditObject[], why: string): AuditReport {
  const plan = planAudit(objects);
  return {
    peer, status: 'unreachable', objects: plan.objects.length, bytes: plan.bytes, samples: 0, passed: false,
    failedObjects: [], failures: [], unreached: plan.objects.map((o) => o.id), durationMs: 0, bytesTransferred: 0, attempts: 0, error: why,
  };
}

/**
 * One seed, one deadline. Objects judged stay judged; the ones not reached are
 * returned for the next attempt. `unreachable`: the attempt ended because the
 * relative could not be reached or the connection broke, not by the deadline or a
 * protocol violation.
 */
async function attempt(ctx: AttemptContext, objects: readonly PlannedObject[]): Promise<{ unanswered: PlannedObject[]; error?: string; unreachable?: boolean; answered?: number }> {
  const deadline = AbortSignal.timeout(ctx.timeoutMs);
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, deadline]) : deadline;
  let judged = 0;
  try {
    for (const batch of batches(objects)) {
      const request = { seed: ctx.seed, objects: batch.map((o): AuditRequestItem => ({ id: o.id, size: o.size, leafSize: o.leafSize, samples: o.samples })) };
      let answered = 0;
      try {
        for await (const answer of requestAudit(ctx.node, ctx.peerId, request, { signal, idleTimeout: ctx.timeoutMs, traffic: ctx.traffic })) {
          const object = batch[answered++]!;
          const problem = judge(object, ctx.seed, answer);
          if (problem) ctx.failures.set(object.id, problem);
          judged++;
        }
      } catch (err) {
        // A malformed answer fails the object it was about; the rest go to the next attempt.
        if (err instanceof ProtocolViolationError && !signal.aborted && answered < batch.length) {
          ctx.failures.set(batch[answered]!.id, `the relative broke the audit protocol: ${err.message}`);
          judged++;
        }
        throw err;
      }
    }
    return { unanswered: [] };
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    if (deadline.aborted) return { unanswered: objects.slice(judged), error: `no answer within the ${ctx.timeoutMs} ms deadline` };
    if (err instanceof ProtocolViolationError) return { unanswered: objects.slice(judged), error: `the relative broke the audit protocol: ${err.message}` };
    return { unanswered: objects.slice(judged), error: `the relative could not be reached or broke off: ${(err as Error).message}`, unreachable: true, answered: judged };
  }
}

/** What is wrong with a host's answer for one object, or undefined when every sample proves out. */
function judge(object: PlannedObject, seed: Uint8Array, answer: AuditAnswer): string | undefined {
  if (answer.id !== object.id) return `the relative answered for object ${answer.id.slice(0, 80)} instead`;
  if ('error' in answer) {
    const what = answer.error === 'missing' ? 'does not have it' : answer.error === 'size' ? 'holds a copy of the wrong size' : 'cannot read it';
    return `the relative ${what}: ${answer.message.slice(0, 300)}`;
  }
  const expected = sampleIndices(seed, object.id, object.leafCount, object.samples);
  if (answer.proofs.length !== expected.length) return `the relative sent ${answer.proofs.length} leaves where ${expected.length} were asked`;
  for (let i = 0; i < expected.length; i++) {
    const proof = answer.proofs[i]!;
    if (proof.index !== expected[i]) return `the relative sent leaf ${proof.index} where leaf ${expected[i]} was asked`;
    const length = leafLength(proof.index, object.size, object.leafSize);
    if (proof.leaf.length !== length) return `leaf ${proof.index} has ${proof.leaf.length} bytes, not ${length}`;
    if (!verifyMerkleProof(object.merkleRoot, proof.index, object.leafCount, proof.leaf, proof.path)) {
      return `leaf ${proof.index} does not match the object's Merkle root: the relative's copy is damaged, stale or another object`;
    }
  }
  return undefined;
}
