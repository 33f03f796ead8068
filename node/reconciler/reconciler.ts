// The one reconciler: for each object in the catalog it asks the placement policy
// (placement-policy.ts) where copies should be, compares that with the catalog's
// placements, and carries out the difference: puts where a copy is wanted and
// missing, deletes where a copy is no longer wanted, records both. Relatives,
// directory targets, Drive and S3 targets are all places to it; what differs
// between them (how a put fails, what "offline" means) stays in each place's own
// send() and judge(). The daemon's replication pass runs it over the home's targets
// and the relatives that answer; a backup run over the home's targets
// (node/commands.ts).
import type { Catalog, CatalogPayload, ObjectSummary, PlacementRecord } from '../../storage/catalog/catalog.ts';
import { PermanentTierError, TargetUnavailableError, placedChecksum, type ObjectSource, type PutReceipt, type Tier, type TierKind } from '../../storage/tier/tier.ts';
import { dropsCopy, volumeCovers, wantsCopy, type ObjectPlacementState, type PlacementPolicy } from './placement-policy.ts';

export type HeldObject = ObjectSummary & { placements: PlacementRecord[] };

/** A place copies go to and leave from: a relative, or a directory, Drive or S3 target. */
export interface Place {
  readonly kind: TierKind;
  /** What placements record as the target: a target's name, a relative's PeerId. */
  readonly name: string;
  /** The name people know it by, for messages. */
  readonly label: string;
  location(id: string): string;
  /** Store the object from `source`; resolves to the bytes sent and, for a cloud target, the checksum it keeps (PutReceipt). */
  send(object: HeldObject, source: ObjectSource, signal?: AbortSignal): Promise<Sent>;
  /**
   * After a send failed: throw to give the object up at this place for this pass
   * (the place, not the copy, was the problem), 'bad-copy' to stop sending from
   * this source to any place, 'next' to try the next source.
   */
  judge?(err: unknown, object: HeldObject, source: ObjectSource): 'bad-copy' | 'next';
  delete(id: string): Promise<void>;
}

export type Sent = PutReceipt & { bytes: number };

export interface ReconcileOptions {
  catalog: Catalog;
  policy: PlacementPolicy;
  /** Relatives in the family. */
  relatives: number;
  /** Whether the home has places outside this reconciler (a directory target, relatives): see ObjectPlacementState. */
  heldElsewhere: boolean;
  /** The places that can be reached now, tried in this order: relatives before Drive and S3, so a cold copy is only made when they fall short. */
  places: Place[];
  /** Whether a relative's placement counts towards the policy (one gone quiet for too long does not). Default: all do. */
  counts?: (p: PlacementRecord) => boolean;
  /** Placements to forget and record as gone: at homes that left the family. */
  forgets?: (p: PlacementRecord) => boolean;
  /** Where an object's ciphertext can be read, cheapest first; asked once per object that needs a put. */
  sources: (object: HeldObject) => ObjectSource[];
  /** Told of each object once this pass is done with it, with the relatives that hold it and count. */
  settled?: (object: HeldObject, peerCopies: number) => void;
  log: (line: string) => void;
  signal?: AbortSignal;
  now?: number;
}

export interface ReconcileReport {
  placed: Array<{ id: string; place: Place; bytes: number }>;
  /** Copies the policy no longer wants, deleted and unplaced. */
  dropped: Array<{ id: string; place: Place }>;
  failed: Array<{ id: string; place: Place; error: Error }>;
  /** Copies wanted but with nothing reachable to read them from now (no outbox copy, no place that holds one answers). */
  unsourced: Array<{ id: string; place: Place }>;
  /** Places that could take nothing for the rest of the pass (a full or unplugged disk), with why. */
  unavailable: Array<{ place: Place; reason: string }>;
  /** What the puts to relatives carried, from the first one's start to the last one's answer. */
  sentToRelatives: { objects: number; bytes: number; seconds: number };
}

/**
 * One of the home's own targets (a directory, Drive, S3) as a place. A refusal that retrying cannot fix (a full
 * Drive, a lapsed sign-in, no permission) is the target's, and ends the tries; any
 * other failure may be the copy's, so the next source is tried.
 */
export function tierPlace(tier: Tier): Place {
  return {
    kind: tier.kind,
    name: tier.name,
    label: tier.name,
    location: (id) => tier.location(id),
    send: async (object, source, signal) => ({ ...(await tier.put(object.id, source, signal)), bytes: object.size }),
    delete: (id) => tier.delete(id),
    judge: (err) => {
      if (err instanceof PermanentTierError) throw err;
      return 'next';
    },
  };
}

const WHAT_FAILED: Record<TierKind, string> = { peer: 'replication', drive: 'staged copy', s3: 'cold copy', dir: 'copy' };
/** Records are appended in batches so a pass over many objects does not write the log once per object. */
const BATCH = 200;

export async function reconcile(o: ReconcileOptions): Promise<ReconcileReport> {
  const report: ReconcileReport = { placed: [], dropped: [], failed: [], unsourced: [], unavailable: [], sentToRelatives: { objects: 0, bytes: 0, seconds: 0 } };
  const usable = (place: Place): boolean => !report.unavailable.some((u) => u.place === place);
  const now = o.now ?? Date.now();
  const counts = o.counts ?? (() => true);
  const records: CatalogPayload[] = [];
  let firstPeerPut: number | undefined;
  let lastPeerPut = 0;
  for await (const object of o.catalog.objects()) {
    if (o.signal?.aborted) break;
    const placements: PlacementRecord[] = [];
    for (const p of object.placements) {
      if (o.forgets?.(p)) records.push({ k: 'unplace', id: object.id, target: p.target, time: Date.now() });
      else placements.push(p);
    }
    const state: ObjectPlacementState = {
      kind: object.kind,
      time: object.time,
      peerCopies: placements.filter((p) => p.tier === 'peer' && counts(p)).length,
      relatives: o.relatives,
      heldElsewhere: o.heldElsewhere,
    };
    let sources: ObjectSource[] | undefined;
    for (const place of o.places) {
      if (o.signal?.aborted) break;
      if (!usable(place) || placements.some((p) => p.target === place.name)) continue;
      if (!wantsCopy(place.kind, state, o.policy, now)) continue;
      sources ??= o.sources(object);
      const started = performance.now();
      try {
        const { bytes, ...receipt } = await putFrom(place, object, sources, o.signal);
        records.push({ k: 'place', id: object.id, tier: place.kind, target: place.name, location: place.location(object.id), time: Date.now(), ...placedChecksum(receipt) });
        report.placed.push({ id: object.id, place, bytes });
        if (place.kind === 'peer') {
          state.peerCopies++;
          firstPeerPut ??= started;
          lastPeerPut = performance.now();
          report.sentToRelatives.objects++;
          report.sentToRelatives.bytes += bytes;
        }
      } catch (err) {
        if (o.signal?.aborted) break;
        if (err instanceof NoSourceError) {
          report.unsourced.push({ id: object.id, place });
          continue;
        }
        const error = err instanceof Error ? err : new Error(String(err));
        if (err instanceof TargetUnavailableError) {
          report.unavailable.push({ place, reason: error.message });
          o.log(`target ${place.label} skipped for the rest of this pass: ${error.message}`);
          continue;
        }
        report.failed.push({ id: object.id, place, error });
        o.log(`${WHAT_FAILED[place.kind]} of ${object.id.slice(0, 12)} to ${place.label} failed: ${error.message}`);
      }
    }
    for (const place of o.places) {
      if (o.signal?.aborted) break;
      if (!usable(place) || !placements.some((p) => p.target === place.name) || !dropsCopy(place.kind, state, o.policy, now)) continue;
      try {
        await place.delete(object.id);
        records.push({ k: 'unplace', id: object.id, target: place.name, time: Date.now() });
        report.dropped.push({ id: object.id, place });
      } catch (err) {
        const error = new Error(`delete: ${(err as Error).message}`);
        report.failed.push({ id: object.id, place, error });
        o.log(`removing the copy of ${object.id.slice(0, 12)} from ${place.label} failed: ${(err as Error).message}`);
      }
    }
    o.settled?.(object, state.peerCopies);
    if (records.length >= BATCH) await o.catalog.append(records.splice(0));
  }
  if (records.length) await o.catalog.append(records);
  if (firstPeerPut !== undefined) report.sentToRelatives.seconds = (lastPeerPut - firstPeerPut) / 1000;
  return report;
}

export interface RetireRule {
  dirTargets: string[];
  peersWanted: number;
}

/**
 * Retire staged blobs that volumes cover (volumeCovers): their copies are deleted
 * at every place given (relatives keep them for their delete delay) and, once none
 * is left, the blob is retired; returns their ids. Run after reconcile(), so a
 * volume placed in that pass covers its blobs at once. Without relatives, the
 * backup retires blobs as it packs them (ObjectStore.retire) instead.
 */
export async function retireCovered(o: Pick<ReconcileOptions, 'catalog' | 'signal'>, places: Place[], rule: RetireRule): Promise<{ retired: string[]; failed: ReconcileReport['failed'] }> {
  const byName = new Map(places.map((p) => [p.name, p] as const));
  const retired: string[] = [];
  const failed: ReconcileReport['failed'] = [];
  const blobs: HeldObject[] = [];
  for await (const object of o.catalog.objects()) if (object.kind === 'blob') blobs.push(object);
  for (const blob of blobs) {
    if (o.signal?.aborted) break;
    // Listed a moment ago; one retired since then is done with.
    const hash = (await o.catalog.object(blob.id))?.contents[0]?.hash;
    if (hash === undefined) continue;
    const locations = await o.catalog.locate(hash);
    if (!locations.some((l) => l.object.kind === 'volume' && volumeCovers(l.placements, rule.dirTargets, rule.peersWanted))) continue;
    const records: CatalogPayload[] = [];
    // A copy at a place not reachable now (a relative offline) keeps its placement until a later pass.
    for (const p of blob.placements) {
      const place = byName.get(p.target);
      if (!place) continue;
      try {
        await place.delete(blob.id);
        records.push({ k: 'unplace', id: blob.id, target: p.target, time: Date.now() });
      } catch (err) {
        failed.push({ id: blob.id, place, error: new Error(`delete: ${(err as Error).message}`) });
      }
    }
    if (records.length === blob.placements.length) {
      records.push({ k: 'retire', id: blob.id, time: Date.now() });
      retired.push(blob.id);
    }
    if (records.length) await o.catalog.append(records);
  }
  return { retired, failed };
}

/**
 * Put from the first source that works. A source whose copy is bad is dropped
 * from `sources`, so other places are not sent it too; a place that is itself the
 * problem throws from judge() and ends the tries at once.
 */
async function putFrom(place: Place, object: HeldObject, sources: ObjectSource[], signal?: AbortSignal): Promise<Sent> {
  const problems: string[] = [];
  for (const source of [...sources]) {
    try {
      return await place.send(object, source, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      if (place.judge?.(err, object, source) === 'bad-copy') sources.splice(sources.indexOf(source), 1);
      problems.push((err as Error).message);
    }
  }
  if (problems.length) throw new Error(`no healthy copy to send from: ${problems.join('; ')}`);
  throw new NoSourceError();
}

export class NoSourceError extends Error {
  constructor() {
    super('no copy to send from (not in the outbox, on a directory target, or at an online relative)');
    this.name = 'NoSourceError';
  }
}
