// The local drift report: per source folder, what is on disk now against what the
// latest backup recorded, and which files changed, vanished or appeared since. It
// walks with the backup scanner's own order and ignore rules but reads no file
// (scanner option hash: false), and only reads the catalog. Columns and limits:
// docs/scrub-and-drift.md.
import { readdir, stat } from 'node:fs/promises';
import type { Catalog, FileRecord } from '../storage/catalog/catalog.ts';
import { scanSource } from '../storage/scanner/scanner.ts';

/** Paths listed per kind and source; the counts are always complete. */
export const DRIFT_LIST_LIMIT = 100;

export interface DriftSource {
  name: string;
  path: string;
}

export interface DriftOptions {
  /** Only read: the report never records anything. */
  catalog: Pick<Catalog, 'latest' | 'stats'>;
  sources: readonly DriftSource[];
  /** The backup's ignore patterns (config.ignorePatterns(DEFAULT_IGNORES)), so both sides count the same files. */
  ignore: readonly string[];
  listLimit?: number;
  signal?: AbortSignal;
  onProgress?: (progress: { source: string; files: number; bytes: number }) => void;
}

/** Files and symlinks are counted (folders are not); bytes and times are of regular files. */
export interface FileTotals {
  files: number;
  bytes: number;
  /** Newest modification time of a regular file, ms since the epoch; null with none. */
  newestMtime: number | null;
}

export interface SourceDrift {
  source: string;
  path: string;
  /**
   * Why the folder could not be compared (missing, unreadable, or empty while its
   * backup has files: an unmounted disk). `local` is then null and nothing is
   * listed as missing.
   */
  unavailable?: string;
  local: FileTotals | null;
  backup: FileTotals & {
    /**
     * When the backup's state of this source was taken, ms since the epoch: the end
     * of the last backup run if it finished without errors, otherwise the newest
     * version recorded for this source; null if it was never backed up.
     */
    lastBackupAt: number | null;
  };
  /** Backed up, and now differs in type, size, mtime, ctime, inode or mode. */
  changed: string[];
  /** Backed up, and gone locally (or ignored since). */
  missing: string[];
  /** Local, and never backed up. */
  new: string[];
  /** Paths that could not be examined (permissions, vanished during the walk). */
  errors: Array<{ path: string; error: string }>;
  counts: { unchanged: number; changed: number; missing: number; new: number; errors: number };
}

export async function driftReport(options: DriftOptions): Promise<SourceDrift[]> {
  const out: SourceDrift[] = [];
  for (const source of options.sources) {
    options.signal?.throwIfAborted();
    out.push(await sourceDrift(options, source));
  }
  return out;
}

/** True when the report shows anything a person should look at. */
export function hasDrift(report: SourceDrift): boolean {
  const { changed, missing, errors } = report.counts;
  return report.unavailable !== undefined || changed + missing + errors > 0;
}

interface BackupTally {
  totals: FileTotals;
  lastRecordedAt: number | null;
}

async function sourceDrift(options: DriftOptions, source: DriftSource): Promise<SourceDrift> {
  const limit = options.listLimit ?? DRIFT_LIST_LIMIT;
  const tally: BackupTally = { totals: noFiles(), lastRecordedAt: null };
  const local = noFiles();
  const report: SourceDrift = {
    source: source.name,
    path: source.path,
    local,
    backup: { ...noFiles(), lastBackupAt: null },
    changed: [],
    missing: [],
    new: [],
    errors: [],
    counts: { unchanged: 0, changed: 0, missing: 0, new: 0, errors: 0 },
  };
  const finish = (result: SourceDrift): SourceDrift => ({ ...result, backup: { ...tally.totals, lastBackupAt: lastBackupAt(options.catalog, tally) } });

  const unavailable = await folderProblem(source.path);
  if (unavailable !== undefined) {
    await drainBackup(options, source, tally);
    return finish(markUnavailable(report, unavailable));
  }

  const list = <T>(kind: 'changed' | 'missing' | 'new' | 'errors', item: T, into: T[]) => {
    report.counts[kind]++;
    if (into.length < limit) into.push(item);
  };
  const events = scanSource({
    root: source.path,
    // Folders are left out of the backup side: a folder is "changed" whenever an
    // entry inside it is, and the entries themselves are what the report lists.
    previous: backupFiles(options.catalog.latest(source.name), tally),
    ignore: options.ignore,
    hash: false,
    signal: options.signal,
    onProgress: (p) => options.onProgress?.({ source: source.name, files: p.files, bytes: p.bytes }),
  });
  for await (const event of events) {
    switch (event.kind) {
      case 'error':
        list('errors', { path: event.path, error: event.error }, report.errors);
        break;
      case 'deleted':
        list('missing', event.path, report.missing);
        break;
      default: {
        const entry = event.entry;
        // A new folder is no file; a "changed" folder is a backed-up file that became one.
        if (entry.type === 'dir' && event.kind === 'new') break;
        if (entry.type !== 'dir') addTo(local, entry);
        if (event.kind === 'unchanged') report.counts.unchanged++;
        else list(event.kind, entry.path, event.kind === 'new' ? report.new : report.changed);
      }
    }
  }
  // An emptied mount point walks fine and would list every backed-up file as missing.
  if (local.files === 0 && tally.totals.files > 0 && (await isEmptyFolder(source.path))) {
    return finish(markUnavailable(report, `${source.path} is empty but its last backup had ${tally.totals.files} files: is the disk mounted?`));
  }
  return finish(report);
}

async function folderProblem(path: string): Promise<string | undefined> {
  try {
    if (!(await stat(path)).isDirectory()) return `${path} is not a folder`;
    await readdir(path);
    return undefined;
  } catch (err) {
    return `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): is the disk mounted?`;
  }
}

async function isEmptyFolder(path: string): Promise<boolean> {
  return (await readdir(path)).length === 0;
}

function markUnavailable(report: SourceDrift, reason: string): SourceDrift {
  return { ...report, unavailable: reason, local: null, changed: [], missing: [], new: [], errors: [], counts: { unchanged: 0, changed: 0, missing: 0, new: 0, errors: 0 } };
}

/** The source's backed-up files and symlinks in pathSortKey order, tallied on the way. */
async function* backupFiles(records: AsyncIterable<FileRecord>, tally: BackupTally): AsyncIterable<FileRecord> {
  for await (const record of records) {
    tally.lastRecordedAt = Math.max(tally.lastRecordedAt ?? 0, record.time);
    if (record.type === 'dir') continue;
    addTo(tally.totals, record);
    yield record;
  }
}

async function drainBackup(options: DriftOptions, source: DriftSource, tally: BackupTally): Promise<void> {
  for await (const _ of backupFiles(options.catalog.latest(source.name), tally)) options.signal?.throwIfAborted();
}

function noFiles(): FileTotals {
  return { files: 0, bytes: 0, newestMtime: null };
}

function addTo(totals: FileTotals, entry: { type: string; size: number; mtimeMs: number }): void {
  totals.files++;
  if (entry.type !== 'file') return;
  totals.bytes += entry.size;
  if (totals.newestMtime === null || entry.mtimeMs > totals.newestMtime) totals.newestMtime = entry.mtimeMs;
}

function lastBackupAt(catalog: Pick<Catalog, 'stats'>, tally: BackupTally): number | null {
  if (tally.lastRecordedAt === null) return null;
  const lastRun = catalog.stats().lastRun;
  // Only a run without errors is known to have covered this source whole.
  if (lastRun?.phase === 'end' && lastRun.ok === true && lastRun.time >= tally.lastRecordedAt) return lastRun.time;
  return tally.lastRecordedAt;
}
