// Turning plaintext into a placed object: encrypt into the spool (so every place
// receives the same ciphertext, and a retry or resume re-reads it instead of
// re-encrypting), name it by HMAC of its plaintext digest, put it to every target,
// and only then record object and placements in the catalog, in one batch. A crash
// before that record leaves at worst an unreferenced file on a target, never a
// catalog entry for bytes that are not there.
import { createReadStream, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { MerkleBuilder } from '../storage/merkle.ts';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { deferredReadable } from './deferred-stream.ts';
import { DirectWriteStream } from '../storage/direct-write.ts';
import { readObjectRange } from './object-read.ts';
import type { HomeKeys } from '../storage/keys.ts';
import { TargetUnavailableError, placedChecksum, type PutReceipt, type Tier } from '../storage/tier/tier.ts';
import type { Catalog, CatalogPayload, ObjectRecord } from '../storage/catalog/catalog.ts';
import { objectId, type EncodeOptions, type ObjectEncoderPool } from '../storage/objects/encode.ts';

export interface ObjectContent {
  hash: string;
  offset: number;
  length: number;
}

export interface EncodedObject {
  id: string;
  plainDigest: string;
  plainSize: number;
  encryptedSize: number;
  merkleRoot: string;
  leafSize: number;
  spoolFile: string;
}

/**
 * Removes what a killed process left in the spool: a half-written `.tmp-` file, or
 * an object encoded but not yet recorded or not yet dropped (up to a whole volume
 * each), except what `keep` names (spool files a later run reads). Files written
 * since `startedMs` are left alone; the backup's sweep (node/orphans.ts) passes
 * Infinity, as no encode can be in flight then. Returns how many were removed.
 */
export function sweepSpoolLeftovers(spoolDir: string, startedMs: number = performance.timeOrigin, keep: (name: string) => boolean = () => false): number {
  let removed = 0;
  for (const entry of readdirSync(spoolDir, { withFileTypes: true })) {
    if (!entry.isFile() || keep(entry.name)) continue;
    const path = join(spoolDir, entry.name);
    if ((lstatSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Infinity) < startedMs) {
      rmSync(path, { force: true });
      removed++;
    }
  }
  return removed;
}

/** Every target is out (full, read-only, not mounted) and no relative waits for objects: storing more is pointless this run. */
export class NoTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoTargetError';
  }
}

export class ObjectStore {
  private readonly spoolDir: string;
  private readonly keys: HomeKeys;
  private readonly catalog: Catalog;
  private readonly tiers: Tier[];
  private readonly encoder: ObjectEncoderPool;

  private readonly outboxDir: string | undefined;
  private readonly wants: (tier: Tier, kind: 'blob' | 'volume') => boolean;
  private readonly resumable: (id: string) => boolean;
  /** Targets out for the rest of this store's life (a run), with why: full, read-only, not mounted. */
  private readonly unavailable = new Map<string, string>();
  private readonly onUnavailable: (target: string, reason: string) => void;

  /**
   * With `outboxDir`, every stored object is also kept there (a hard link to the
   * spool copy, no extra bytes) until the replicator has sent it to relatives.
   * `wants` is the placement policy's answer for a new object (default: every tier).
   * `resumable` says an upload of that object was under way when a run was killed
   * (an S3 multipart journal): its spool file was kept, and is used again.
   */
  constructor(options: {
    spoolDir: string; keys: HomeKeys; catalog: Catalog; tiers: Tier[]; encoder: ObjectEncoderPool; outboxDir?: string;
    wants?: (tier: Tier, kind: 'blob' | 'volume') => boolean; resumable?: (id: string) => boolean;
    onUnavailable?: (target: string, reason: string) => void;
  }) {
    this.spoolDir = options.spoolDir;
    this.onUnavailable = options.onUnavailable ?? (() => {});
    this.outboxDir = options.outboxDir;
    if (this.outboxDir) mkdirSync(this.outboxDir, { recursive: true });
    this.keys = options.keys;
    this.catalog = options.catalog;
    this.tiers = options.tiers;
    this.encoder = options.encoder;
    this.wants = options.wants ?? (() => true);
    this.resumable = options.resumable ?? (() => false);
    mkdirSync(this.spoolDir, { recursive: true });
  }

  /** Encrypt plaintext into the spool under its final id; `inline` as in EncodeOptions. */
  async encode(plaintext: Readable, options: Pick<EncodeOptions, 'inline'> = {}): Promise<EncodedObject> {
    const tmp = join(this.spoolDir, `.tmp-${randomBytes(6).toString('hex')}`);
    const output = new DirectWriteStream(tmp);
    try {
      const result = await this.encoder.encode({ plaintext, output, recipient: this.keys.x25519Public, inline: options.inline });
      const id = objectId(this.keys.namingKey, result.plainDigest);
      const spoolFile = join(this.spoolDir, id);
      if (this.resumable(id) && existsSync(spoolFile)) {
        // The same plaintext encrypted again has other ciphertext (a fresh file key);
        // the upload under way holds parts of the first, so that one is kept.
        rmSync(tmp, { force: true });
        return { id, spoolFile, ...result, encryptedSize: statSync(spoolFile).size, merkleRoot: await merkleRootOf(spoolFile, result.leafSize) };
      }
      renameSync(tmp, spoolFile);
      return { id, spoolFile, ...result };
    } catch (err) {
      // The file is created asynchronously: remove it once the stream is done with it.
      await finished(output).catch(() => {});
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  discard(encoded: EncodedObject): void {
    rmSync(encoded.spoolFile, { force: true });
  }

  /**
   * Put a spooled object to every target the policy wants it on and return the records that say so; the
   * caller appends them (alone, or batched with other objects') and then the spool
   * copy is no longer needed.
   */
  async put(encoded: EncodedObject, meta: { kind: 'blob' | 'volume'; name: string; contents: ObjectContent[] }): Promise<CatalogPayload[]> {
    const time = Date.now();
    const record: ObjectRecord = {
      k: 'object',
      id: encoded.id,
      kind: meta.kind,
      name: meta.name,
      size: encoded.encryptedSize,
      plainSize: encoded.plainSize,
      merkleRoot: encoded.merkleRoot,
      leafSize: encoded.leafSize,
      contents: meta.contents,
      time,
    };
    const payloads: CatalogPayload[] = [record];
    if (this.outboxDir) {
      rmSync(join(this.outboxDir, encoded.id), { force: true });
      linkSync(encoded.spoolFile, join(this.outboxDir, encoded.id));
    }
    // Only one directory target may take the spool file itself: it hard-links it, and two
    // targets on one filesystem sharing an inode would be one copy, damaged together.
    let linked = false;
    for (const tier of this.tiers) {
      if (!this.wants(tier, meta.kind) || this.unavailable.has(tier.name)) continue;
      const file = tier.kind === 'dir' && linked ? undefined : encoded.spoolFile;
      let receipt: PutReceipt | void;
      try {
        receipt = await tier.put(encoded.id, { size: encoded.encryptedSize, file, open: (offset) => createReadStream(encoded.spoolFile, { start: offset }) });
      } catch (err) {
        // A full, read-only or unmounted target stops only itself; what the others took is recorded.
        if (!(err instanceof TargetUnavailableError)) throw err;
        this.unavailable.set(tier.name, err.message);
        this.onUnavailable(tier.name, err.message);
        continue;
      }
      if (tier.kind === 'dir') linked = true;
      payloads.push({ k: 'place', id: encoded.id, tier: tier.kind, target: tier.name, location: tier.location(encoded.id), time, ...placedChecksum(receipt) });
    }
    if (payloads.length === 1 && !this.outboxDir && this.unavailable.size > 0) {
      throw new NoTargetError(`no target can store objects now: ${[...this.unavailable.values()].join('; ')}`);
    }
    return payloads;
  }

  /** Targets this run stopped using, and why (one entry per target). */
  unavailableTargets(): Array<{ target: string; reason: string }> {
    return [...this.unavailable].map(([target, reason]) => ({ target, reason }));
  }

  /** Put, record, and drop the spool copy. */
  async place(encoded: EncodedObject, meta: { kind: 'blob' | 'volume'; name: string; contents: ObjectContent[] }): Promise<void> {
    await this.catalog.append(await this.put(encoded, meta));
    this.discard(encoded);
  }

  /**
   * A stored object's plaintext, from the first target that holds it. Returned at
   * once (the ISO writer opens its inputs synchronously); errors arrive on the stream.
   */
  openPlaintext(object: { id: string; size: number; plainSize: number }): Readable {
    return deferredReadable(async () => {
      const placements = await this.catalog.placements(object.id);
      // A copy marked damaged (node/checks/) is read only when there is no other.
      const healthy = new Set(placements.filter((p) => p.damaged === undefined).map((p) => p.target));
      const placed = new Set(placements.map((p) => p.target));
      const usable = this.tiers.filter((t) => !this.unavailable.has(t.name));
      const tier = usable.find((t) => healthy.has(t.name)) ?? usable.find((t) => placed.has(t.name));
      if (!tier) throw new Error(`object ${object.id} is on no configured target`);
      return readObjectRange(tier, object, this.keys.x25519Secret, 0, object.plainSize);
    });
  }

  /**
   * Remove a staged blob whose content a volume now holds: delete it everywhere
   * and mark it retired. Returns false, doing nothing, when that is not yet safe or
   * possible here: with relatives (outbox set) the volume must first reach them, so
   * the daemon's replicator retires it; and a blob placed somewhere this store
   * cannot reach stays until that place can be asked.
   */
  async retire(id: string): Promise<boolean> {
    if (this.outboxDir) return false;
    const placements = await this.catalog.placements(id);
    const tiers = placements.map((p) => this.tiers.find((t) => t.name === p.target && !this.unavailable.has(t.name)));
    if (tiers.some((t) => t === undefined)) return false;
    const time = Date.now();
    const payloads: CatalogPayload[] = [];
    for (const [i, p] of placements.entries()) {
      await tiers[i]!.delete(id);
      payloads.push({ k: 'unplace', id, target: p.target, time });
    }
    payloads.push({ k: 'retire', id, time });
    await this.catalog.append(payloads);
    return true;
  }
}

async function merkleRootOf(file: string, leafSize: number): Promise<string> {
  const tree = new MerkleBuilder(leafSize);
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) tree.update(chunk as Buffer);
  return tree.digest();
}
