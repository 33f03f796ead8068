// What killed or failed runs left behind, removed at the start of the next backup:
// objects on this home's own targets that the catalog does not know, partial
// temp files there, and files in the spool and outbox. Directory targets only.
//
// An object is written to its targets before the catalog records it (a crash
// leaves an unknown object, never a record of missing bytes), so an unknown object
// is either an orphan or one a put in flight is writing. The sweep therefore runs
// only where no put of this home can be in flight: at the start of a backup, under
// the home's lock, and in the daemon inside the queue that runs backups and
// replication passes one at a time, before the run writes anything.
//
// It looks only in the home's own namespace of a target (the DirTier's
// <target>/hearth/<PeerId>/objects/), and there only at objects written since the
// start of the last run, if that run did not end cleanly (killed, stopped, failed,
// or ended with errors): those are the runs that can leave orphans. Objects older
// than that are never touched, whatever the catalog says: a home recovered from
// its phrase with an empty catalog must not delete the backups of its previous life.
import { TargetUnavailableError } from '../storage/tier/tier.ts';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Catalog } from '../storage/catalog/catalog.ts';
import type { Tier } from '../storage/tier/tier.ts';
import { sweepSpoolLeftovers } from './object-store.ts';

/**
 * Objects are judged by their write time; a target whose clock (a NAS's) runs a
 * little behind this machine's still has its orphans found.
 */
const CLOCK_MARGIN_MS = 60 * 60 * 1000;

export interface OrphanSweepReport {
  /** Unknown objects removed, per target. */
  objects: Array<{ target: string; id: string; size: number }>;
  tempFiles: number;
  spoolFiles: number;
  /** Targets that could not be swept now (unmounted, unreadable): tried again next time. */
  skipped: Array<{ target: string; error: string }>;
}

/**
 * `keepSpool`: spool files a later run still reads (an S3 upload's journal names
 * the ciphertext it resumes from).
 */
export async function sweepOrphans(options: { catalog: Catalog; tiers: Tier[]; spoolDir: string; outboxDir: string; keepSpool?: (name: string) => boolean }): Promise<OrphanSweepReport> {
  const { catalog } = options;
  const report: OrphanSweepReport = { objects: [], tempFiles: 0, spoolFiles: 0, skipped: [] };
  report.spoolFiles = (existsSync(options.spoolDir) ? sweepSpoolLeftovers(options.spoolDir, Infinity, options.keepSpool) : 0) + (await sweepOutbox(catalog, options.outboxDir));
  const since = uncleanRunStart(catalog);
  // Directory targets: a listing there is free, and a cloud's own leftovers (unfinished uploads) are its tier's business.
  for (const tier of options.tiers.filter((t) => t.kind === 'dir')) {
    try {
      // Not this process's: in the daemon a restore repairing a bad copy may be putting beside a backup.
      report.tempFiles += (await tier.removeTempFiles?.(performance.timeOrigin)) ?? 0;
      if (since === undefined) continue;
      for await (const info of tier.list()) {
        if (info.modifiedMs === undefined || info.modifiedMs < since - CLOCK_MARGIN_MS) continue;
        if (await catalog.object(info.name)) continue;
        await tier.delete(info.name);
        report.objects.push({ target: tier.name, id: info.name, size: info.size });
      }
    } catch (err) {
      // An unmounted, full or read-only target is reported by the backup that follows, once.
      if (err instanceof TargetUnavailableError) continue;
      report.skipped.push({ target: tier.name, error: (err as Error).message });
    }
  }
  return report;
}

/** When the last run began, if it did not end cleanly; undefined if it did, or if this catalog has no run. */
function uncleanRunStart(catalog: Catalog): number | undefined {
  const last = catalog.stats().lastRun;
  if (!last) return undefined;
  if (last.phase === 'start') return last.time;
  if (last.ok) return undefined;
  const startedAt = last.stats?.startedAt;
  return typeof startedAt === 'number' ? startedAt : undefined;
}

/** Outbox entries (links to spooled objects awaiting relatives) of objects the catalog never recorded. */
async function sweepOutbox(catalog: Catalog, outboxDir: string): Promise<number> {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(outboxDir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (await catalog.object(name)) continue;
    rmSync(join(outboxDir, name), { force: true });
    removed++;
  }
  return removed;
}
