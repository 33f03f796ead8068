// Small files (config, identity, roster) are replaced whole: write a temp file,
// fsync it, rename over the old one, fsync the directory. A crash leaves either
// the old or the new file, never a torn one.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';

export function writeFileAtomicSync(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dirFd = openSync(dirname(file), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/**
 * A small versioned JSON state file (alerts, schedule). Absent gives `fresh()`;
 * unreadable or of another version is reported through `unreadable` and also gives
 * `fresh()`: losing such state costs a repeated message or a missed catch-up, which
 * beats a daemon that will not start.
 */
export function readStateFile<T extends { version: number }>(file: string, fresh: () => T, valid: (parsed: T) => boolean, unreadable: (reason: string) => void): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fresh();
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as T;
    if (parsed.version === fresh().version && valid(parsed)) return parsed;
    throw new Error(`unknown version ${String(parsed.version)}`);
  } catch (err) {
    unreadable((err as Error).message);
    return fresh();
  }
}
