// Cold copies placed after the fact: a volume that the placement policy wants on an
// S3 target but that is not there yet (policy.cold fallback once relatives have been
// away for policy.fallbackAfter, or always for volumes stored before the target was
// added). Run after every backup and at the end of every replication pass; the
// copy is read from the outbox, a directory target, or a relative.
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Catalog, CatalogPayload, ObjectSummary, PlacementRecord } from '../storage/catalog/catalog.ts';
import type { ObjectSource, Tier } from '../storage/tier/tier.ts';
import { wantsCopy, type PlacementPolicy } from './placement-policy.ts';

export interface ColdPlacementOptions {
  catalog: Catalog;
  /** The S3 and Drive targets. */
  tiers: Tier[];
  policy: PlacementPolicy;
  relatives: number;
  /** Whether the home has other places (a directory target, relatives): see ObjectPlacementState. */
  heldElsewhere: boolean;
  /** Relatives whose copy of `object` counts towards the policy now. */
  peerCopies: (object: ObjectSummary & { placements: PlacementRecord[] }) => number;
  /** Where the ciphertext can be read, cheapest first. */
  sources: (object: ObjectSummary & { placements: PlacementRecord[] }) => ObjectSource[];
  log: (line: string) => void;
  signal?: AbortSignal;
  now?: number;
}

export interface ColdPlacementReport {
  placed: Array<{ id: string; target: string }>;
  failed: Array<{ id: string; target: string; error: string }>;
}

export async function placeColdCopies(o: ColdPlacementOptions): Promise<ColdPlacementReport> {
  const report: ColdPlacementReport = { placed: [], failed: [] };
  if (o.tiers.length === 0) return report;
  const now = o.now ?? Date.now();
  const wanted: Array<{ object: ObjectSummary & { placements: PlacementRecord[] }; tier: Tier }> = [];
  for await (const object of o.catalog.objects()) {
    const state = { kind: object.kind, time: object.time, peerCopies: o.peerCopies(object), relatives: o.relatives, heldElsewhere: o.heldElsewhere };
    for (const tier of o.tiers) {
      if (object.placements.some((p) => p.target === tier.name)) continue;
      if (wantsCopy(tier.kind, state, o.policy, now)) wanted.push({ object, tier });
    }
  }
  for (const { object, tier } of wanted) {
    if (o.signal?.aborted) break;
    const problems: string[] = [];
    let placed = false;
    for (const source of o.sources(object)) {
      try {
        await tier.put(object.id, source, o.signal);
        placed = true;
        break;
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    if (!placed) {
      const error = problems.length ? problems.join('; ') : 'no copy to read it from (not in the outbox, on a directory target, or at an online relative)';
      report.failed.push({ id: object.id, target: tier.name, error });
      o.log(`${tier.kind === 'drive' ? 'staged' : 'cold'} copy of ${object.id.slice(0, 12)} to ${tier.name} failed: ${error}`);
      continue;
    }
    const record: CatalogPayload = { k: 'place', id: object.id, tier: tier.kind, target: tier.name, location: tier.location(object.id), time: Date.now() };
    await o.catalog.append([record]);
    report.placed.push({ id: object.id, target: tier.name });
  }
  return report;
}

/** The copies on this machine: the outbox, then each directory target that holds it. */
export function localSources(object: ObjectSummary & { placements: PlacementRecord[] }, outboxDir: string, dirTiers: Tier[]): ObjectSource[] {
  const fileSource = (file: string): ObjectSource => ({ size: object.size, file, open: (offset) => createReadStream(file, { start: offset }) });
  const out: ObjectSource[] = [];
  const outbox = join(outboxDir, object.id);
  if (existsSync(outbox)) out.push(fileSource(outbox));
  for (const tier of dirTiers) if (object.placements.some((p) => p.target === tier.name)) out.push(fileSource(tier.location(object.id)));
  return out;
}

/**
 * Staged blobs on a Drive target that relatives now hold as the policy wants
 * (they came back): the Drive copy is deleted and unplaced. Blobs whose content a
 * volume holds are retired with all their copies elsewhere (retireCovered,
 * ObjectStore.retire); this is the other way a staged copy leaves Drive.
 */
export async function dropStagedCopies(o: Omit<ColdPlacementOptions, 'sources'>): Promise<ColdPlacementReport> {
  const report: ColdPlacementReport = { placed: [], failed: [] };
  const drives = o.tiers.filter((t) => t.kind === 'drive');
  if (drives.length === 0) return report;
  const now = o.now ?? Date.now();
  const records: CatalogPayload[] = [];
  for await (const object of o.catalog.objects()) {
    if (o.signal?.aborted) break;
    if (object.kind !== 'blob') continue;
    const peerCopies = o.peerCopies(object);
    // Only copies the policy no longer wants, and only once relatives hold the blob.
    if (o.relatives === 0 || peerCopies < Math.min(o.policy.peers, o.relatives)) continue;
    if (wantsCopy('drive', { kind: 'blob', time: object.time, peerCopies, relatives: o.relatives, heldElsewhere: o.heldElsewhere }, o.policy, now)) continue;
    for (const tier of drives) {
      if (!object.placements.some((p) => p.target === tier.name)) continue;
      try {
        await tier.delete(object.id);
        records.push({ k: 'unplace', id: object.id, target: tier.name, time: Date.now() });
        report.placed.push({ id: object.id, target: tier.name });
      } catch (err) {
        report.failed.push({ id: object.id, target: tier.name, error: `delete: ${(err as Error).message}` });
        o.log(`removing the staged copy of ${object.id.slice(0, 12)} from ${tier.name} failed: ${(err as Error).message}`);
      }
    }
  }
  if (records.length) await o.catalog.append(records);
  return report;
}
