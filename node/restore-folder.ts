// The destination side of a restore (docs/restore.md): catalog paths checked to stay
// inside --to, folders made without following a symbolic link, short temp names that
// fit beside any valid name, and the temp files a killed restore left behind removed
// by the next restore into the same folder.
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { decodeFsName, displayPath, encodeFsName } from '../storage/paths.ts';

const SLASH = 0x2f;

/**
 * `.hearth-restore-<pid>-<8 hex>`: at most 32 bytes, whatever the name of the file it
 * becomes (a name of 255 bytes plus a suffix would exceed NAME_MAX). The pid tells a
 * temp file of a restore still running (kept) from one a killed restore left (removed).
 */
const TEMP_NAME = /^\.hearth-restore-(\d+)-[0-9a-f]{8}$/;

/** This process's temp files being written, so a sweep spares them (two restores at once in a daemon). */
const ownTemps = new Set<string>();

const key = (path: Buffer): string => path.toString('latin1');

function show(path: Buffer): string {
  return displayPath(decodeFsName(path));
}

/** The catalog path's bytes, refused unless every '/'-separated part is a plain name. */
export function safeRelativePath(path: string): Buffer {
  const parts = path.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw new Error(`the catalog path "${displayPath(path)}" has an empty, ".", ".." or absolute part: not restored, it would land outside --to`);
  }
  return encodeFsName(path);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isStray(name: Buffer): boolean {
  const m = TEMP_NAME.exec(name.toString('latin1'));
  if (!m) return false;
  const pid = Number(m[1]);
  return pid === process.pid || !processAlive(pid);
}

/** One restore's destination folder (--to; the user's choice, so it may be a link to a disk) and what it has checked in it. */
export class RestoreFolder {
  readonly root: Buffer;
  /** The root with one trailing '/', to which catalog paths are appended. */
  readonly #base: Buffer;
  /** Folders below the root known to be real folders (made or checked, and swept). */
  readonly #folders = new Set<string>();

  constructor(to: string) {
    this.root = encodeFsName(to);
    this.#base = this.root.at(-1) === SLASH ? this.root : Buffer.concat([this.root, Buffer.from('/')]);
  }

  /** Where a catalog path lands, or an error when it would not stay inside --to. */
  destination(path: string): Buffer {
    return Buffer.concat([this.#base, safeRelativePath(path)]);
  }

  /**
   * Makes every folder from the root down to `dir`, one part at a time, refusing a
   * part that is a symbolic link or a file: a link a restore created (or found) is
   * never followed to write another file. Each folder that was already there is
   * swept of stray temp files the first time it is met.
   */
  makeFolder(dir: Buffer): void {
    if (this.#folders.has(key(dir))) return;
    for (let at = this.#base.length; at <= dir.length; at++) {
      if (at < dir.length && dir[at] !== SLASH) continue;
      const part = dir.subarray(0, at);
      if (!this.#folders.has(key(part))) this.#makeOne(part);
    }
  }

  #makeOne(part: Buffer): void {
    let st = lstatOrUndefined(part);
    if (!st) {
      try {
        mkdirSync(part);
        this.#folders.add(key(part));
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        st = lstatSync(part); // made meanwhile by another restore into the same folder
      }
    }
    if (st.isSymbolicLink()) throw new Error(`${show(part)} is a symbolic link where the backup has a folder: not followed; move the link away and run the restore again`);
    if (!st.isDirectory()) throw new Error(`${show(part)} is not a folder, but the backup has a folder there: move it away and run the restore again`);
    sweepStrays(part);
    this.#folders.add(key(part));
  }

  /** A fresh temp name in the file's folder, counted as this process's until released. */
  static tempFor(dest: Buffer): Buffer {
    const slash = dest.lastIndexOf(SLASH);
    const tmp = Buffer.concat([dest.subarray(0, slash + 1), Buffer.from(`.hearth-restore-${process.pid}-${randomBytes(4).toString('hex')}`)]);
    ownTemps.add(key(tmp));
    return tmp;
  }

  /** The temp file has been renamed into place. */
  static released(tmp: Buffer): void {
    ownTemps.delete(key(tmp));
  }

  /**
   * Removes a temp file that did not become its file. Never throws: the failure it
   * follows is what the user is told, and a temp file that stays is swept next time.
   */
  static async discard(tmp: Buffer): Promise<void> {
    await rm(tmp, { force: true }).catch(() => undefined);
    ownTemps.delete(key(tmp));
  }
}

function lstatOrUndefined(path: Buffer) {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Removes the temp files in `dir` that no running restore owns. */
function sweepStrays(dir: Buffer): void {
  for (const name of readdirSync(dir, { encoding: 'buffer' })) {
    if (!isStray(name)) continue;
    const path = Buffer.concat([dir, Buffer.from('/'), name]);
    if (ownTemps.has(key(path)) || !lstatOrUndefined(path)?.isFile()) continue;
    rmSync(path, { force: true });
  }
}
