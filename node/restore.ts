// Restore files as of a point in time. Each file's bytes come from the cheapest
// place that holds them (Tier order given by the caller: local directories first);
// a file inside a volume is read as a byte range, so only the age chunks covering
// its extent travel; small files that lie one after another in a volume are read as
// one range (a run), so many small files cost one read, not one each. Every file is
// written to a short temp name in its folder (node/restore-folder.ts), runs of zero
// blocks left as holes, its SHA-256 checked, its mode and mtime set, and only then
// renamed into place. An interrupted restore removes its temp files and can be run
// again with skipExisting to complete it (docs/restore.md).
import { createHash, hash as hashOf } from 'node:crypto';
import { chmodSync, createReadStream, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync, lutimesSync, type Stats } from 'node:fs';
import { chmod, rename, utimes, writeFile } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import type { Catalog, ContentLocation, FileRecord } from '../storage/catalog/catalog.ts';
import type { Tier } from '../storage/tier/tier.ts';
import { AgeHeaderCache, readObjectRange, type ReadFailureListener } from './object-read.ts';
import { DirectWriteStream } from '../storage/direct-write.ts';
import { collectGarbage } from '../storage/collect-garbage.ts';
import { holdYoungGenerationSmallest, restoringYoungGeneration } from './heap-tuning.ts';
import { displayPath, encodeFsName } from '../storage/paths.ts';
import type { ProgressSink } from './progress.ts';
import { RestoreFolder } from './restore-folder.ts';

/**
 * Files restored at once. One at a time, the thread that decrypts and verifies sat
 * idle for 30% of a 2.6 GB restore, waiting for reads and writes.
 */
const FILES_IN_FLIGHT = 4;

/**
 * A run: consecutive files of one object, read and decrypted as one range of at
 * most RUN_BYTES (so only files that small join one), skipping at most RUN_GAP_BYTES of
 * padding between two of them. Restoring 100,000 files of 4 KiB made 100,000 range
 * reads; from a relative, each is a stream and a round trip. Measured on 30,000 of
 * them: runs of 1 MiB 8.7-9.4 s and 230 MB peak RSS; 4 MiB 9.8 s and 333 MB;
 * 256 KiB 9.7 s and 172 MB.
 */
const RUN_BYTES = 1024 * 1024;
const RUN_GAP_BYTES = 64 * 1024;

interface RunFile {
  rec: FileRecord;
  dest: Buffer;
  locations: ContentLocation[];
  loc: ContentLocation;
}

/** Files of one object at one place, whose bytes lie in [start, end) of its plaintext, in order. */
interface Run {
  tier: Tier;
  object: ContentLocation['object'];
  start: number;
  end: number;
  files: RunFile[];
}

export interface RestoreOptions {
  paths: string[];
  to: string;
  at?: number;
  /** Replace what is in the way (a link or file where the backup has a file). */
  overwrite: boolean;
  /** Leave files (and links) that already match the backup, to complete an earlier restore. */
  skipExisting?: boolean;
}

export interface RestoreReport {
  files: number;
  symlinks: number;
  dirs: number;
  bytes: number;
  /** Files and links left as they were: they already matched (skipExisting). */
  skipped: number;
  failed: Array<{ path: string; error: string }>;
}

export interface RestoreContext {
  catalog: Catalog;
  tiers: Tier[];
  identity: Buffer;
  progress: ProgressSink;
  /** Aborted on SIGINT/SIGTERM: the restore stops, and removes the temp files under way. */
  signal?: AbortSignal;
  /** Told of every failed read, so a damaged copy on the home's own target is reported (node/checks/damage.ts). */
  onReadFailure?: ReadFailureListener<ContentLocation['object']>;
}

interface Selection {
  source?: string;
  prefix?: string;
}

/** "photos/2024/a.jpg" → source "photos", prefix "2024/a.jpg"; "photos" → the whole source. */
export function parseSelection(path: string): Selection {
  const clean = path.replace(/^\/+|\/+$/g, '');
  const slash = clean.indexOf('/');
  return slash < 0 ? { source: clean } : { source: clean.slice(0, slash), prefix: clean.slice(slash + 1) };
}

function selections(paths: string[]): Selection[] {
  return paths.length === 0 ? [{}] : paths.map(parseSelection);
}

async function* selected(catalog: Catalog, paths: string[], at: number | undefined): AsyncIterable<FileRecord> {
  for (const sel of selections(paths)) {
    let found = false;
    for await (const rec of catalog.snapshot(at, sel)) {
      found = true;
      yield rec;
    }
    if (!found) {
      const what = sel.source || sel.prefix ? `matches "${[sel.source, sel.prefix].filter(Boolean).join('/')}"` : 'is restorable';
      throw new Error(`nothing backed up ${what}${at !== undefined ? ' at that time' : ''}: see "hearth ls"`);
    }
  }
}

const catalogPath = (rec: FileRecord): string => `${rec.source}/${rec.path}`;

export function runRestore(ctx: RestoreContext, options: RestoreOptions): Promise<RestoreReport> {
  return restoringYoungGeneration(() => {
    holdYoungGenerationSmallest();
    return restore(ctx, options);
  });
}

/**
 * Before anything is written: a file or link the backup has that is already there
 * stops the restore (with neither skipExisting nor overwrite, which decide per file).
 */
async function refuseExisting(ctx: RestoreContext, options: RestoreOptions, folder: RestoreFolder): Promise<void> {
  for await (const rec of selected(ctx.catalog, options.paths, options.at)) {
    if (rec.type === 'dir') continue;
    let dest: Buffer;
    try {
      dest = folder.destination(catalogPath(rec));
    } catch {
      continue; // reported per file when its turn comes
    }
    if (!lstatOrUndefined(dest)) continue;
    throw new Error(
      `${displayPath(`${options.to}/${catalogPath(rec)}`)} already exists: restore into an empty folder, ` +
        'pass --skip-existing to complete an earlier restore into this one, or --overwrite to replace what is there',
    );
  }
}

/** Whether `dest` already is the backup's link (the same target) or file (the same size and SHA-256). */
async function matchesBackup(dest: Buffer, rec: FileRecord, signal: AbortSignal | undefined): Promise<boolean> {
  const st = lstatOrUndefined(dest);
  if (rec.type === 'symlink') return Boolean(st?.isSymbolicLink()) && readlinkSync(dest, { encoding: 'buffer' }).equals(encodeFsName(rec.target ?? ''));
  if (!st?.isFile() || st.size !== rec.size) return false;
  const sha = createHash('sha256');
  for await (const chunk of createReadStream(dest, { signal })) sha.update(chunk as Buffer);
  return sha.digest('hex') === rec.hash;
}

async function restore(ctx: RestoreContext, options: RestoreOptions): Promise<RestoreReport> {
  const report: RestoreReport = { files: 0, symlinks: 0, dirs: 0, bytes: 0, skipped: 0, failed: [] };
  const { signal } = ctx;
  const folder = new RestoreFolder(options.to);
  if (!options.overwrite && !options.skipExisting) await refuseExisting(ctx, options, folder);
  mkdirSync(folder.root, { recursive: true });
  // Folder modes are applied last: a read-only folder must still receive its files.
  const dirModes: Array<[Buffer, number]> = [];
  const failed = (rec: FileRecord, err: unknown): void => {
    report.failed.push({ path: catalogPath(rec), error: (err as Error).message });
    ctx.progress.log(`error: ${displayPath(catalogPath(rec))}: ${(err as Error).message}`);
  };
  const restored = (rec: FileRecord): void => {
    report.files++;
    report.bytes += rec.size;
    ctx.progress.update({ phase: 'restoring', files: report.files, bytes: report.bytes });
  };
  const headers = new AgeHeaderCache();
  const inFlight = new Set<Promise<void>>();
  // Each piece of work meets its own failures (per file): none of these promises rejects.
  const start = async (work: Promise<void>): Promise<void> => {
    inFlight.add(work);
    const done = (): boolean => inFlight.delete(work);
    work.then(done, done);
    if (inFlight.size >= FILES_IN_FLIGHT) await Promise.race(inFlight);
  };
  const fileAlone = (file: Omit<RunFile, 'loc'>): Promise<void> =>
    restoreFile(ctx, file.rec, file.dest, file.locations, headers).then(() => restored(file.rec), (err: unknown) => failed(file.rec, err));
  let run: Run | undefined;
  const startRun = async (): Promise<void> => {
    if (run && !signal?.aborted) await start(restoreRun(ctx, run, headers, restored, fileAlone));
    run = undefined;
  };
  for await (const rec of selected(ctx.catalog, options.paths, options.at)) {
    if (signal?.aborted) break;
    try {
      const dest = folder.destination(catalogPath(rec));
      if (rec.type === 'dir') {
        folder.makeFolder(dest);
        dirModes.push([dest, rec.mode & 0o7777]);
        report.dirs++;
        continue;
      }
      folder.makeFolder(parentOf(dest));
      if (options.skipExisting && (await matchesBackup(dest, rec, signal))) {
        report.skipped++;
      } else if (options.skipExisting && !options.overwrite && lstatOrUndefined(dest)) {
        throw new Error('already exists and differs from the backup: left as it is; pass --overwrite to replace it');
      } else if (rec.type === 'symlink') {
        rmSync(dest, { force: true });
        symlinkSync(encodeFsName(rec.target ?? ''), dest);
        lutimesSync(dest, rec.mtimeMs / 1000, rec.mtimeMs / 1000);
        report.symlinks++;
      } else {
        const locations = await ctx.catalog.locate(rec.hash!);
        const cheapest = cheapestPlace(ctx.tiers, locations);
        const file = { rec, dest, locations };
        if (!cheapest || cheapest.loc.length > RUN_BYTES) {
          await startRun();
          await start(fileAlone(file));
        } else {
          const { tier, loc } = cheapest;
          const joins = run && run.tier === tier && run.object.id === loc.object.id && loc.offset >= run.end && loc.offset - run.end <= RUN_GAP_BYTES && loc.offset + loc.length - run.start <= RUN_BYTES;
          if (!joins) await startRun();
          run ??= { tier, object: loc.object, start: loc.offset, end: loc.offset, files: [] };
          run.files.push({ ...file, loc });
          run.end = loc.offset + loc.length;
        }
      }
    } catch (err) {
      failed(rec, err);
    }
  }
  await startRun();
  await Promise.all(inFlight);
  ctx.progress.done();
  if (signal?.aborted) {
    // Folders keep their modes open, so the run that completes this one can write into them.
    throw new Error(
      `restore interrupted after ${report.files} files (no partial file is left in ${displayPath(options.to)}): ` +
        'run the same command again with --skip-existing to complete it',
    );
  }
  for (const [dir, mode] of dirModes) chmodSync(dir, mode);
  return report;
}

function parentOf(path: Buffer): Buffer {
  return path.subarray(0, path.lastIndexOf(0x2f));
}

function lstatOrUndefined(path: Buffer): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Decryption leaves a fresh 64 KiB buffer per age chunk, garbage once written. Left
 * to V8, they pile up by tens of megabytes before a scavenge frees them; a minor
 * collection every SCAVENGE_BYTES keeps reusing memory that is still mapped and in
 * cache. Restoring 2.6 GB: 6.4 -> 5.7-5.8 s, peak RSS 196 -> 143-153 MB (8 MiB:
 * 6.4 s; 1 MiB: 6.3-6.8 s).
 */
const SCAVENGE_BYTES = 2 * 1024 * 1024;
let sinceScavenge = 0;

function scavengeEvery(bytes: number): void {
  sinceScavenge += bytes;
  if (sinceScavenge < SCAVENGE_BYTES) return;
  sinceScavenge = 0;
  collectGarbage({ type: 'minor' });
}

/** The first placement in the caller's order of places (cheapest first), or none. */
function cheapestPlace(tiers: Tier[], locations: ContentLocation[]): { tier: Tier; loc: ContentLocation } | undefined {
  for (const tier of tiers) {
    const loc = locations.find((l) => l.placements.some((p) => p.target === tier.name));
    if (loc) return { tier, loc };
  }
  return undefined;
}

/** Puts the verified temp file in place with the file's mode and mtime; removes it when that fails. */
async function placeVerified(rec: FileRecord, tmp: Buffer, dest: Buffer, sha256: string): Promise<void> {
  try {
    if (sha256 !== rec.hash) throw new Error(`restored bytes do not match the backup (SHA-256 ${sha256.slice(0, 12)}… instead of ${rec.hash!.slice(0, 12)}…)`);
    // On libuv's threads, as the file's writes: a rename costs ~0.2 ms here.
    await chmod(tmp, rec.mode & 0o7777);
    await utimes(tmp, rec.mtimeMs / 1000, rec.mtimeMs / 1000);
    await rename(tmp, dest);
    RestoreFolder.released(tmp);
  } catch (err) {
    await RestoreFolder.discard(tmp);
    throw err;
  }
}

/**
 * Reads a run's range once and writes each of its files from it. A file the run
 * cannot give (the read failed, its bytes do not verify, its write failed) is
 * restored on its own, from every place that holds it.
 */
async function restoreRun(ctx: RestoreContext, run: Run, headers: AgeHeaderCache, restored: (rec: FileRecord) => void, fileAlone: (file: RunFile) => Promise<void>): Promise<void> {
  const bytes = await readObjectRange(run.tier, run.object, ctx.identity, run.start, run.end - run.start, headers, ctx.onReadFailure)
    .then((plain) => buffer(plain))
    .catch(() => undefined);
  if (bytes) scavengeEvery(bytes.length);
  for (const file of run.files) {
    const tmp = RestoreFolder.tempFor(file.dest);
    try {
      if (!bytes) throw new Error('the run was not read');
      const own = bytes.subarray(file.loc.offset - run.start, file.loc.offset - run.start + file.loc.length);
      await writeFile(tmp, own, { flag: 'wx', signal: ctx.signal });
      await placeVerified(file.rec, tmp, file.dest, hashOf('sha256', own, 'hex'));
      restored(file.rec);
    } catch {
      await RestoreFolder.discard(tmp);
      await fileAlone(file);
    }
  }
}

/** Tries every place that holds the file's bytes, cheapest first. */
async function restoreFile(ctx: RestoreContext, rec: FileRecord, dest: Buffer, locations: ContentLocation[], headers: AgeHeaderCache): Promise<void> {
  const errors: string[] = [];
  for (const tier of ctx.tiers) {
    for (const loc of locations) {
      if (!loc.placements.some((p) => p.target === tier.name)) continue;
      ctx.signal?.throwIfAborted();
      const tmp = RestoreFolder.tempFor(dest);
      try {
        const plain = await readObjectRange(tier, loc.object, ctx.identity, loc.offset, loc.length, headers, ctx.onReadFailure);
        const sha = createHash('sha256');
        const tap = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            sha.update(chunk);
            scavengeEvery(chunk.length);
            cb(null, chunk);
          },
        });
        // Past the page cache (storage/direct-write.ts), zero blocks left as holes; not
        // synced: a restore cut off is run again.
        await pipeline(plain, tap, new DirectWriteStream(tmp, { flags: 'wx', sync: false, sparse: true }), { signal: ctx.signal });
        await placeVerified(rec, tmp, dest, sha.digest('hex'));
        return;
      } catch (err) {
        await RestoreFolder.discard(tmp);
        ctx.signal?.throwIfAborted();
        errors.push(`${tier.name}: ${(err as Error).message}`);
      }
    }
  }
  throw new Error(errors.length ? `could not restore: ${errors.join('; ')}` : 'no reachable place holds its bytes: add the target that holds them ("hearth target add")');
}
