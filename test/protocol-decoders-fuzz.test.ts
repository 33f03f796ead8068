// Fuzzes every decoder a peer's bytes reach, per protocol (pair, catalog, object,
// audit, status): FUZZ_RUNS generated or mutated messages each (100,000 by
// default, HEARTH_FUZZ_RUNS for more), starting from valid messages of the shapes
// the project's clients send. A decoder must either return a message that keeps
// the protocol's rules or throw the protocol's own error; a TypeError, a RangeError
// or a hang is a defect. The framing (unsigned-varint frames, JSON bodies) is
// fuzzed over libp2p's in-memory stream pair from @libp2p/utils, the real Stream
// implementation without a network. test/protocol-host-fuzz.test.ts sends such
// messages to a real daemon.
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { streamPair } from '@libp2p/utils';
import { FUZZ_RUNS, FUZZ_SEED, fuzzDecoder, mutatedBytes, wireMessages } from './protocol-fuzz.ts';
import { parseRequest as parseObjectRequest } from '../protocol/object.ts';
import { AUDIT_LIMITS, decodeSample, encodeSample, parseAuditRequest, sampleIndices } from '../protocol/audit.ts';
import { CATALOG_LIMITS, parseRequest as parseCatalogRequest } from '../protocol/catalog-sync.ts';
import { MAX_PEER_NAME_LENGTH, parsePairReply, parsePairRequest } from '../protocol/pair.ts';
import { MAX_DAMAGED_IN_STATUS, parseStatus } from '../protocol/status.ts';
import { jsonFrames, ProtocolMessageError } from '../protocol/json-frames.ts';
import { encodeFrame, ProtocolViolationError, StreamEndedError, StreamReader, MalformedMessageError } from '../protocol/messages.ts';
import { CatalogChainError, decodeEnvelope, encodeEnvelope, verifyEnvelopeAppend, ZERO_HASH } from '../storage/catalog/envelope.ts';
import { isValidObjectId } from '../storage/hoststore/host-store.ts';
import { MERKLE_LEAF_SIZE, merkleLeafCount } from '../storage/merkle.ts';

const HEX64 = 'ab'.repeat(32);
const safeWhole = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;

/** What StreamReader.readJson hands a request decoder: it refuses any JSON but an object first. */
function asReadJson(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new MalformedMessageError('message is not a JSON object');
  return value as Record<string, unknown>;
}

describe(`protocol decoders under ${FUZZ_RUNS} generated messages each`, () => {
  it('/hearth/object/1 requests: a valid request or MalformedMessageError', () => {
    const seeds = [
      { op: 'put', id: 'obj-1', size: 5_000_000, merkleRoot: HEX64, leafSize: MERKLE_LEAF_SIZE },
      { op: 'get', id: 'obj-1' },
      { op: 'get', id: 'obj-1', offset: 10, length: 4096 },
      { op: 'stat', id: 'obj-1' },
      { op: 'list' },
      { op: 'delete', id: 'obj-1' },
      { op: 'usage' },
    ];
    for (const seed of seeds) expect(parseObjectRequest(seed)).toMatchObject({ op: seed.op });
    const counts = fuzzDecoder(
      wireMessages(seeds, ['op', 'id', 'size', 'merkleRoot', 'leafSize', 'offset', 'length']),
      (message) => parseObjectRequest(asReadJson(message)),
      [MalformedMessageError],
      (decoded) => {
        const r = decoded as Record<string, unknown>;
        if (!['put', 'get', 'stat', 'list', 'delete', 'usage'].includes(r.op as string)) return false;
        if ('id' in r && !isValidObjectId(r.id)) return false;
        return ['size', 'leafSize', 'offset', 'length'].every((f) => r[f] === undefined || safeWhole(r[f]));
      },
    );
    expect(counts.decoded + counts.refused).toBe(FUZZ_RUNS);
    expect(counts.decoded).toBeGreaterThan(FUZZ_RUNS / 10);
  });

  it('/hearth/audit/1 requests: a bounded valid request or MalformedMessageError, whose samples the host can draw', () => {
    const seed = randomBytes(32).toString('hex');
    const seeds = [
      { op: 'audit', seed, objects: [{ id: 'obj-1', size: 10_000_000, leafSize: MERKLE_LEAF_SIZE, samples: 9 }] },
      { op: 'audit', seed, objects: [{ id: 'a', size: 1, leafSize: MERKLE_LEAF_SIZE, samples: 1 }, { id: 'b', size: 8192, leafSize: MERKLE_LEAF_SIZE, samples: 4 }] },
    ];
    const items = fc.array(
      fc.record({
        id: fc.oneof(fc.constantFrom('obj-1', 'x'), fc.string({ maxLength: 4 })),
        size: fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 53 - 1, -1)),
        leafSize: fc.constantFrom(MERKLE_LEAF_SIZE, 1, 0, 65536, 65537),
        samples: fc.oneof({ weight: 8, arbitrary: fc.nat(40) }, { weight: 1, arbitrary: fc.nat(5000) }, { weight: 1, arbitrary: fc.constantFrom(4096, 4097, -1) }),
      }),
      { maxLength: 6 },
    );
    const requests = fc.oneof(
      { weight: 3, arbitrary: wireMessages(seeds, ['op', 'seed', 'objects']) },
      { weight: 1, arbitrary: items.map((objects) => ({ op: 'audit', seed, objects })) },
    );
    for (const s of seeds) expect(parseAuditRequest(s).objects).toHaveLength(s.objects.length);
    const counts = fuzzDecoder(requests, (message) => parseAuditRequest(asReadJson(message)), [MalformedMessageError], (decoded) => {
      const request = decoded as ReturnType<typeof parseAuditRequest>;
      if (request.seed.length !== 32 || request.objects.length < 1 || request.objects.length > AUDIT_LIMITS.maxObjectsPerRequest) return false;
      let total = 0;
      for (const item of request.objects) {
        if (!isValidObjectId(item.id) || item.leafSize < 1 || item.samples > AUDIT_LIMITS.maxSamplesPerObject) return false;
        total += item.samples;
        // What the host does next with a parsed request: derive the indices.
        const leafCount = merkleLeafCount(item.size, item.leafSize);
        const indices = sampleIndices(request.seed, item.id, leafCount, item.samples);
        if (indices.length !== Math.min(item.samples, leafCount) || indices.some((i) => i < 0 || i >= leafCount)) return false;
      }
      return total <= AUDIT_LIMITS.maxSamplesPerRequest;
    });
    expect(counts.decoded + counts.refused).toBe(FUZZ_RUNS);
    expect(counts.decoded).toBeGreaterThan(FUZZ_RUNS / 20);
  });

  it('/hearth/audit/1 sample frames (owner side): a proof that fits the frame or MalformedMessageError', () => {
    const leaf = randomBytes(MERKLE_LEAF_SIZE);
    const base = encodeSample({ index: 7, leaf, path: [randomBytes(32), randomBytes(32), randomBytes(32)] });
    const counts = fuzzDecoder(mutatedBytes(base), (frame) => decodeSample(frame), [MalformedMessageError], (decoded, frame) => {
      const proof = decoded as ReturnType<typeof decodeSample>;
      return safeWhole(proof.index) && 12 + proof.leaf.length + proof.path.length * 32 === frame.length && proof.path.every((h) => h.length === 32);
    });
    expect(counts.decoded + counts.refused).toBe(FUZZ_RUNS);
  });

  it('/hearth/catalog/1 requests and pushed records: a valid request, a checked record, or the protocol\'s own error', () => {
    const seeds = [
      { op: 'head' },
      { op: 'push', from: { seq: 0, hash: ZERO_HASH }, count: 3, bytes: 900 },
      { op: 'push', from: { seq: 12, hash: HEX64 }, count: 1, bytes: 300 },
      { op: 'pull', fromSeq: 1 },
    ];
    for (const s of seeds) expect(parseCatalogRequest(s, CATALOG_LIMITS.maxBatchBytes).op).toBe(s.op);
    const requests = fuzzDecoder(
      wireMessages(seeds, ['op', 'from', 'count', 'bytes', 'fromSeq']),
      (message) => parseCatalogRequest(asReadJson(message), CATALOG_LIMITS.maxBatchBytes),
      [MalformedMessageError],
      (decoded) => {
        const r = decoded as ReturnType<typeof parseCatalogRequest>;
        if (r.op === 'head') return true;
        if (r.op === 'pull') return Number.isSafeInteger(r.fromSeq) && r.fromSeq >= 1;
        return r.count >= 1 && safeWhole(r.count) && safeWhole(r.bytes) && r.bytes <= CATALOG_LIMITS.maxBatchBytes && /^[0-9a-f]{64}$/.test(r.from.hash) && safeWhole(r.from.seq);
      },
      Math.ceil(FUZZ_RUNS / 2),
    );
    // What a push carries: records the host decodes and checks against the owner's key.
    const signing = generateKeyPairSync('ed25519');
    const ownerPublic = signing.publicKey.export({ format: 'jwk' }).x!;
    const ownerRaw = Buffer.from(ownerPublic, 'base64url');
    const record = encodeEnvelope(1, ZERO_HASH, Buffer.from('{"kind":"file"}'), { catalogKey: randomBytes(32), signingKey: signing.privateKey });
    expect(verifyEnvelopeAppend(ownerRaw, null, record).seq).toBe(1);
    const records = fuzzDecoder(
      mutatedBytes(record),
      (bytes) => {
        decodeEnvelope(bytes);
        return verifyEnvelopeAppend(ownerRaw, null, bytes);
      },
      [CatalogChainError],
      // A flipped byte anywhere is caught: only the original record is accepted.
      (head, bytes) => bytes.equals(record) && (head as { seq: number }).seq === 1,
      Math.floor(FUZZ_RUNS / 2),
    );
    expect(requests.decoded + requests.refused + records.decoded + records.refused).toBe(FUZZ_RUNS);
  });

  it('/hearth/pair/1 requests and replies: a valid message or ProtocolMessageError', () => {
    const requestSeeds = [
      { proof: HEX64, name: 'Bea', quota: 1_000_000_000, addrs: ['/ip4/127.0.0.1/tcp/4001', '/ip6/::1/tcp/4001'] },
      { proof: HEX64, name: 'ß 写真', quota: 0, addrs: [] },
    ];
    const replySeeds = [
      { ok: true, name: 'Ann', quota: 5, relinked: false },
      { ok: false, reason: 'used', error: 'this invite code was already used' },
    ];
    for (const s of requestSeeds) expect(parsePairRequest(s).name).toBe(s.name);
    for (const s of replySeeds) expect(parsePairReply(s).ok).toBe(s.ok);
    const requests = fuzzDecoder(wireMessages(requestSeeds, ['proof', 'name', 'quota', 'addrs']), parsePairRequest, [ProtocolMessageError], (decoded) => {
      const r = decoded as ReturnType<typeof parsePairRequest>;
      return r.proof.length === 32 && r.name.length >= 1 && r.name.length <= MAX_PEER_NAME_LENGTH && !/\p{Cc}/u.test(r.name) && safeWhole(r.quota) && r.addrs.length <= 16 && r.addrs.every((a) => typeof a === 'string');
    }, Math.ceil(FUZZ_RUNS * 0.7));
    const replies = fuzzDecoder(wireMessages(replySeeds, ['ok', 'name', 'quota', 'relinked', 'reason', 'error']), parsePairReply, [ProtocolMessageError], (decoded) => {
      const r = decoded as ReturnType<typeof parsePairReply>;
      return r.ok ? safeWhole(r.quota) && typeof r.relinked === 'boolean' : ['unknown', 'used', 'expired'].includes(r.reason) && r.error.length <= 300;
    }, Math.floor(FUZZ_RUNS * 0.3));
    expect(requests.decoded + requests.refused + replies.decoded + replies.refused).toBe(FUZZ_RUNS);
  });

  it('/hearth/status/1 replies (owner side): a valid status or ProtocolMessageError', () => {
    const seeds = [
      { version: '0.1.0', quotaBytes: 10, storedBytes: 5, pendingDeletions: 0, freeBytes: 1e12 },
      { version: '0.1.0', quotaBytes: 10, storedBytes: 5, pendingDeletions: 1, freeBytes: 7, damaged: ['obj-1', 'obj-2'], damagedTotal: 2 },
    ];
    for (const s of seeds) expect(parseStatus(s).version).toBe('0.1.0');
    const counts = fuzzDecoder(
      wireMessages(seeds, ['version', 'quotaBytes', 'storedBytes', 'pendingDeletions', 'freeBytes', 'damaged', 'damagedTotal']),
      parseStatus,
      [ProtocolMessageError],
      (decoded) => {
        const s = decoded as ReturnType<typeof parseStatus>;
        const figures = [s.quotaBytes, s.storedBytes, s.pendingDeletions, s.freeBytes].every(safeWhole);
        const damaged = s.damaged === undefined || (s.damaged.length <= MAX_DAMAGED_IN_STATUS && s.damaged.every(isValidObjectId) && (s.damagedTotal ?? -1) >= s.damaged.length);
        return figures && damaged && s.version.length <= 64;
      },
    );
    expect(counts.decoded + counts.refused).toBe(FUZZ_RUNS);
  });
});

// ---- Framing, over libp2p's in-memory streams ----

/** Frames of mutated JSON bodies, sometimes ending in a broken prefix; cut into arbitrary chunks. */
const frameRuns = fc.record({
  bodies: fc.array(fc.oneof(fc.jsonValue({ maxDepth: 1, depthSize: 'xsmall' }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b))), { minLength: 40, maxLength: 80 }),
  tail: fc.oneof(
    { weight: 3, arbitrary: fc.constant(Buffer.alloc(0)) },
    { weight: 1, arbitrary: fc.constantFrom(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Buffer.from([0x80]), Buffer.from([0xff, 0xff, 0x03]), Buffer.from([0x05, 0x01])) },
  ),
  cut: fc.oneof({ weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }, { weight: 4, arbitrary: fc.integer({ min: 8, max: 600 }) }),
});

function chunks(bytes: Buffer, cut: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += cut) out.push(bytes.subarray(at, at + cut));
  return out;
}

describe(`framing under ${FUZZ_RUNS} frames each`, () => {
  it('StreamReader (object, audit, catalog) returns every frame as sent, and refuses broken or oversized prefixes with its own errors', async () => {
    const maxLength = 256;
    let frames = 0;
    await fc.assert(
      fc.asyncProperty(frameRuns, async ({ bodies, tail, cut }) => {
        const [outbound, inbound] = await streamPair({ delay: 0 });
        const reader = new StreamReader(inbound, { idleTimeout: 5000 });
        const wire = Buffer.concat([...bodies.map((b) => encodeFrame(b)), tail]);
        for (const chunk of chunks(wire, cut)) outbound.send(chunk);
        await outbound.close();
        try {
          for (const body of bodies) {
            if (body.length > maxLength) {
              await expect(reader.readFrame(maxLength)).rejects.toBeInstanceOf(ProtocolViolationError);
              return;
            }
            const frame = await reader.readFrame(maxLength);
            frames++;
            if (!frame.equals(body)) return false;
            // The JSON decoding a handler runs on the same bytes.
            await Promise.resolve(); // keep the loop interleaved with stream events
          }
          const end = await reader.readFrame(maxLength).then(() => undefined, (err: unknown) => err);
          return end instanceof ProtocolViolationError || end instanceof StreamEndedError;
        } finally {
          reader.detach();
          inbound.abort(new Error('done'));
        }
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 45), seed: FUZZ_SEED },
    );
    expect(frames).toBeGreaterThanOrEqual(FUZZ_RUNS / 2);
  });

  it('jsonFrames (pair, status) yields each JSON body or refuses it with ProtocolMessageError, never another error', async () => {
    let messages = 0;
    await fc.assert(
      fc.asyncProperty(frameRuns, async ({ bodies, tail, cut }) => {
        const [outbound, inbound] = await streamPair({ delay: 0 });
        const frames = jsonFrames(inbound, 256);
        const wire = Buffer.concat([...bodies.map((b) => encodeFrame(b)), tail]);
        for (const chunk of chunks(wire, cut)) outbound.send(chunk);
        await outbound.close();
        const signal = AbortSignal.timeout(5000);
        try {
          for (const body of bodies) {
            const result = await frames.read(signal).then((value) => ({ value }), (err: unknown) => ({ err }));
            messages++;
            if ('err' in result) {
              // lpStream's own errors for oversized frames; ProtocolMessageError for bodies that are not JSON.
              if (body.length > 256) return /^Invalid(Data|Message)Length/.test((result.err as Error).name);
              if (!(result.err instanceof ProtocolMessageError)) return false;
              continue;
            }
            if (JSON.stringify(result.value) !== JSON.stringify(JSON.parse(body.toString('utf8')))) return false;
          }
          return true;
        } finally {
          inbound.abort(new Error('done'));
        }
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 45), seed: FUZZ_SEED },
    );
    expect(messages).toBeGreaterThanOrEqual(FUZZ_RUNS / 2);
  });
});
