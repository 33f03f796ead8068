// A target that is a local directory: a USB disk, a NAS mount. Objects live at
// <root>/hearth/<ownerId>/objects/<first two hex chars of the name>/<name>; the
// owner level lets several homes share one disk, the two-character shards keep
// directories small. A target added by `hearth target add` has a marker file,
// <root>/.hearth-target, holding an id the config keeps too: a mount point whose
// disk is not mounted is an empty folder without it, and is refused rather than
// filled. A full, read-only or missing disk is a TargetUnavailableError: the whole
// target is out for the run, not just the object.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, link, mkdir, open as openFile, opendir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DirectWriteStream } from '../direct-write.ts';
import { ObjectNotFoundError, PermanentTierError, TargetUnavailableError } from './tier.ts';
import type { ByteRange, ObjectInfo, ObjectSource, Tier } from './tier.ts';

export interface DirTierOptions {
  /** The target's name as the user gave it. */
  name: string;
  /** The directory the user pointed at, e.g. the disk's mount point. */
  root: string;
  /** The home whose objects these are. */
  ownerId: string;
  /** The id `hearth target add` wrote into <root>/.hearth-target; absent for targets added before markers. */
  marker?: string;
}

/** The marker file at a directory target's root (docs/dir-target.md). */
export const TARGET_MARKER_FILE = '.hearth-target';

const TEMP_PREFIX = '.tmp-';
/**
 * Reads of 1 MiB, not streams' default 64 KiB: a restore of 2.6 GB made 40,000 reads,
 * each a trip through libuv, and as many buffers for the GC.
 */
const READ_CHUNK = 1024 * 1024;
/** A temp file untouched this long belongs to a put that died, not one in flight. */
const STALE_TEMP_AGE_MS = 15 * 60 * 1000;

const OBJECT_NAME = /^[0-9a-f]{2}[A-Za-z0-9._-]{0,254}$/;
const OWNER_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;
const SHARD = /^[0-9a-f]{2}$/;

export class DirTier implements Tier {
  readonly kind = 'dir' as const;
  readonly name: string;
  readonly root: string;
  readonly objectsDir: string;
  private readonly marker: string | undefined;

  private opening: Promise<void> | undefined;

  constructor(options: DirTierOptions) {
    if (!OWNER_ID.test(options.ownerId)) {
      throw new Error(`owner id ${JSON.stringify(options.ownerId)} cannot name a directory; use letters, digits, '.', '_' or '-'`);
    }
    this.name = options.name;
    this.root = resolve(options.root);
    this.objectsDir = join(this.root, 'hearth', options.ownerId, 'objects');
    this.marker = options.marker;
  }

  /**
   * Creates hearth/<ownerId>/objects under root and removes temp files that crashed
   * puts left behind. Every operation calls it; it does its work once, and again
   * after a failure (the disk may be plugged in by then). root itself must exist:
   * creating it would write onto the empty mount point of a disk that is not there.
   */
  open(): Promise<void> {
    this.opening ??= this.prepare().catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  private async prepare(): Promise<void> {
    const rootStat = await stat(this.root).catch(() => undefined);
    if (!rootStat?.isDirectory()) {
      throw new TargetUnavailableError(`dir target ${this.name}: ${this.root} is not a directory; is the disk mounted?`);
    }
    if (this.marker !== undefined) {
      const found = await readFile(join(this.root, TARGET_MARKER_FILE), 'utf8').then((text) => markerId(text), () => undefined);
      if (found === undefined) throw new TargetUnavailableError(`dir target ${this.name}: ${this.root} has no ${TARGET_MARKER_FILE} marker, so the disk is not mounted there (it is the empty mount point): nothing was written; mount the disk, or "hearth target rm ${this.name}"`);
      if (found !== this.marker) throw new TargetUnavailableError(`dir target ${this.name}: ${this.root} holds another target's ${TARGET_MARKER_FILE} marker (another disk is mounted there): nothing was written; mount the right disk`);
    }
    // Level by level, not recursive: a recursive mkdir on a read-only disk fails
    // with ENOENT, which would hide that it is read-only.
    for (const dir of [join(this.root, 'hearth'), join(this.objectsDir, '..'), this.objectsDir]) {
      await mkdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw this.translate(err, 'its objects folder');
      });
    }
    await this.removeTempFilesOlderThan(Date.now() - STALE_TEMP_AGE_MS);
  }

  location(name: string): string {
    if (!OBJECT_NAME.test(name)) {
      throw new PermanentTierError(`object name ${JSON.stringify(name)} is not valid: it must be two lowercase hex characters, then letters, digits, '.', '_' or '-'`);
    }
    return join(this.objectsDir, name.slice(0, 2), name);
  }

  async put(name: string, source: ObjectSource, signal?: AbortSignal): Promise<void> {
    const path = this.location(name);
    await this.open();
    signal?.throwIfAborted();
    const dir = join(path, '..');
    // Not recursive: if objectsDir vanished the disk was unmounted, and recreating the
    // tree would put objects on the mount point's filesystem instead.
    await mkdir(dir).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return;
      throw err.code === 'ENOENT' ? await this.notMountedOr(err) : this.translate(err, name);
    });
    const tempPath = join(dir, TEMP_PREFIX + randomBytes(8).toString('hex'));
    try {
      const written = source.file !== undefined ? await takeFile(source.file, tempPath) : await writeStream(source, tempPath, signal);
      if (written !== source.size) {
        throw new Error(`source of ${name} gave ${written} bytes but declared ${source.size}; the data changed while it was being stored`);
      }
      await rename(tempPath, path);
      await syncDir(dir);
    } catch (err) {
      await unlink(tempPath).catch(() => {});
      throw this.translate(err, name);
    }
  }

  async get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const path = this.location(name);
    await this.open();
    signal?.throwIfAborted();
    const file = await openFile(path, 'r').catch(async (err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? await this.notFound(name) : this.translate(err, name);
    });
    try {
      const { size } = await file.stat();
      if (range === undefined) return file.createReadStream({ signal, highWaterMark: READ_CHUNK });
      const { offset, length } = range;
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
        throw new PermanentTierError(`range ${offset}+${length} is outside object ${name} (${size} bytes) on dir target ${this.name}`);
      }
      if (length === 0) {
        await file.close();
        return Readable.from([]);
      }
      return file.createReadStream({ start: offset, end: offset + length - 1, signal, highWaterMark: READ_CHUNK });
    } catch (err) {
      await file.close().catch(() => {});
      throw err;
    }
  }

  async stat(name: string): Promise<ObjectInfo> {
    const path = this.location(name);
    await this.open();
    try {
      const info = await stat(path);
      return { name, size: info.size };
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? await this.notFound(name) : this.translate(err, name);
    }
  }

  async *list(): AsyncIterable<ObjectInfo> {
    await this.open();
    const shards = await opendir(this.objectsDir).catch(async (err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? await this.notMountedOr(err) : err;
    });
    for await (const shard of shards) {
      if (!shard.isDirectory() || !SHARD.test(shard.name)) continue;
      for await (const entry of await opendir(join(this.objectsDir, shard.name))) {
        if (!entry.isFile() || !OBJECT_NAME.test(entry.name)) continue;
        // An object deleted between readdir and stat is simply no longer listed.
        const info = await stat(join(this.objectsDir, shard.name, entry.name)).catch(() => undefined);
        if (info) yield { name: entry.name, size: info.size, modifiedMs: info.mtimeMs };
      }
    }
  }

  async delete(name: string): Promise<void> {
    const path = this.location(name);
    await this.open();
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw this.translate(err, name);
    });
  }

  async close(): Promise<void> {}

  /** Temp files however young, for a caller that knows which puts could still be writing. */
  async removeTempFiles(olderThanMs: number): Promise<number> {
    await this.open();
    return this.removeTempFilesOlderThan(olderThanMs);
  }

  private async removeTempFilesOlderThan(olderThanMs: number): Promise<number> {
    let removed = 0;
    for await (const shard of await opendir(this.objectsDir)) {
      if (!shard.isDirectory() || !SHARD.test(shard.name)) continue;
      const dir = join(this.objectsDir, shard.name);
      for await (const entry of await opendir(dir)) {
        if (!entry.name.startsWith(TEMP_PREFIX)) continue;
        const path = join(dir, entry.name);
        const info = await stat(path).catch(() => undefined);
        if (info && info.mtimeMs < olderThanMs && (await unlink(path).then(() => true, () => false))) removed++;
      }
    }
    return removed;
  }

  /** An absent object, or an absent objects directory (the disk went away). */
  private async notFound(name: string): Promise<Error> {
    return this.notMountedOr(new ObjectNotFoundError(`dir target ${this.name}`, name));
  }

  private async notMountedOr(err: Error): Promise<Error> {
    const present = await stat(this.objectsDir).then(() => true, () => false);
    return present ? err : new TargetUnavailableError(`dir target ${this.name}: ${this.objectsDir} is missing; is the disk mounted?`);
  }

  /** Marks the errors retrying cannot fix, so RetryTier gives up at once. */
  private translate(err: unknown, name: string): unknown {
    switch ((err as NodeJS.ErrnoException).code) {
      case 'ENOSPC':
      case 'EDQUOT':
        return new TargetUnavailableError(`dir target ${this.name} is full (${this.root}): free space there or add another target`, { cause: err });
      case 'EROFS':
        return new TargetUnavailableError(`dir target ${this.name} is read-only (${this.root} is mounted read-only): remount it writable`, { cause: err });
      case 'EACCES':
      case 'EPERM':
        return new TargetUnavailableError(`dir target ${this.name} refused writing ${name} (${(err as NodeJS.ErrnoException).code}): check that ${this.root} is writable for this user`, { cause: err });
      default:
        return err;
    }
  }
}

/** The id in a marker file's text (JSON with an `id`), or undefined when it is not one. */
function markerId(text: string): string | undefined {
  try {
    const id = (JSON.parse(text) as { id?: unknown }).id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Streams the source into a new file at `path`, durably; returns the bytes written. */
async function writeStream(source: ObjectSource, path: string, signal: AbortSignal | undefined): Promise<number> {
  // The stream syncs before it finishes, so the rename that follows publishes durable bytes.
  const out = new DirectWriteStream(path, { flags: 'wx' });
  await pipeline(source.open(0), out, { signal });
  return out.bytesWritten;
}

/**
 * Puts a local file's bytes at `path`, durably; returns their size. A hard link
 * when the file is on the same filesystem (a spooled volume then costs no second
 * write of gigabytes: the spool name is dropped afterwards and the target keeps
 * the only one), else a kernel copy. Either way the data is synced before the
 * caller renames it into place.
 */
async function takeFile(file: string, path: string): Promise<number> {
  // Another disk (EXDEV), or a filesystem without hard links (FAT, some NAS shares): copy.
  await link(file, path).catch(() => copyFile(file, path, constants.COPYFILE_EXCL));
  const handle = await openFile(path, 'r');
  try {
    await handle.sync();
    return (await handle.stat()).size;
  } finally {
    await handle.close();
  }
}

/**
 * Makes a rename durable: the directory entry lives in the directory, not the file.
 * Some filesystems (SMB mounts, exFAT through FUSE) cannot fsync a directory; the
 * rename is still atomic there.
 */
async function syncDir(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  } finally {
    await handle.close();
  }
}
