// `hearth check`: are the home's own targets still holding what the catalog says
// they hold? Every placed object's existence and size (a directory: one stat each; a
// cloud target: one listing, and its stored checksum against the one recorded when it
// was placed), and for a share of directory copies (--read-data, --read-data-subset)
// the Merkle root of their bytes. What is wrong is marked, alerted and repaired
// (./damage.ts). Format of the report and the choices made: docs/check.md.
import { createHash, randomBytes } from 'node:crypto';
import { alertKey } from '../alerts.ts';
import type { ProgressSink } from '../progress.ts';
import type { PlacementRecord } from '../../storage/catalog/catalog.ts';
import type { Tier, TierKind } from '../../storage/tier/tier.ts';
import { CHECKED_KINDS, FREE_READ_KINDS, verifyCopy, type ListedCopy } from './copy-verify.ts';
import type { PriceTable } from '../prices.ts';
import { handleFindings, type CopyCareContext, type DamagedCopy, type Finding } from './damage.ts';

export interface TargetCheckOptions {
  /** Share of each target's objects whose bytes are read, 0 (sizes only) to 1 (all). */
  readData: number;
  /** Check only this target (by name). */
  target?: string;
}

export interface TargetSummary {
  name: string;
  kind: TierKind;
  /** Objects placed there that were looked at, and their encrypted bytes. */
  objects: number;
  bytes: number;
  /** Of those, read whole and hashed. */
  readObjects: number;
  readBytes: number;
  /** Set when the target could not be checked (a disk not mounted): nothing was judged. */
  error?: string;
  /** Requests the check sent to a cloud target, and what they cost at the price table's rates. */
  requests?: { list: number; head: number; dollars: number };
}

export interface TargetCheckReport {
  /** No damaged or missing copy, and every target could be checked. */
  ok: boolean;
  readData: number;
  startedAt: number;
  finishedAt: number;
  targets: TargetSummary[];
  damaged: DamagedCopy[];
}

/**
 * Whether this run reads the object: a hash of the run's random seed and the id, so
 * a sampled check reads about that share, a different one each run.
 */
function sampler(share: number): (id: string) => boolean {
  const seed = randomBytes(16);
  return (id) => share >= 1 || createHash('sha256').update(seed).update(id).digest().readUInt32BE(0) < share * 2 ** 32;
}

/** One listing of a cloud target: 1 request per 1,000 objects instead of a HEAD each. */
async function listCopies(tier: Tier): Promise<Map<string, ListedCopy>> {
  const copies = new Map<string, ListedCopy>();
  for await (const o of tier.list()) copies.set(o.name, { size: o.size, storageClass: (o as { storageClass?: string }).storageClass, checksums: o.checksums });
  return copies;
}

export async function runTargetCheck(ctx: CopyCareContext & { progress: ProgressSink; prices?: PriceTable }, options: TargetCheckOptions): Promise<TargetCheckReport> {
  const startedAt = Date.now();
  const named = options.target === undefined ? ctx.homeTiers : ctx.homeTiers.filter((t) => t.name === options.target);
  if (options.target !== undefined && named.length === 0) throw new Error(`no target named "${options.target}": see "hearth target ls"`);
  const tiers = named.filter((t) => CHECKED_KINDS.includes(t.kind));
  if (options.target !== undefined && tiers.length === 0) throw new Error(`target ${options.target} is a ${named[0]!.kind} target: hearth check covers ${CHECKED_KINDS.join(', ')} targets for now`);
  if (tiers.length === 0) throw new Error('this home has no target of its own to check: add one with "hearth target add dir PATH" or "hearth target add s3 --bucket B"');
  const summaries = new Map<Tier, TargetSummary>(tiers.map((t) => [t, { name: t.name, kind: t.kind, objects: 0, bytes: 0, readObjects: 0, readBytes: 0 }]));
  const read = sampler(options.readData);
  const listings = new Map<Tier, Map<string, ListedCopy>>();
  for (const tier of tiers) {
    if (FREE_READ_KINDS.includes(tier.kind)) continue;
    const summary = summaries.get(tier)!;
    try {
      const listed = await listCopies(tier);
      listings.set(tier, listed);
      const list = Math.max(1, Math.ceil(listed.size / 1000));
      // Drive bills no requests; S3 bills a LIST like a PUT.
      summary.requests = { list, head: 0, dollars: tier.kind === 'drive' ? 0 : (list / 1000) * (ctx.prices?.get('price.request.write') ?? 0.05) };
    } catch (err) {
      summary.error = (err as Error).message;
      ctx.log(`check of target ${tier.name} stopped: ${summary.error}`);
    }
  }
  const findings: Finding[] = [];
  /** Marked copies that read well now (the disk was replaced by a good clone, say). */
  const healed: PlacementRecord[] = [];
  let done = 0;
  let doneBytes = 0;
  for await (const object of ctx.catalog.objects()) {
    ctx.signal?.throwIfAborted();
    for (const tier of tiers) {
      const summary = summaries.get(tier)!;
      const placement = object.placements.find((p) => p.target === tier.name);
      if (!placement || summary.error !== undefined) continue;
      // A copy marked damaged is read every time: it is the repair's work list.
      const readData = placement.damaged !== undefined || read(object.id);
      try {
        const listed = listings.get(tier);
        const verdict = await verifyCopy(tier, object, readData, ctx.signal, listed ? { copy: listed.get(object.id), storageClass: ctx.storageClassOf?.(tier.name), checksum: placement.checksum } : undefined);
        if (verdict.stats && summary.requests) {
          // A HEAD for a checksum the listing does not give (S3's SHA-256), billed as a GET.
          summary.requests.head += verdict.stats;
          if (tier.kind !== 'drive') summary.requests.dollars += (verdict.stats / 1000) * (ctx.prices?.get('price.request.read') ?? 0.0004);
        }
        summary.objects++;
        summary.bytes += object.size;
        if (verdict.readBytes > 0 || (readData && FREE_READ_KINDS.includes(tier.kind))) summary.readObjects++;
        summary.readBytes += verdict.readBytes;
        doneBytes += verdict.readBytes;
        if (verdict.fault) findings.push({ tier, object, placement, fault: verdict.fault, detail: verdict.detail! });
        else if (placement.damaged !== undefined) healed.push(placement);
      } catch (err) {
        ctx.signal?.throwIfAborted();
        summary.error = (err as Error).message;
        ctx.log(`check of target ${tier.name} stopped: ${summary.error}`);
      }
    }
    ctx.progress.update({ phase: 'checking', files: ++done, bytes: doneBytes });
  }
  // A target holding none of its objects is an empty mount point or the wrong disk far more
  // often than a disk that lost everything: marking and re-copying it all would fill the
  // filesystem under the mount point. Until targets carry a marker file (DESIGN.md), say so instead.
  for (const [tier, summary] of summaries) {
    if (!FREE_READ_KINDS.includes(tier.kind)) continue;
    const missing = findings.filter((f) => f.tier === tier && f.fault === 'missing').length;
    if (summary.error !== undefined || summary.objects < 2 || missing < summary.objects) continue;
    summary.error = `none of the ${summary.objects} objects placed there is present: is the right disk mounted? Nothing was marked or copied`;
    findings.splice(0, findings.length, ...findings.filter((f) => f.tier !== tier));
  }
  // Recorded and repaired after the pass, not during it: that appends to the catalog being listed.
  if (healed.length) await ctx.catalog.append(healed.map(({ damaged: _, ...placement }) => ({ ...placement, time: Date.now() })));
  const damaged = await handleFindings(ctx, findings);
  for (const [tier, summary] of summaries) {
    if (summary.error === undefined && !damaged.some((d) => d.target === tier.name)) await ctx.alerts.resolve(alertKey('target-damage', tier.name));
  }
  ctx.progress.done();
  const targets = [...summaries.values()];
  return { ok: damaged.length === 0 && targets.every((t) => t.error === undefined), readData: options.readData, startedAt, finishedAt: Date.now(), targets, damaged };
}
