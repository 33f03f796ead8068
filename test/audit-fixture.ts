// Shared by the audit tests: real objects encoded with storage/objects/encode.ts,
// a host (libp2p on 127.0.0.1 with the object and audit services over a real
// HostStore on disk) and an owner node that stores the objects there through
// /hearth/object/1.
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Libp2p } from 'libp2p';
import type { PeerId } from '@libp2p/interface';
import { AuditService, type LeafProver } from '../protocol/audit.ts';
import { deriveKeys, type HomeKeys } from '../storage/keys.ts';
import { MerkleIndexStore } from '../storage/hoststore/merkle-index.ts';
import type { HostStoreOptions } from '../storage/hoststore/host-store.ts';
import { encodeObject, objectId, type ObjectEncoderPool } from '../storage/objects/encode.ts';
import { PeerTier } from '../storage/tier/peer.ts';
import type { AuditObject } from '../node/audit.ts';
import { introduce, startHost, type TestHost } from './object-protocol.fixture.ts';

export interface EncodedTestObject extends AuditObject {
  /** The age file, as the owner encoded it. */
  path: string;
  plain: Buffer;
}

export const ownerKeys: HomeKeys = deriveKeys(createHash('sha256').update('hearth audit test owner').digest());

/** Deterministic pseudo-random bytes (AES-CTR keystream of `seed`). */
export function pseudoRandomBytes(length: number, seed: string): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

/** Encrypt `plain` for the owner into `dir`; encoding the same plaintext again gives the same id but other bytes. */
export async function encodeToFile(dir: string, plain: Buffer, pool?: ObjectEncoderPool, name = randomBytes(6).toString('hex')): Promise<EncodedTestObject> {
  const path = join(dir, `${name}.age`);
  const encoded = await encodeObject({ plaintext: Readable.from([plain]), recipient: ownerKeys.x25519Public, output: createWriteStream(path), pool });
  return { id: objectId(ownerKeys.namingKey, encoded.plainDigest), size: encoded.encryptedSize, merkleRoot: encoded.merkleRoot, leafSize: encoded.leafSize, path, plain };
}

export interface AuditHost {
  host: TestHost;
  audit: AuditService;
  index: MerkleIndexStore;
  node: Libp2p;
  stop(): Promise<void>;
}

/**
 * A host whose audit service proves with a real MerkleIndexStore, or with
 * `prover(index)` standing in for a dishonest host; `options` set its store's
 * quota and clock and where its object service logs refusals.
 */
export async function startAuditHost(
  seedByte: number,
  members: () => PeerId[],
  home: string,
  prover?: (index: MerkleIndexStore) => LeafProver,
  options: Partial<Pick<HostStoreOptions, 'quotaFor' | 'now'>> & { log?: (line: string) => void } = {},
): Promise<AuditHost> {
  const host = await startHost(seedByte, members, { home, quotaFor: options.quotaFor ?? (() => Infinity), now: options.now }, undefined, options.log);
  const index = new MerkleIndexStore({ store: host.store });
  const audit = new AuditService({ registrar: host.node }, {
    store: host.store,
    isMember: (peer) => members().some((m) => m.equals(peer)),
    prover: prover ? prover(index) : index,
  });
  await audit.start();
  return {
    host,
    audit,
    index,
    node: host.node,
    async stop() {
      await audit.stop();
      await host.stop();
    },
  };
}

/** Store objects at a host through /hearth/object/1, as replication does: declaring the roots the encoder computed. */
export async function putObjects(owner: Libp2p, host: Libp2p, objects: readonly EncodedTestObject[]): Promise<void> {
  await introduce(owner, host);
  const tier = new PeerTier({ name: 'host', peerId: host.peerId, node: owner });
  for (const o of objects) {
    await tier.put(o.id, { size: o.size, merkleRoot: o.merkleRoot, leafSize: o.leafSize, open: (offset) => createReadStream(o.path, { start: offset }) });
  }
}

export function auditObject(o: AuditObject): AuditObject {
  return { id: o.id, size: o.size, merkleRoot: o.merkleRoot, leafSize: o.leafSize };
}

/** 32-byte seeds derived from a label, for audits that must repeat exactly. */
export function fixedSeed(label: string | number): Buffer {
  return createHash('sha256').update(`audit seed ${label}`).digest();
}

/** Set a file's mtime to exactly `ns` nanoseconds (GNU touch keeps nanoseconds; Node's utimes does not). */
export function setMtimeNs(path: string, ns: bigint): void {
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`, path]);
}
