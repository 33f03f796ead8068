// What happens once a copy on one of the home's own targets is found missing or
// damaged, whoever found it (`hearth check`, a restore, a replication pass): the
// placement is marked damaged in the catalog (so `objects` shows it and nothing
// counts it towards the policy), the family is alerted like a failed audit, and the
// copy is written again from a healthy one (another target, then a relative),
// atomically and checked, after which a fresh placement replaces the mark.
import type { Catalog, CatalogPayload, PlacementRecord } from '../../storage/catalog/catalog.ts';
import { placedChecksum, type PutReceipt, type Tier } from '../../storage/tier/tier.ts';
import { alertKey, type AlertCenter } from '../alerts.ts';
import { FREE_READ_KINDS, verifiedSource, verifyCopy, type CopyFault, type ExpectedObject } from './copy-verify.ts';

/** Everything the checks need from the home. */
export interface CopyCareContext {
  catalog: Catalog;
  /** The home's own targets (directories, S3), checked and repaired. */
  homeTiers: Tier[];
  /** The storage class an S3 target keeps its objects in (absent: the store's default). */
  storageClassOf?: (target: string) => string | undefined;
  /** Relatives a healthy copy can come from; empty when no daemon runs. `name` is for people. */
  relatives: () => Promise<Array<{ tier: Tier; name: string }>>;
  alerts: AlertCenter;
  log: (line: string) => void;
  signal?: AbortSignal;
}

/** A copy found bad, as found and after the repair attempt. */
export interface DamagedCopy {
  target: string;
  id: string;
  kind: 'blob' | 'volume';
  fault: CopyFault;
  detail: string;
  /** The place the good copy came from, when repaired. */
  repairedFrom?: string;
  /** Why it was not repaired. */
  repairError?: string;
}

export interface Finding {
  tier: Tier;
  object: CheckedObject;
  placement: PlacementRecord;
  fault: CopyFault;
  detail: string;
}

/** Marks, repairs and alerts for each finding; returns them as they ended. */
export async function handleFindings(ctx: CopyCareContext, findings: Finding[]): Promise<DamagedCopy[]> {
  if (findings.length === 0) return [];
  const time = Date.now();
  // A copy already marked keeps its first mark: a monthly check of a copy nothing can repair adds nothing to the log.
  const marks: CatalogPayload[] = findings
    .filter((f) => f.placement.damaged === undefined)
    .map((f) => ({ ...f.placement, time, damaged: `${f.fault}: ${f.detail}` }));
  if (marks.length) await ctx.catalog.append(marks);
  const out: DamagedCopy[] = [];
  for (const f of findings) {
    const copy: DamagedCopy = { target: f.tier.name, id: f.object.id, kind: f.object.kind, fault: f.fault, detail: f.detail };
    try {
      const repaired = await repair(ctx, f.tier, f.object);
      copy.repairedFrom = repaired.from;
      await ctx.catalog.append([{ k: 'place', id: f.object.id, tier: f.tier.kind, target: f.tier.name, location: f.tier.location(f.object.id), time: Date.now(), ...placedChecksum(repaired.receipt) }]);
    } catch (err) {
      copy.repairError = (err as Error).message;
    }
    ctx.log(`target ${copy.target}: object ${copy.id} (${copy.kind}) ${copy.fault}: ${copy.detail}; ${copy.repairedFrom ? `repaired from ${copy.repairedFrom}` : `not repaired: ${copy.repairError}`}`);
    out.push(copy);
  }
  await alertDamage(ctx.alerts, out);
  return out;
}

/** Writes the object to `target` again from the first healthy copy elsewhere; returns where it came from and what the target said of it. */
async function repair(ctx: CopyCareContext, target: Tier, object: ExpectedObject): Promise<{ from: string; receipt: PutReceipt | void }> {
  const healthy = new Set((await ctx.catalog.placements(object.id)).filter((p) => p.damaged === undefined && p.target !== target.name).map((p) => p.target));
  const others = ctx.homeTiers.filter((t) => t !== target && healthy.has(t.name)).map((tier) => ({ tier, name: tier.name }));
  // Cheapest first, as a restore reads: directories, relatives, then the cloud (egress is billed; a cold copy fails and the next is tried).
  const sources = [
    ...others.filter((s) => s.tier.kind === 'dir'),
    ...(await ctx.relatives()).filter((r) => healthy.has(r.tier.name)),
    ...others.filter((s) => s.tier.kind !== 'dir'),
  ];
  const problems: string[] = [];
  for (const source of sources) {
    ctx.signal?.throwIfAborted();
    try {
      // put() is atomic: the damaged copy is replaced only by bytes that verified on the way.
      const receipt = await target.put(object.id, verifiedSource(source.tier, object, ctx.signal), ctx.signal);
      const written = await verifyCopy(target, object, true, ctx.signal);
      if (written.fault) throw new Error(`the copy written does not verify: ${written.detail}`);
      return { from: source.name, receipt };
    } catch (err) {
      ctx.signal?.throwIfAborted();
      problems.push(`${source.name}: ${(err as Error).message}`);
    }
  }
  throw new Error(problems.length ? `no healthy copy could be written: ${problems.join('; ')}` : 'no healthy copy is reachable (no other target holds it, and no relative that holds it is online)');
}

/** One open problem per target, the union of what every finder reported. */
async function alertDamage(alerts: AlertCenter, copies: DamagedCopy[]): Promise<void> {
  for (const target of new Set(copies.map((c) => c.target))) {
    const here = copies.filter((c) => c.target === target);
    const open = alerts.open().find((p) => p.key === alertKey('target-damage', target))?.problem;
    const before = open?.kind === 'target-damage' ? open : { objects: [], repaired: [] };
    const unrepaired = new Set(here.filter((c) => !c.repairedFrom).map((c) => c.id));
    await alerts.raise({
      kind: 'target-damage',
      target,
      objects: [...before.objects, ...here.map((c) => c.id)],
      repaired: [...before.repaired, ...here.filter((c) => c.repairedFrom).map((c) => c.id)].filter((id) => !unrepaired.has(id)),
    });
  }
}

/** An object as the catalog summarises it (ObjectSummary has these). */
export type CheckedObject = ExpectedObject & { kind: 'blob' | 'volume' };

/**
 * Copies that a restore or a replication pass failed to read from the home's own
 * targets, gathered while it runs and verified once it is done (settleSuspects).
 * Relatives' copies are not taken: their audits and scrubs speak for them.
 */
export class SuspectCopies {
  readonly #copies = new Map<string, { target: string; object: CheckedObject }>();

  /** Has the shape of a ReadFailureListener (node/object-read.ts). Kinds the check does not cover are not taken (a cold S3 read fails by design). */
  readonly add = (tier: Tier, object: CheckedObject): void => {
    if (FREE_READ_KINDS.includes(tier.kind)) this.#copies.set(`${tier.name}\0${object.id}`, { target: tier.name, object });
  };

  get size(): number {
    return this.#copies.size;
  }

  take(): Array<{ target: string; object: CheckedObject }> {
    const all = [...this.#copies.values()];
    this.#copies.clear();
    return all;
  }
}

/**
 * Reads each suspect copy whole and hands the bad ones to handleFindings. A read
 * that failed for another reason (the disk went away, the restore was stopped)
 * verifies fine and is forgotten; a copy already marked damaged is left to `hearth check`.
 */
export async function settleSuspects(ctx: CopyCareContext, suspects: SuspectCopies): Promise<DamagedCopy[]> {
  const findings: Finding[] = [];
  for (const { target, object } of suspects.take()) {
    const tier = ctx.homeTiers.find((t) => t.name === target);
    const placement = (await ctx.catalog.placements(object.id)).find((p) => p.target === target);
    if (!tier || !placement || placement.damaged !== undefined) continue;
    try {
      const verdict = await verifyCopy(tier, object, true, ctx.signal);
      if (verdict.fault) findings.push({ tier, object, placement, fault: verdict.fault, detail: verdict.detail! });
    } catch (err) {
      ctx.log(`could not check the copy of ${object.id} on ${target} that a read failed on: ${(err as Error).message}`);
    }
  }
  return handleFindings(ctx, findings);
}

/**
 * Copies marked damaged that a healthy copy at a reachable place can now replace
 * (a relative came back online, the other disk was plugged in): repaired without
 * re-reading the damaged copy, so a copy nothing can repair costs no I/O. The daemon
 * runs this after each replication pass.
 */
export async function repairMarked(ctx: CopyCareContext): Promise<DamagedCopy[]> {
  const reachable = new Set([...ctx.homeTiers.map((t) => t.name), ...(await ctx.relatives()).map((r) => r.tier.name)]);
  const findings: Finding[] = [];
  for await (const object of ctx.catalog.objects()) {
    for (const placement of object.placements) {
      const tier = ctx.homeTiers.find((t) => t.name === placement.target);
      if (placement.damaged === undefined || !tier) continue;
      if (!object.placements.some((p) => p.damaged === undefined && p.target !== tier.name && reachable.has(p.target))) continue;
      const [fault, detail] = splitMark(placement.damaged);
      findings.push({ tier, object, placement, fault, detail });
    }
  }
  return handleFindings(ctx, findings);
}

const FAULTS: readonly CopyFault[] = ['missing', 'size', 'merkle', 'unreadable', 'class', 'checksum'];

/** A mark is "<fault>: <detail>" (handleFindings writes it). */
function splitMark(mark: string): [CopyFault, string] {
  const colon = mark.indexOf(': ');
  const fault = mark.slice(0, colon) as CopyFault;
  return FAULTS.includes(fault) ? [fault, mark.slice(colon + 2)] : ['unreadable', mark];
}
