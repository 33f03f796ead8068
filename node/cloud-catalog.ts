// The catalog log kept in the cloud, so the recovery phrase and the cloud's
// credentials alone bring everything back (docs/s3-tier.md, "The catalog in the
// bucket"). The log's records are already encrypted and signed; they are uploaded
// in segments, each the records added since the last upload, so a daily backup
// costs one PUT. Segments are named by their first and last record number, which
// lets one listing find the cloud's head, a gap, or a rollback.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { envelopeHash, type Catalog, type ChainHead } from '../storage/catalog/catalog.ts';
import type { Tier } from '../storage/tier/tier.ts';
import { readStateFile, writeFileAtomicSync } from './atomic-file.ts';

const SEGMENT = /^(\d{12})-(\d{12})$/;
/** A segment holds at most this many bytes of records; a longer push writes several. */
const SEGMENT_BYTES = 64 * 1024 * 1024;

export interface SegmentName {
  name: string;
  first: number;
  last: number;
}

export function segmentName(first: number, last: number): string {
  return `${String(first).padStart(12, '0')}-${String(last).padStart(12, '0')}`;
}

interface PushedState {
  version: 1;
  /** The highest record this home has seen stored in that cloud log. */
  seq: number;
  hash: string;
}

export class CloudCatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CloudCatalogError';
  }
}

/** One target's copy of the log: `tier` holds only segments (a catalog-only namespace). */
export class CloudCatalogLog {
  readonly target: string;
  private readonly tier: Tier;
  private readonly stateFile: string;

  constructor(target: string, tier: Tier, stateFile: string) {
    this.target = target;
    this.tier = tier;
    this.stateFile = stateFile;
  }

  private pushed(): PushedState {
    return readStateFile<PushedState>(this.stateFile, () => ({ version: 1, seq: 0, hash: '' }), (s) => s.version === 1 && Number.isSafeInteger(s.seq), () => {});
  }

  /** Segments in order; throws when they do not follow each other from record 1. */
  async segments(): Promise<SegmentName[]> {
    const found: SegmentName[] = [];
    for await (const o of this.tier.list()) {
      const m = SEGMENT.exec(o.name);
      if (m) found.push({ name: o.name, first: Number(m[1]), last: Number(m[2]) });
    }
    found.sort((a, b) => a.first - b.first || a.last - b.last);
    // A push killed after its PUT and before its state was saved may upload a
    // segment again that overlaps the next; keep the ones that extend the chain.
    const chain: SegmentName[] = [];
    let next = 1;
    for (const s of found) {
      if (s.last < next) continue;
      if (s.first > next) throw new CloudCatalogError(`the catalog on ${this.target} has a gap: records ${next}-${s.first - 1} are missing; the bucket was changed outside Hearth`);
      chain.push(s);
      next = s.last + 1;
    }
    return chain;
  }

  /**
   * Uploads the records the cloud lacks. Refuses, naming the fault, when the cloud
   * holds less than this home stored there before (a rollback, or segments deleted)
   * and when it holds more than this catalog (this home was recovered without
   * pulling: recover first, or the two would fork).
   */
  async push(catalog: Catalog): Promise<ChainHead> {
    const segments = await this.segments();
    const cloudHead = segments.at(-1)?.last ?? 0;
    const state = this.pushed();
    if (cloudHead < state.seq) {
      throw new CloudCatalogError(
        `the catalog on ${this.target} ends at record ${cloudHead}, but this home stored records up to ${state.seq} there: the bucket serves an older catalog (rolled back or deleted); check the bucket's versioning and lifecycle rules`,
      );
    }
    const local = catalog.head();
    if (cloudHead > local.seq) {
      throw new CloudCatalogError(`the catalog on ${this.target} holds records up to ${cloudHead}, but this home's ends at ${local.seq}: recover it first with "hearth catalog pull ${this.target}"`);
    }
    let first = cloudHead + 1;
    let pending: Buffer[] = [];
    let bytes = 0;
    let last = cloudHead;
    let lastHash = state.hash;
    const flush = async (): Promise<void> => {
      if (pending.length === 0) return;
      const body = Buffer.concat(pending);
      await this.tier.put(segmentName(first, last), { size: body.length, open: (offset) => Readable.from([body.subarray(offset)]) });
      this.save({ version: 1, seq: last, hash: lastHash });
      first = last + 1;
      pending = [];
      bytes = 0;
    };
    for await (const { seq, bytes: envelope } of catalog.envelopes(cloudHead + 1)) {
      const frame = Buffer.alloc(4);
      frame.writeUInt32BE(envelope.length);
      pending.push(frame, envelope);
      bytes += 4 + envelope.length;
      last = seq;
      lastHash = envelopeHash(envelope);
      if (bytes >= SEGMENT_BYTES) await flush();
    }
    await flush();
    return catalog.head();
  }

  /**
   * Brings the cloud's records into `catalog`, which checks each one's signature,
   * chain and encryption. A cloud log shorter than what this home stored there is a
   * rollback; one merely behind this catalog (never pushed to yet) has nothing to give.
   */
  async pull(catalog: Catalog): Promise<{ head: ChainHead; pulled: number }> {
    const segments = await this.segments();
    const cloudHead = segments.at(-1)?.last ?? 0;
    const before = catalog.head();
    const stored = this.pushed().seq;
    if (cloudHead < stored) {
      throw new CloudCatalogError(`the catalog on ${this.target} ends at record ${cloudHead}, but this home stored records up to ${stored} there: the bucket serves an older catalog (rolled back or deleted)`);
    }
    if (cloudHead <= before.seq) return { head: before, pulled: 0 };
    const tier = this.tier;
    async function* records(): AsyncIterable<Buffer> {
      for (const s of segments) {
        if (s.last <= before.seq) continue;
        const body = await buffer(await tier.get(s.name));
        for (let at = 0; at < body.length; ) {
          if (at + 4 > body.length) throw new CloudCatalogError(`catalog segment ${s.name} is truncated`);
          const length = body.readUInt32BE(at);
          if (at + 4 + length > body.length) throw new CloudCatalogError(`catalog segment ${s.name} is truncated`);
          yield body.subarray(at + 4, at + 4 + length);
          at += 4 + length;
        }
      }
    }
    const head = await catalog.importEnvelopes(records());
    if (head.seq < cloudHead) throw new CloudCatalogError(`the catalog on ${this.target} lists records up to ${cloudHead} but its segments hold only ${head.seq}`);
    this.save({ version: 1, seq: head.seq, hash: head.hash });
    return { head, pulled: head.seq - before.seq };
  }

  private save(state: PushedState): void {
    mkdirSync(dirname(this.stateFile), { recursive: true });
    writeFileAtomicSync(this.stateFile, JSON.stringify(state) + '\n');
  }
}
