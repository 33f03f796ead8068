// One backup run: scan every source against the catalog, record what changed,
// then store the content the catalog says is in no volume yet. Content that fills
// a volume (volume.size) is packed into ISO volumes; the remainder is staged as one
// blob per file, so every run protects new files the same day. Staged blobs whose
// content is now in a placed volume are retired.
//
// File versions are recorded before their content is stored: a version is the
// intent, and `catalog.unpacked()` is the to-do list derived from it. A run that is
// killed at any point therefore loses nothing: the next run finds the same
// unpacked content and stores it.
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { Catalog, CatalogPayload } from '../storage/catalog/catalog.ts';
import { scanSource, DEFAULT_IGNORES, type ScannedFile } from '../storage/scanner/scanner.ts';
import { IsoVolumeWriter, type IsoEntry } from '../storage/iso/writer.ts';
import { encodeFsName } from '../storage/paths.ts';
import type { Config, SourceConfig } from './config.ts';
import type { ProgressSink } from './progress.ts';
import type { EncodedObject, ObjectStore } from './object-store.ts';
import { volumeName } from './volume-name.ts';

export interface BackupOptions {
  pack: boolean;
}

export interface BackupReport {
  run: string;
  startedAt: number;
  finishedAt: number;
  ok: boolean;
  files: { scanned: number; new: number; changed: number; deleted: number; unchanged: number };
  bytesScanned: number;
  blobs: { stored: number; bytes: number };
  volumes: Array<{ id: string; name: string; files: number; bytes: number }>;
  retired: number;
  errors: Array<{ path: string; error: string }>;
}

export interface BackupContext {
  config: Config;
  catalog: Catalog;
  store: ObjectStore;
  progress: ProgressSink;
}

interface PendingContent {
  hash: string;
  size: number;
  source: string;
  path: string;
  /** Set when the bytes are in a staged blob and no live file has them any more. */
  blob?: { id: string; size: number; plainSize: number; time: number };
}

const RECORD_BATCH = 1000;

export async function runBackup(ctx: BackupContext, options: BackupOptions): Promise<BackupReport> {
  const { config, catalog } = ctx;
  const run = randomBytes(8).toString('hex');
  const startedAt = Date.now();
  const report: BackupReport = {
    run, startedAt, finishedAt: 0, ok: false,
    files: { scanned: 0, new: 0, changed: 0, deleted: 0, unchanged: 0 },
    bytesScanned: 0, blobs: { stored: 0, bytes: 0 }, volumes: [], retired: 0, errors: [],
  };
  if (config.data.sources.length === 0) throw new Error('no sources to back up: add one with "hearth source add PATH"');
  const initial = await initialSources(ctx);
  await catalog.append([{ k: 'run', run, phase: 'start', time: startedAt, stats: { initial: [...initial] } }]);

  // One source that cannot be read must not stop the others from being protected.
  for (const source of config.data.sources) {
    try {
      await scanIntoCatalog(ctx, source, startedAt, report);
    } catch (err) {
      report.errors.push({ path: source.name, error: (err as Error).message });
      ctx.progress.log(`error: ${(err as Error).message}`);
    }
  }

  const pending: PendingContent[] = [];
  for await (const item of catalog.unpacked()) pending.push(item);
  pending.push(...(await stagedOnly(catalog, new Set(pending.map((p) => p.hash)))));
  // A source's first backup packs straight into volumes: tens of thousands of
  // per-file blobs, each later packed and retired, would cost far more than one image.
  const first: PendingContent[] = [];
  const rest: PendingContent[] = [];
  for (const p of pending) (initial.has(p.source) && !p.blob ? first : rest).push(p);
  await storePending(ctx, first, { pack: true }, report);
  await storePending(ctx, rest, options, report);

  report.finishedAt = Date.now();
  report.ok = report.errors.length === 0;
  await catalog.append([{ k: 'run', run, phase: 'end', time: report.finishedAt, ok: report.ok, stats: summary(report) }]);
  ctx.progress.done();
  return report;
}

/**
 * Sources whose first backup this is: nothing recorded yet, or the run that began
 * their first backup was cut off before it ended (it is then the last run, unended).
 */
async function initialSources(ctx: BackupContext): Promise<Set<string>> {
  const last = ctx.catalog.stats().lastRun;
  const unfinished = last?.phase === 'start' ? ((last.stats?.initial as string[] | undefined) ?? []) : [];
  const out = new Set<string>(unfinished);
  for (const source of ctx.config.data.sources) {
    const first = ctx.catalog.latest(source.name)[Symbol.asyncIterator]();
    if ((await first.next()).done) out.add(source.name);
    await first.return?.();
  }
  return out;
}

/**
 * A source folder that is suddenly empty is far more often an unmounted disk or
 * NAS share than a family deleting every photo: refuse to record it as deletions.
 */
async function checkNotVanished(ctx: BackupContext, source: SourceConfig): Promise<void> {
  let names: string[];
  try {
    names = await readdir(source.path);
  } catch (err) {
    throw new Error(`source ${source.name}: cannot read ${source.path} (${(err as NodeJS.ErrnoException).code}): is the disk mounted?`);
  }
  if (names.length > 0) return;
  for await (const _ of ctx.catalog.latest(source.name)) {
    throw new Error(`source ${source.name} (${source.path}) is empty but its last backup had files: is the disk mounted? Remove the source ("hearth source rm ${source.name}") if the files are really gone`);
  }
}

async function scanIntoCatalog(ctx: BackupContext, source: SourceConfig, time: number, report: BackupReport): Promise<void> {
  await checkNotVanished(ctx, source);
  const batch: CatalogPayload[] = [];
  const flush = async () => {
    if (batch.length) await ctx.catalog.append(batch.splice(0));
  };
  const events = scanSource({
    root: source.path,
    previous: ctx.catalog.latest(source.name),
    ignore: ctx.config.ignorePatterns(DEFAULT_IGNORES),
    hashConcurrency: Number(ctx.config.get('backup.workers')),
    onProgress: (p) => ctx.progress.update({ phase: `scanning ${source.name}`, files: p.files, bytes: p.bytes }),
  });
  for await (const ev of events) {
    if (ev.kind === 'error') {
      report.errors.push({ path: `${source.name}/${ev.path}`, error: ev.error });
      ctx.progress.log(`warning: ${source.name}/${ev.path}: ${ev.error} (will retry next run)`);
      continue;
    }
    if (ev.kind === 'deleted') {
      report.files.deleted++;
      batch.push({ k: 'delete', source: source.name, path: ev.path, time });
    } else {
      // Folders are recorded (so empty ones come back) but not counted as files.
      const isFile = ev.entry.type !== 'dir';
      if (isFile) {
        report.files.scanned++;
        report.bytesScanned += ev.entry.type === 'file' ? ev.entry.size : 0;
        report.files[ev.kind]++;
      }
      if (ev.kind === 'unchanged') continue;
      batch.push(fileRecord(source.name, ev.entry, time));
    }
    if (batch.length >= RECORD_BATCH) await flush();
  }
  await flush();
}

/**
 * Staged blobs whose content no live file has (an old version of a changed or
 * deleted file) and no volume holds: they still count as unpacked content, so
 * they end up in a volume too, read back from the blob.
 */
async function stagedOnly(catalog: Catalog, live: Set<string>): Promise<PendingContent[]> {
  const out: PendingContent[] = [];
  for await (const o of catalog.objects()) {
    if (o.kind !== 'blob' || o.placements.length === 0) continue;
    const hash = (await catalog.object(o.id))!.contents[0]!.hash;
    if (live.has(hash)) continue;
    const locations = await catalog.locate(hash);
    if (locations.some((l) => l.object.kind === 'volume' && l.placements.length > 0)) continue;
    const slash = o.name.indexOf('/');
    out.push({ hash, size: o.plainSize, source: o.name.slice(0, slash), path: o.name.slice(slash + 1), blob: { id: o.id, size: o.size, plainSize: o.plainSize, time: o.time } });
  }
  return out;
}

function fileRecord(source: string, e: ScannedFile, time: number): CatalogPayload {
  return {
    k: 'file', source, path: e.path, type: e.type, size: e.size,
    mtimeMs: e.mtimeMs, ctimeMs: e.ctimeMs, ino: e.ino, mode: e.mode, uid: e.uid, gid: e.gid,
    hash: e.hash, target: e.target, time,
  };
}

async function storePending(ctx: BackupContext, pending: PendingContent[], options: BackupOptions, report: BackupReport): Promise<void> {
  const volumeSize = ctx.config.size('volume.size');
  const groups: PendingContent[][] = [];
  let current: PendingContent[] = [];
  let currentBytes = 0;
  for (const item of pending) {
    current.push(item);
    currentBytes += item.size;
    if (currentBytes >= volumeSize) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
  }
  if (options.pack && current.length) {
    groups.push(current);
    current = [];
  }
  // The remainder is staged first: it is the newest data and the cheapest to protect.
  await stageBlobs(ctx, current, report);
  for (const group of groups) await packVolume(ctx, group, report);
}

/** Staged blobs are recorded in batches: one catalog append (and fsync) per blob would dominate. */
const BLOB_RECORD_BATCH = 200;

async function stageBlobs(ctx: BackupContext, items: PendingContent[], report: BackupReport): Promise<void> {
  let done = 0;
  let bytes = 0;
  const totalBytes = items.reduce((n, i) => n + i.size, 0);
  let records: CatalogPayload[] = [];
  let spooled: EncodedObject[] = [];
  const flush = async (): Promise<void> => {
    if (records.length) await ctx.catalog.append(records);
    for (const e of spooled) ctx.store.discard(e);
    records = [];
    spooled = [];
  };
  for (const item of items) {
    const existing = await ctx.catalog.locate(item.hash);
    if (existing.some((l) => l.placements.length > 0)) continue;
    const where = `${item.source}/${item.path}`;
    const file = sourceFile(ctx.config, item.source, item.path);
    if (!file) {
      report.errors.push({ path: where, error: 'its source is no longer configured' });
      continue;
    }
    try {
      const encoded = await ctx.store.encode(createReadStream(file));
      if (encoded.plainSha256 !== item.hash || encoded.plainSize !== item.size) {
        ctx.store.discard(encoded);
        throw new Error('changed since it was scanned');
      }
      records.push(...(await ctx.store.put(encoded, { kind: 'blob', name: where, contents: [{ hash: item.hash, offset: 0, length: item.size }] })));
      spooled.push(encoded);
      report.blobs.stored++;
      report.blobs.bytes += item.size;
    } catch (err) {
      report.errors.push({ path: where, error: (err as Error).message });
      ctx.progress.log(`warning: ${where}: ${(err as Error).message} (will retry next run)`);
    }
    if (spooled.length >= BLOB_RECORD_BATCH) await flush();
    done++;
    bytes += item.size;
    ctx.progress.update({ phase: 'staging', files: done, bytes, totalFiles: items.length, totalBytes });
  }
  await flush();
}

async function packVolume(ctx: BackupContext, group: PendingContent[], report: BackupReport): Promise<void> {
  const entries: IsoEntry[] = [];
  const byPath = new Map<string, PendingContent>();
  let minTime = Infinity;
  let maxTime = -Infinity;
  for (const item of group) {
    const blob = item.blob;
    const file = blob ? undefined : sourceFile(ctx.config, item.source, item.path);
    if (!blob && !file) {
      report.errors.push({ path: `${item.source}/${item.path}`, error: 'its source is no longer configured' });
      continue;
    }
    const version = blob ? undefined : await ctx.catalog.current(item.source, item.path);
    const mtimeMs = version?.mtimeMs ?? blob?.time ?? Date.now();
    minTime = Math.min(minTime, mtimeMs);
    maxTime = Math.max(maxTime, mtimeMs);
    // An old version may share its path with the current one in the same volume.
    let isoPath = `${item.source}/${item.path}`;
    if (byPath.has(isoPath)) isoPath += `~${item.hash.slice(0, 12)}`;
    byPath.set(isoPath, item);
    entries.push({
      type: 'file', path: isoPath, size: item.size, mtimeMs, mode: version?.mode ?? 0o644, uid: version?.uid, gid: version?.gid,
      expectedSha256: item.hash,
      open: () => (blob ? ctx.store.openPlaintext(blob) : createReadStream(file!)),
    });
  }
  if (entries.length === 0) return;
  const name = await volumeName(ctx.catalog, minTime, maxTime);
  const writer = new IsoVolumeWriter(entries, { volumeId: name.replace(/\.iso$/, '') });
  const totalBytes = writer.size;
  const image = writer.stream();
  const counted = countBytes(image, (bytes) => ctx.progress.update({ phase: `packing ${name}`, files: 0, bytes, totalBytes }));
  const encoded = await ctx.store.encode(counted);
  const { mismatched } = await writer.result;
  const bad = new Set(mismatched.map((m) => m.path));
  for (const m of mismatched) {
    report.errors.push({ path: m.path, error: `${m.reason} (will be backed up again next run)` });
    ctx.progress.log(`warning: ${m.path}: ${m.reason} (will be backed up again next run)`);
  }
  const contents = [];
  for (const [isoPath, item] of byPath) {
    if (bad.has(isoPath)) continue;
    const extent = writer.extent(isoPath)!;
    contents.push({ hash: item.hash, offset: extent.offset, length: extent.length });
  }
  await ctx.store.place(encoded, { kind: 'volume', name, contents });
  report.volumes.push({ id: encoded.id, name, files: contents.length, bytes: writer.size });
  report.retired += await retireStagedBlobs(ctx, contents.map((c) => c.hash), encoded.id);
}

/** Blobs whose content the new volume now holds are no longer needed. */
async function retireStagedBlobs(ctx: BackupContext, hashes: string[], volumeId: string): Promise<number> {
  let retired = 0;
  for (const hash of hashes) {
    for (const loc of await ctx.catalog.locate(hash)) {
      if (loc.object.kind !== 'blob' || loc.object.id === volumeId) continue;
      await ctx.store.retire(loc.object.id);
      retired++;
    }
  }
  return retired;
}

function sourceFile(config: Config, sourceName: string, path: string): Buffer | undefined {
  const source = config.data.sources.find((s) => s.name === sourceName);
  if (!source) return undefined;
  return Buffer.concat([Buffer.from(source.path.endsWith('/') ? source.path : `${source.path}/`), encodeFsName(path)]);
}

function countBytes(stream: Readable, onBytes: (total: number) => void): Readable {
  let total = 0;
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  stream.on('data', (chunk: Buffer) => {
    total += chunk.length;
    onBytes(total);
  });
  stream.on('error', (err) => out.destroy(err));
  stream.pipe(out);
  return out;
}

function summary(r: BackupReport): Record<string, number> {
  return {
    files: r.files.scanned, new: r.files.new, changed: r.files.changed, deleted: r.files.deleted,
    blobs: r.blobs.stored, volumes: r.volumes.length, retired: r.retired, errors: r.errors.length,
  };
}
