// One relative's audit of a generated set: bytes on the wire, bytes the host read
// from disk, wall time. Not a test. The set (default 2.6 GB, the photo set's size,
// as 4 objects of 650 MB: volumes; --small: 260 MB) is encoded once into
// bench-data/audit/ and linked into a host store there. Three audits run over
// libp2p on 127.0.0.1 in this process:
//   1. first audit: the host has no Merkle index yet and builds them (reads everything);
//   2. indexed, cold: the index and object files dropped from the page cache first
//      (`dd iflag=nocache count=0`, a posix_fadvise DONTNEED; the VM's own disk cache may remain);
//   3. indexed, warm.
//   node test/bench/audit.bench.ts [--small] [--objects N]
import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, createWriteStream, linkSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { auditRelative, planAudit, type AuditObject } from '../../node/audit.ts';
import { ObjectEncoderPool, objectId } from '../../storage/objects/encode.ts';
import { startNode } from '../object-protocol.fixture.ts';
import { ownerKeys, startAuditHost } from '../audit-fixture.ts';

const small = process.argv.includes('--small');
const objectsArg = process.argv.indexOf('--objects');
const count = objectsArg > 0 ? Number(process.argv[objectsArg + 1]) : 4;
const total = small ? 260e6 : 2.6e9;
const objectSize = Math.floor(total / count);

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = join(repo, 'bench-data', 'audit', `${total}-${count}`);
const manifestPath = join(dataDir, 'manifest.json');
const MB = 1e6;

/** `size` pseudo-random bytes (AES-CTR keystream) in 1 MiB pieces. */
function plaintext(size: number, seed: number): Readable {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16));
  const zeros = Buffer.alloc(1024 * 1024);
  return Readable.from((function* () {
    for (let done = 0; done < size; done += zeros.length) yield cipher.update(zeros.subarray(0, Math.min(zeros.length, size - done)));
  })());
}

async function makeSet(): Promise<AuditObject[]> {
  if (existsSync(manifestPath)) return JSON.parse(readFileSync(manifestPath, 'utf8')) as AuditObject[];
  mkdirSync(join(dataDir, 'objects'), { recursive: true });
  const pool = new ObjectEncoderPool();
  const objects: AuditObject[] = [];
  for (let i = 0; i < count; i++) {
    const path = join(dataDir, 'objects', `${i}.age`);
    const started = performance.now();
    const encoded = await pool.encode({ plaintext: plaintext(objectSize, i + 1), recipient: ownerKeys.x25519Public, output: createWriteStream(path) });
    const id = objectId(ownerKeys.namingKey, encoded.plainDigest);
    objects.push({ id, size: encoded.encryptedSize, merkleRoot: encoded.merkleRoot, leafSize: encoded.leafSize });
    writeFileSync(join(dataDir, 'objects', `${i}.id`), id);
    process.stderr.write(`encoded object ${i + 1}/${count} (${(encoded.encryptedSize / MB).toFixed(0)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  await pool.close();
  writeFileSync(manifestPath, JSON.stringify(objects));
  return objects;
}

function dropFromPageCache(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) execFileSync('dd', [`if=${join(entry.parentPath, entry.name)}`, 'iflag=nocache', 'count=0', 'status=none']);
  }
}

const objects = await makeSet();
const owner = await startNode(31);
const ownerId = owner.peerId.toString();
const hostHome = join(dataDir, 'host');
rmSync(hostHome, { recursive: true, force: true });
const host = await startAuditHost(32, () => [owner.peerId], hostHome);
// The host store's layout, with the encoded files linked in (no copy): what /hearth/object/1 would have left.
for (let i = 0; i < objects.length; i++) {
  const target = host.host.store.objectFile(ownerId, objects[i]!.id);
  mkdirSync(dirname(target), { recursive: true });
  linkSync(join(dataDir, 'objects', `${i}.age`), target);
}
await owner.peerStore.merge(host.node.peerId, { multiaddrs: host.node.getMultiaddrs() });

const plan = planAudit(objects);
console.log(`set: ${objects.length} objects, ${(plan.bytes / MB).toFixed(0)} MB; ${plan.samples} samples; traffic bound ${(plan.trafficBound / MB).toFixed(3)} MB`);
console.log('| audit | wall s | bytes transferred | host read: samples | host read: index | host read: index build | passed |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const run of ['first (builds indexes)', 'indexed, cold cache', 'indexed, warm cache']) {
  if (run.includes('cold')) dropFromPageCache(join(hostHome, 'hosted'));
  const before = { ...host.index.counters };
  const started = performance.now();
  const report = await auditRelative({ node: owner, peerId: host.node.peerId, objects });
  const wall = (performance.now() - started) / 1000;
  const c = host.index.counters;
  console.log(`| ${run} | ${wall.toFixed(2)} | ${report.bytesTransferred} | ${c.objectBytesRead - before.objectBytesRead} | ${c.indexBytesRead - before.indexBytesRead} | ${c.buildBytesRead - before.buildBytesRead} | ${report.passed} |`);
  if (!report.passed) console.log(JSON.stringify(report.failures));
}
await host.stop();
await owner.stop();
rmSync(hostHome, { recursive: true, force: true });
