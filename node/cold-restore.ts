// Restores that wait for cold storage. Before a restore reads anything, it finds the
// objects whose only reachable copy is an archived S3 object (Glacier, Deep
// Archive), asks S3 once per object (not per file) to bring each online, and records
// the requests in the home (ColdRestoreJournal), so a restart or a second run knows
// what was asked and when, and what it will cost. The restore proceeds only once
// every such object is readable; `--wait` polls until then. docs/s3-tier.md.
import { join } from 'node:path';
import { readStateFile, writeFileAtomicSync } from './atomic-file.ts';
import type { Catalog } from '../storage/catalog/catalog.ts';
import type { Tier } from '../storage/tier/tier.ts';
import type { RestoreTier, S3Tier } from '../storage/tier/s3.ts';
import { parseSelection } from './restore.ts';
import type { PriceTable } from './prices.ts';

/** Hours within which S3 completes a restore of Deep Archive (Glacier is faster). */
const RESTORE_HOURS: Record<RestoreTier, number> = { Bulk: 48, Standard: 12, Expedited: 5 / 60 };

export interface ColdRequest {
  id: string;
  target: string;
  size: number;
  tier: RestoreTier;
  days: number;
  requestedAt: string;
}

interface JournalFile {
  version: 1;
  requests: ColdRequest[];
}

/** `<home>/cold-restores.json`: the RestoreObject requests this home has made. */
export class ColdRestoreJournal {
  readonly file: string;
  private data: JournalFile;

  constructor(homeDir: string, log: (line: string) => void = () => {}) {
    this.file = join(homeDir, 'cold-restores.json');
    this.data = readStateFile<JournalFile>(
      this.file,
      () => ({ version: 1, requests: [] }),
      (d) => d.version === 1 && Array.isArray(d.requests),
      (reason) => log(`cold restore journal ${this.file} unreadable (${reason}); starting a new one`),
    );
  }

  find(id: string, target: string): ColdRequest | undefined {
    return this.data.requests.find((r) => r.id === id && r.target === target);
  }

  record(request: ColdRequest): void {
    this.data.requests = [...this.data.requests.filter((r) => !(r.id === request.id && r.target === request.target)), request];
    writeFileAtomicSync(this.file, JSON.stringify(this.data, null, 2) + '\n');
  }

  forget(id: string, target: string): void {
    if (!this.find(id, target)) return;
    this.data.requests = this.data.requests.filter((r) => !(r.id === id && r.target === target));
    writeFileAtomicSync(this.file, JSON.stringify(this.data, null, 2) + '\n');
  }
}

export interface ColdWait {
  id: string;
  target: string;
  size: number;
  tier: RestoreTier;
  requestedAt: string;
  /** When S3 says it will be done at the latest. */
  readyBy: string;
  state: 'started' | 'ongoing';
}

export interface ColdPlan {
  /** Objects that must come online before the restore can read them. */
  waiting: ColdWait[];
  /** Objects read from cold storage that are online now. */
  ready: number;
  /** What the waiting objects' retrieval costs, in dollars, at the price table's rates. */
  cost: { retrieval: number; egress: number; restoredCopy: number; total: number };
}

export interface ColdPlanOptions {
  catalog: Catalog;
  /** The tiers this restore may read, in the order it reads them. */
  tiers: Tier[];
  /** The S3 targets among them, unwrapped, for restore requests and HEADs. */
  s3: Array<Pick<S3Tier, 'name' | 'head' | 'requestRestore'>>;
  journal: ColdRestoreJournal;
  paths: string[];
  at?: number;
  tier: RestoreTier;
  /** How long a restored copy stays online. */
  days: number;
  prices: PriceTable;
}

/**
 * Finds the objects this restore would read from an archived S3 copy, and asks for
 * each to be restored unless that is already under way or done. Objects another
 * tier of the restore holds are left alone: that copy is cheaper and at hand.
 */
export async function planColdReads(o: ColdPlanOptions): Promise<ColdPlan> {
  const plan: ColdPlan = { waiting: [], ready: 0, cost: { retrieval: 0, egress: 0, restoredCopy: 0, total: 0 } };
  const s3Tiers = o.s3.filter((t) => o.tiers.some((r) => r.name === t.name));
  if (s3Tiers.length === 0) return plan;
  const otherNames = new Set(o.tiers.filter((t) => t.kind !== 's3').map((t) => t.name));
  const needed = new Map<string, { tier: (typeof s3Tiers)[number]; size: number }>();
  const selections = o.paths.length ? o.paths.map(parseSelection) : [{}];
  for (const sel of selections) {
    for await (const rec of o.catalog.snapshot(o.at, sel)) {
      if (rec.type !== 'file' || !rec.hash || rec.size === 0) continue;
      const locations = await o.catalog.locate(rec.hash);
      if (locations.some((l) => l.placements.some((p) => otherNames.has(p.target)))) continue;
      for (const l of locations) {
        const tier = s3Tiers.find((t) => l.placements.some((p) => p.target === t.name));
        if (!tier) continue;
        needed.set(`${tier.name}\0${l.object.id}`, { tier, size: l.object.size });
        break;
      }
    }
  }
  for (const [key, { tier, size }] of needed) {
    const id = key.slice(key.indexOf('\0') + 1);
    const state = await tier.head(id);
    if (!state.archived || state.restore === 'ready') {
      plan.ready++;
      o.journal.forget(id, tier.name);
      continue;
    }
    let request = o.journal.find(id, tier.name);
    let answer: 'started' | 'ongoing' = 'ongoing';
    if (state.restore === 'none') {
      const result = await tier.requestRestore(id, { tier: o.tier, days: o.days });
      if (result === 'ready' || result === 'not-archived') {
        plan.ready++;
        continue;
      }
      answer = result;
      // 'started' with a request on record: the earlier restore expired, so this is a new one.
      if (result === 'started') request = undefined;
    }
    if (!request) {
      request = { id, target: tier.name, size, tier: o.tier, days: o.days, requestedAt: new Date().toISOString() };
      o.journal.record(request);
    }
    const readyBy = new Date(Date.parse(request.requestedAt) + RESTORE_HOURS[request.tier] * 3600_000).toISOString();
    plan.waiting.push({ id, target: tier.name, size, tier: request.tier, requestedAt: request.requestedAt, readyBy, state: answer });
    const gb = size / 1e9;
    plan.cost.retrieval += gb * o.prices.get(`price.retrieval.${request.tier}`);
    plan.cost.egress += gb * o.prices.get('price.egress');
    plan.cost.restoredCopy += gb * o.prices.storage('STANDARD') * (request.days / 30);
  }
  plan.cost.total = plan.cost.retrieval + plan.cost.egress + plan.cost.restoredCopy;
  return plan;
}

/** The one line a restore that must wait prints, naming what, until when and for how much. */
export function describeColdWait(plan: ColdPlan): string {
  const bytes = plan.waiting.reduce((n, w) => n + w.size, 0);
  const readyBy = plan.waiting.map((w) => w.readyBy).sort().at(-1)!;
  const tiers = [...new Set(plan.waiting.map((w) => w.tier))].join('/');
  return (
    `${plan.waiting.length} object${plan.waiting.length === 1 ? '' : 's'} (${(bytes / 1e9).toFixed(2)} GB) must first be brought back from cold storage ` +
    `(${tiers} retrieval, requested; ready by ${readyBy} at the latest; about $${plan.cost.total.toFixed(2)}: ` +
    `$${plan.cost.retrieval.toFixed(2)} retrieval, $${plan.cost.egress.toFixed(2)} download, $${plan.cost.restoredCopy.toFixed(2)} for the restored copy). ` +
    'Run the same restore again later to continue, or add --wait'
  );
}
