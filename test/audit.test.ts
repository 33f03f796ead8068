// /hearth/audit/1 end to end: libp2p nodes on 127.0.0.1, objects encoded with
// storage/objects/encode.ts and stored at the host through /hearth/object/1 in a
// real HostStore, audited by node/audit.ts. Damage is done to the host's files on
// disk; dishonest hosts are real audit services with a prover that cheats.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Libp2p } from 'libp2p';
import type { Stream } from '@libp2p/interface';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  allocateSamples, AUDIT_PROTOCOL, decodeSample, encodeSample, leafLength, parseAuditRequest, sampleIndices, samplesNeeded, type LeafProver,
} from '../protocol/audit.ts';
import { Catalog } from '../storage/catalog/catalog.ts';
import { deriveKeys } from '../storage/keys.ts';
import { ObjectEncoderPool } from '../storage/objects/encode.ts';
import { auditRelative, objectsAt, planAudit, type AuditObject, type AuditReport } from '../node/audit.ts';
import { introduce, startNode } from './object-protocol.fixture.ts';
import { auditObject, encodeToFile, fixedSeed, pseudoRandomBytes, putObjects, setMtimeNs, startAuditHost, type AuditHost, type EncodedTestObject } from './audit-fixture.ts';

const KiB = 1024;
const MiB = 1024 * 1024;

describe('sampling rules', () => {
  it('459 samples catch 1% loss with 99% probability', () => {
    expect(samplesNeeded()).toBe(459);
    expect(samplesNeeded(0.01, 0.99)).toBe(459);
    expect(0.99 ** 459).toBeLessThanOrEqual(0.01);
    expect(0.99 ** 458).toBeGreaterThan(0.01);
    expect(samplesNeeded(0.01, 0.5)).toBe(69);
  });

  it('allocates in proportion to leaves, at least 2 per object, at most every leaf', () => {
    const counts = [1, 3, 1000, 100_000, 2_097_152, 2_097_152];
    const samples = allocateSamples(counts, 459, 2);
    const all = counts.reduce((a, b) => a + b, 0);
    expect(samples[0]).toBe(1);
    expect(samples[1]).toBe(2);
    for (let i = 0; i < counts.length; i++) {
      expect(samples[i]).toBeGreaterThanOrEqual(Math.min(counts[i]!, 2, Math.ceil((459 * counts[i]!) / all)));
      expect(samples[i]! >= Math.min(counts[i]!, (459 * counts[i]!) / all)).toBe(true);
    }
    expect(samples.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(459);
    expect(samples.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(459 + counts.length + 2);
  });

  it('indices follow from the seed: distinct, ascending, in range, different per seed and object', () => {
    const seed = fixedSeed(1);
    const a = sampleIndices(seed, 'object-a', 100_000, 50);
    expect(a).toEqual(sampleIndices(Buffer.from(seed), 'object-a', 100_000, 50));
    expect(a).toHaveLength(50);
    expect(new Set(a).size).toBe(50);
    expect([...a].sort((x, y) => x - y)).toEqual(a);
    expect(a.every((i) => i >= 0 && i < 100_000)).toBe(true);
    expect(sampleIndices(fixedSeed(2), 'object-a', 100_000, 50)).not.toEqual(a);
    expect(sampleIndices(seed, 'object-b', 100_000, 50)).not.toEqual(a);
    // More than half the leaves (picked through the complement), and all of them.
    const most = sampleIndices(seed, 'object-a', 10, 7);
    expect(most).toHaveLength(7);
    expect(new Set(most).size).toBe(7);
    expect(sampleIndices(seed, 'object-a', 5, 9)).toEqual([0, 1, 2, 3, 4]);
  });

  it('indices are spread evenly over the leaves', () => {
    const buckets = new Array(10).fill(0);
    for (let s = 0; s < 200; s++) for (const i of sampleIndices(fixedSeed(`spread ${s}`), 'x', 1000, 20)) buckets[Math.floor(i / 100)]++;
    // 4000 draws, 400 expected per bucket; 5 standard deviations is about 95.
    for (const count of buckets) expect(Math.abs(count - 400)).toBeLessThan(100);
  });

  it('the host refuses requests outside the limits', () => {
    const item = { id: 'abc', size: 10 * 2048, leafSize: 2048, samples: 2 };
    const request = (over: Record<string, unknown>): Record<string, unknown> => ({ op: 'audit', seed: 'ab'.repeat(32), objects: [item], ...over });
    expect(parseAuditRequest(request({})).objects).toEqual([item]);
    expect(() => parseAuditRequest(request({ op: 'get' }))).toThrow(/unknown request op/);
    expect(() => parseAuditRequest(request({ seed: 'ab' }))).toThrow(/seed/);
    expect(() => parseAuditRequest(request({ objects: [] }))).toThrow(/1 to 1000 objects/);
    expect(() => parseAuditRequest(request({ objects: Array(1001).fill(item) }))).toThrow(/1 to 1000 objects/);
    expect(() => parseAuditRequest(request({ objects: [{ ...item, samples: 11 }] }))).toThrow(/samples of abc must be a whole number up to 10/);
    for (const leafSize of [0, 1, 1024, 4096, 65537]) expect(() => parseAuditRequest(request({ objects: [{ ...item, leafSize }] }))).toThrow(/leafSize of abc must be 2048/);
    expect(() => parseAuditRequest(request({ objects: [{ ...item, id: '../x' }] }))).toThrow(/invalid object id/);
    const big = { id: 'big', size: 2 ** 40, leafSize: 2048, samples: 4096 };
    expect(() => parseAuditRequest(request({ objects: [big, big, big, big, { ...big, samples: 1 }] }))).toThrow(/16385 samples, over 16384/);
  });

  it('an audit of no objects passes without a word on the wire', async () => {
    const node = await startNode(40);
    try {
      const report = await auditRelative({ node, peerId: node.peerId, objects: [] });
      expect(report).toMatchObject({ objects: 0, bytes: 0, samples: 0, passed: true, attempts: 0, bytesTransferred: 0 });
    } finally {
      await node.stop();
    }
  });

  it('a sample frame round-trips', () => {
    const proof = { index: 2 ** 40 + 3, leaf: randomBytes(2048), path: [randomBytes(32), randomBytes(32)] };
    const decoded = decodeSample(encodeSample(proof));
    expect(decoded.index).toBe(proof.index);
    expect(decoded.leaf.equals(proof.leaf)).toBe(true);
    expect(decoded.path.map((h) => h.toString('hex'))).toEqual(proof.path.map((h) => h.toString('hex')));
    expect(() => decodeSample(encodeSample(proof).subarray(0, 2000))).toThrow(/frame length/);
  });
});

describe('/hearth/audit/1', () => {
  let dir: string;
  let home: string;
  let pool: ObjectEncoderPool;
  let owner: Libp2p;
  let host: AuditHost;
  let objects: EncodedTestObject[];
  const extra: Array<{ stop(): unknown }> = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hearth-audit-objects-'));
    pool = new ObjectEncoderPool();
    // A tiny blob, small files, and pieces of volumes: 1 to ~2,600 leaves each.
    const sizes = [100, 64 * KiB, 300 * KiB, 1 * MiB, 2 * MiB, 5 * MiB];
    objects = [];
    for (const [i, size] of sizes.entries()) objects.push(await encodeToFile(dir, pseudoRandomBytes(size, `object ${i}`), pool, `o${i}`));
  });
  afterAll(async () => {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'hearth-audit-host-'));
    owner = await startNode(1);
    host = await startAuditHost(2, () => [owner.peerId], home);
    await putObjects(owner, host.node, objects);
  });
  afterEach(async () => {
    for (const node of extra.splice(0)) await node.stop();
    await owner.stop();
    await host.stop();
    await rm(home, { recursive: true, force: true });
  });

  const audit = (options: Partial<Parameters<typeof auditRelative>[0]> = {}): Promise<AuditReport> =>
    auditRelative({ node: owner, peerId: host.node.peerId, objects: objects.map(auditObject), ...options });
  const hostFile = (o: AuditObject): string => host.host.store.objectFile(owner.peerId.toString(), o.id);
  const idsOf = (list: AuditObject[]): string[] => list.map((o) => o.id);

  it('a healthy host passes, proving from the indexes its uploads wrote (nothing is read to build one); traffic stays within the formula', async () => {
    const plan = planAudit(objects);
    const first = await audit({ seed: fixedSeed('healthy') });
    expect(first).toMatchObject({ peer: host.node.peerId.toString(), objects: objects.length, passed: true, failedObjects: [], failures: [], attempts: 1 });
    expect(first.error).toBeUndefined();
    expect(first.bytes).toBe(objects.reduce((sum, o) => sum + o.size, 0));
    expect(first.samples).toBe(plan.samples);
    expect(first.samples).toBeGreaterThanOrEqual(459);
    for (const o of plan.objects) expect(o.samples).toBeGreaterThanOrEqual(Math.min(2, o.leafCount));
    expect(host.index.counters).toMatchObject({ builds: 0, buildBytesRead: 0 });
    expect(host.index.counters.objectBytesRead).toBeGreaterThan(0);

    // The formula is an upper bound; the leaves alone are a lower one.
    const leafBytes = plan.objects.reduce((sum, o) => sum + sampleIndices(fixedSeed('healthy'), o.id, o.leafCount, o.samples).reduce((s, i) => s + leafLength(i, o.size, o.leafSize), 0), 0);
    expect(first.bytesTransferred).toBeGreaterThan(leafBytes);
    expect(first.bytesTransferred).toBeLessThanOrEqual(plan.trafficBound);
    expect(plan.trafficBound).toBeLessThan(1.5 * MiB);

    const read = { ...host.index.counters };
    const second = await audit();
    expect(second.passed).toBe(true);
    expect(host.index.counters).toMatchObject({ builds: 0, buildBytesRead: 0 });
    // At most one 64 KiB block per sample, and a path of hashes.
    expect(host.index.counters.objectBytesRead - read.objectBytesRead).toBeLessThanOrEqual(second.samples * 64 * KiB);
    expect(host.index.counters.indexBytesRead - read.indexBytesRead).toBeLessThanOrEqual(objects.length * 72 + second.samples * 32 * 8);
  });

  it('the index roots are the owner\'s roots', async () => {
    for (const o of objects) {
      const indexed = await host.index.open(owner.peerId.toString(), o.id, o.leafSize);
      expect(indexed.root).toBe(o.merkleRoot);
      await indexed.close();
    }
  });

  it('one flipped byte in a sampled leaf fails that object only (index kept as it was, or rebuilt)', async () => {
    const target = objects[3]!;
    const planned = planAudit(objects).objects.find((o) => o.id === target.id)!;
    const seed = fixedSeed('flip');
    const leaf = sampleIndices(seed, target.id, planned.leafCount, planned.samples)[0]!;
    await audit({ seed: fixedSeed('warm the index') });
    const builds = host.index.counters.builds;

    // Damage whose file keeps its mtime: the host's index still holds the good hashes.
    const path = hostFile(target);
    const { mtimeNs } = await stat(path, { bigint: true });
    const handle = await open(path, 'r+');
    const at = leaf * target.leafSize + 7;
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    await handle.write(Buffer.from([byte[0]! ^ 0x01]), 0, 1, at);
    await handle.close();
    setMtimeNs(path, mtimeNs);
    const kept = await audit({ seed });
    expect(host.index.counters.builds).toBe(builds);
    expect(kept.passed).toBe(false);
    expect(kept.failedObjects).toEqual([target.id]);
    expect(kept.failures[0]!.reason).toMatch(/does not match the object's Merkle root/);

    // A visible change: the host rebuilds its index from the damaged bytes.
    setMtimeNs(path, mtimeNs + 1_000_000_000n);
    const rebuilt = await audit({ seed });
    expect(host.index.counters.builds).toBe(builds + 1);
    expect(rebuilt.failedObjects).toEqual([target.id]);
  });

  it('a deleted or truncated object fails', async () => {
    await rm(hostFile(objects[1]!));
    await truncate(hostFile(objects[4]!), objects[4]!.size - 1000);
    const report = await audit();
    expect(report.passed).toBe(false);
    expect(report.failedObjects).toEqual(idsOf([objects[1]!, objects[4]!]));
    expect(report.failures[0]!.reason).toMatch(/does not have it/);
    expect(report.failures[1]!.reason).toMatch(/wrong size.*bytes here, not/);
  });

  it('stale data, an older encryption of the same content, fails', async () => {
    const target = objects[2]!;
    const older = hostFile(target);
    const stale = await readFile(older);
    // The owner encrypts the same content again (same id, new bytes) and stores it
    // at the host once the host's copy is gone (a stored id keeps its bytes).
    const newer = await encodeToFile(dir, target.plain, pool, 'newer');
    expect(newer.id).toBe(target.id);
    expect(newer.size).toBe(target.size);
    expect(newer.merkleRoot).not.toBe(target.merkleRoot);
    await rm(older);
    await putObjects(owner, host.node, [newer]);
    const current = objects.map((o) => (o.id === target.id ? newer : o));
    expect((await audit({ objects: current.map(auditObject) })).passed).toBe(true);

    // The host puts the older bytes back, in place, with the newer file's mtime: its index stays the newer one's.
    const { mtimeNs } = await stat(older, { bigint: true });
    await writeFile(older, stale);
    setMtimeNs(older, mtimeNs);
    const keptIndex = await audit({ objects: current.map(auditObject) });
    expect(keptIndex.failedObjects).toEqual([target.id]);

    // ...or as a new file: the host re-indexes the stale bytes.
    await rm(older);
    await writeFile(older, stale);
    const reindexed = await audit({ objects: current.map(auditObject) });
    expect(reindexed.failedObjects).toEqual([target.id]);
    expect(reindexed.failures[0]!.reason).toMatch(/does not match/);
  });

  it('another object\'s bytes fail, whether the file was swapped or the host proves the other object', async () => {
    const [a, b] = [await encodeToFile(dir, pseudoRandomBytes(700 * KiB, 'twin a'), pool), await encodeToFile(dir, pseudoRandomBytes(700 * KiB, 'twin b'), pool)];
    expect(a.size).toBe(b.size);
    await putObjects(owner, host.node, [a, b]);
    await copyFile(hostFile(b), hostFile(a));
    const swapped = await audit({ objects: [a, b].map(auditObject) });
    expect(swapped.failedObjects).toEqual([a.id]);

    // A host that answers every question about `a` with genuine proofs of `b`.
    const cheatHome = await mkdtemp(join(tmpdir(), 'hearth-audit-cheat-'));
    const cheat = await startAuditHost(5, () => [owner.peerId], cheatHome, (index): LeafProver => ({
      open: (ownerId, id, leafSize) => index.open(ownerId, id === a.id ? b.id : id, leafSize),
    }));
    extra.push({ stop: async () => { await cheat.stop(); await rm(cheatHome, { recursive: true, force: true }); } });
    await putObjects(owner, cheat.node, [a, b]);
    const proved = await auditRelative({ node: owner, peerId: cheat.node.peerId, objects: [a, b].map(auditObject) });
    expect(proved.failedObjects).toEqual([a.id]);
    expect(proved.failures[0]!.reason).toMatch(/does not match the object's Merkle root/);
  });

  it('a host that never answers times out, is audited once more, then fails', async () => {
    const silent = await startNode(6);
    extra.push(silent);
    const streams: Stream[] = [];
    await silent.handle(AUDIT_PROTOCOL, (stream) => {
      streams.push(stream);
    });
    await introduce(owner, silent);
    const report = await auditRelative({ node: owner, peerId: silent.peerId, objects: objects.map(auditObject), timeoutMs: 300, retries: 1, retryDelayMs: 10 });
    expect(report.passed).toBe(false);
    expect(report.attempts).toBe(2);
    expect(streams).toHaveLength(2);
    expect(report.failedObjects).toEqual(idsOf(objects));
    expect(report.error).toMatch(/no answer within the 300 ms deadline/);
    expect(report.failures[0]!.reason).toMatch(/not answered after 2 attempts/);

    const once = await auditRelative({ node: owner, peerId: silent.peerId, objects: objects.map(auditObject), timeoutMs: 200, retries: 0 });
    expect(once.attempts).toBe(1);
    expect(streams).toHaveLength(3);
  });

  it('a host too slow the first time passes when it answers the retry', async () => {
    const slowHome = await mkdtemp(join(tmpdir(), 'hearth-audit-slow-'));
    let opens = 0;
    const stalled = Promise.withResolvers<never>();
    const slow = await startAuditHost(7, () => [owner.peerId], slowHome, (index): LeafProver => ({
      open: (ownerId, id, leafSize) => (opens++ === 0 ? stalled.promise : index.open(ownerId, id, leafSize)),
    }));
    extra.push({ stop: async () => { await slow.stop(); await rm(slowHome, { recursive: true, force: true }); } });
    await putObjects(owner, slow.node, objects);
    const report = await auditRelative({ node: owner, peerId: slow.node.peerId, objects: objects.map(auditObject), timeoutMs: 3000, retries: 1, retryDelayMs: 10 });
    expect(report).toMatchObject({ passed: true, attempts: 2, failedObjects: [] });
    expect(report.error).toBeUndefined();
  });

  it('a host that breaks off before an object it cannot prove is asked again for the same leaves, and that object fails', async () => {
    // The host lost one leaf of `target`: the first leaf this audit's seed samples.
    const target = objects[4]!;
    const seed = fixedSeed('break off');
    const planned = planAudit(objects.map(auditObject)).objects.find((o) => o.id === target.id)!;
    const lost = sampleIndices(seed, target.id, planned.leafCount, planned.samples)[0]!;
    const asked: number[][] = [];
    const cheatHome = await mkdtemp(join(tmpdir(), 'hearth-audit-break-off-'));
    let cheatNode: Libp2p | undefined;
    // A real audit service whose prover, seeing it must prove the lost leaf, hangs
    // up on the owner instead of answering (as a host that read the seed would).
    const cheat = await startAuditHost(9, () => [owner.peerId], cheatHome, (index): LeafProver => ({
      open: async (ownerId, id, leafSize) => {
        const object = await index.open(ownerId, id, leafSize);
        if (id !== target.id) return object;
        return {
          size: object.size,
          close: () => object.close(),
          prove: async (indices) => {
            asked.push([...indices]);
            if (!indices.includes(lost)) return object.prove(indices);
            await cheatNode!.hangUp(owner.peerId);
            return new Promise<never>(() => undefined);
          },
        };
      },
    }));
    cheatNode = cheat.node;
    extra.push({ stop: async () => { await cheat.stop(); await rm(cheatHome, { recursive: true, force: true }); } });
    await putObjects(owner, cheat.node, objects);

    const report = await auditRelative({ node: owner, peerId: cheat.node.peerId, objects: objects.map(auditObject), seed, retries: 2, retryDelayMs: 300, timeoutMs: 20_000 });
    expect(report.attempts).toBe(3);
    expect(asked).toHaveLength(3);
    for (const indices of asked) expect(indices).toEqual(asked[0]);
    expect(report.passed).toBe(false);
    // The object after it in the request was asked again before it, and proved.
    expect(report.failedObjects).toEqual([target.id]);
    expect(report.failures[0]!.reason).toMatch(/^not answered after 3 attempts: the relative could not be reached or broke off/);
  });

  it('an owner can audit only its own objects; strangers are refused', async () => {
    const sibling = await startNode(8);
    extra.push(sibling);
    const members = [owner.peerId, sibling.peerId];
    const sharedHome = await mkdtemp(join(tmpdir(), 'hearth-audit-shared-'));
    const shared = await startAuditHost(9, () => members, sharedHome);
    extra.push({ stop: async () => { await shared.stop(); await rm(sharedHome, { recursive: true, force: true }); } });
    await putObjects(owner, shared.node, objects.slice(0, 2));
    await introduce(sibling, shared.node);
    const theirs = await auditRelative({ node: sibling, peerId: shared.node.peerId, objects: objects.slice(0, 2).map(auditObject) });
    expect(theirs.failedObjects).toEqual(idsOf(objects.slice(0, 2)));
    expect(theirs.failures[0]!.reason).toMatch(/does not have it/);

    const stranger = await startNode(10);
    extra.push(stranger);
    await introduce(stranger, host.node);
    const refused = await auditRelative({ node: stranger, peerId: host.node.peerId, objects: objects.map(auditObject), retries: 0 });
    expect(refused.passed).toBe(false);
    expect(refused.error).toMatch(/could not be reached or broke off/);
  });

  it('more objects than one request holds are audited in several requests', async () => {
    const many: AuditObject[] = [];
    const store = host.host.store;
    const ownerId = owner.peerId.toString();
    const tiny = await encodeToFile(dir, pseudoRandomBytes(5000, 'tiny'), pool);
    const bytes = await readFile(tiny.path);
    // 1,001 copies of one encoded object under distinct ids, stored the way the object protocol stores them.
    for (let i = 0; i < 1001; i++) {
      const id = `tiny${i.toString().padStart(4, '0')}`;
      const upload = await store.beginPut(ownerId, id, { size: bytes.length, merkleRoot: tiny.merkleRoot, leafSize: tiny.leafSize });
      await upload.write([bytes]);
      await upload.finish();
      many.push({ id, size: tiny.size, merkleRoot: tiny.merkleRoot, leafSize: tiny.leafSize });
    }
    const report = await audit({ objects: many });
    expect(report).toMatchObject({ passed: true, objects: 1001, samples: 2002 });
    expect(report.bytesTransferred).toBeLessThanOrEqual(planAudit(many).trafficBound);
  });

  it('objectsAt lists the owner\'s objects placed at one relative', async () => {
    const catalogDir = await mkdtemp(join(tmpdir(), 'hearth-audit-catalog-'));
    const catalog = await Catalog.open(catalogDir, deriveKeys(randomBytes(32)));
    try {
      const relative = host.node.peerId.toString();
      const time = Date.now();
      await catalog.append(objects.slice(0, 4).map((o) => ({
        k: 'object' as const, id: o.id, kind: 'blob' as const, name: o.id, size: o.size, plainSize: o.plain.length, merkleRoot: o.merkleRoot, leafSize: o.leafSize, contents: [{ hash: '0'.repeat(64), offset: 0, length: o.plain.length }], time,
      })));
      await catalog.append([
        { k: 'place', id: objects[0]!.id, tier: 'peer', target: relative, location: `peer:host/${objects[0]!.id}`, time },
        { k: 'place', id: objects[1]!.id, tier: 'peer', target: 'someone-else', location: 'peer:other', time },
        { k: 'place', id: objects[2]!.id, tier: 'dir', target: relative, location: '/backup', time },
        { k: 'place', id: objects[3]!.id, tier: 'peer', target: relative, location: `peer:host/${objects[3]!.id}`, time },
      ]);
      const listed = await objectsAt(catalog, relative);
      expect(listed.map((o) => o.id).sort()).toEqual([objects[0]!.id, objects[3]!.id].sort());
      expect(listed.find((o) => o.id === objects[3]!.id)).toEqual(auditObject(objects[3]!));
      expect((await audit({ objects: listed })).passed).toBe(true);
    } finally {
      await catalog.close();
      await rm(catalogDir, { recursive: true, force: true });
    }
  });
});
