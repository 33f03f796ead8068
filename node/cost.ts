// `hearth cost`: what each target holds, what this month's requests to it cost, what
// it costs a month at the price table's rates (node/prices.ts), deletes put off by a
// minimum duration, and the seed scenario (250 GB of photos, +2 GB a month) next to
// the per-file figures of the tool this design replaces.
import type { Catalog } from '../storage/catalog/catalog.ts';
import type { TargetConfig } from './config.ts';
import { ARCHIVE_OVERHEAD, type PriceTable } from './prices.ts';
import type { DeferredDelete } from './deferred-deletes.ts';

const GB = 1e9;
const READS = new Set(['GetObject', 'HeadObject', 'HeadBucket']);
const FREE = new Set(['DeleteObject', 'AbortMultipartUpload']);

export interface TargetCost {
  target: string;
  kind: TargetConfig['kind'];
  storageClass?: string;
  objects: number;
  bytes: number;
  /** Requests sent this month, by kind. */
  requests: Record<string, number>;
  requestCost: number;
  storagePerMonth: number;
  earlyDeletes: { objects: number; bytes: number; chargeIfDeletedNow: number };
  /** Storage a month plus this month's requests. */
  monthly: number;
}

export interface ScenarioCost {
  libraryGB: number;
  growthGBPerMonth: number;
  storageClass: string;
  volumes: number;
  upload: { requests: number; dollars: number };
  storagePerMonth: number;
  growthPerMonth: number;
  monthlyCheck: { requests: number; dollars: number };
  /** The seed tool's per-file figures for the same library, from its documentation. */
  seed: { upload: number; perMonth: number; checksPerMonth: number };
}

export interface CostReport {
  month: string;
  targets: TargetCost[];
  monthlyTotal: number;
  scenario: ScenarioCost;
}

export function requestCost(requests: Record<string, number>, prices: PriceTable): number {
  let dollars = 0;
  for (const [kind, n] of Object.entries(requests)) {
    if (FREE.has(kind)) continue;
    dollars += (n / 1000) * (READS.has(kind) ? prices.get('price.request.read') : prices.get('price.request.write'));
  }
  return dollars;
}

/** $ a month to keep `objects` objects of `bytes` in `storageClass`, archive overhead included. */
export function storageCost(bytes: number, objects: number, storageClass: string | undefined, prices: PriceTable): number {
  const archived = storageClass === 'DEEP_ARCHIVE' || storageClass === 'GLACIER';
  const overhead = archived ? (objects * ARCHIVE_OVERHEAD.standardBytes * prices.storage('STANDARD') + objects * ARCHIVE_OVERHEAD.archiveBytes * prices.storage(storageClass)) / GB : 0;
  return (bytes / GB) * prices.storage(storageClass) + overhead;
}

export async function costReport(o: {
  catalog: Catalog;
  targets: TargetConfig[];
  prices: PriceTable;
  requests: (target: string) => Record<string, number>;
  deferred: DeferredDelete[];
  volumeSize: number;
  partSize: number;
  now?: number;
}): Promise<CostReport> {
  const now = o.now ?? Date.now();
  const held = new Map<string, { objects: number; bytes: number }>();
  for await (const object of o.catalog.objects()) {
    for (const p of object.placements) {
      const h = held.get(p.target) ?? { objects: 0, bytes: 0 };
      h.objects++;
      h.bytes += object.size;
      held.set(p.target, h);
    }
  }
  const targets: TargetCost[] = o.targets.map((t) => {
    const storageClass = t.kind === 's3' ? (t.storageClass ?? 'STANDARD') : undefined;
    const h = held.get(t.name) ?? { objects: 0, bytes: 0 };
    const requests = t.kind === 's3' ? o.requests(t.name) : {};
    const early = o.deferred.filter((d) => d.target === t.name);
    const chargeIfDeletedNow = early.reduce((n, d) => n + (d.size / GB) * o.prices.storage(d.storageClass) * Math.max(0, (Date.parse(d.deleteAt) - now) / (30 * 86_400_000)), 0);
    const storagePerMonth = t.kind === 's3' ? storageCost(h.bytes, h.objects, storageClass, o.prices) : 0;
    const rc = requestCost(requests, o.prices);
    return {
      target: t.name, kind: t.kind, storageClass, objects: h.objects, bytes: h.bytes, requests, requestCost: rc, storagePerMonth,
      earlyDeletes: { objects: early.length, bytes: early.reduce((n, d) => n + d.size, 0), chargeIfDeletedNow },
      monthly: storagePerMonth + rc,
    };
  });
  const firstS3 = o.targets.find((t) => t.kind === 's3');
  const scenarioClass = firstS3?.kind === 's3' ? (firstS3.storageClass ?? 'STANDARD') : 'DEEP_ARCHIVE';
  return {
    month: new Date(now).toISOString().slice(0, 7),
    targets,
    monthlyTotal: targets.reduce((n, t) => n + t.monthly, 0),
    scenario: seedScenario(o.prices, scenarioClass, o.volumeSize, o.partSize),
  };
}

export function seedScenario(prices: PriceTable, storageClass: string, volumeSize: number, partSize: number): ScenarioCost {
  const libraryGB = 250;
  const growth = 2;
  const volumes = Math.ceil((libraryGB * GB) / volumeSize);
  const requestsPerVolume = volumeSize <= partSize ? 1 : Math.ceil(volumeSize / partSize) + 2;
  const write = prices.get('price.request.write') / 1000;
  const read = prices.get('price.request.read') / 1000;
  const uploadRequests = volumes * requestsPerVolume;
  const checkRequests = Math.ceil(volumes / 1000) + volumes;
  return {
    libraryGB, growthGBPerMonth: growth, storageClass, volumes,
    upload: { requests: uploadRequests, dollars: uploadRequests * write },
    storagePerMonth: storageCost(libraryGB * GB, volumes, storageClass, prices),
    growthPerMonth: storageCost(growth * GB, (growth * GB) / volumeSize, storageClass, prices) + ((growth * GB) / volumeSize) * requestsPerVolume * write,
    monthlyCheck: { requests: checkRequests, dollars: Math.ceil(volumes / 1000) * write + volumes * read },
    seed: { upload: 16.5, perMonth: 0.9, checksPerMonth: 22 },
  };
}
