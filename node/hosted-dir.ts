// Where relatives' objects are kept: <home>/hosted, or the folder the host.dir
// setting names (another disk). Like a directory target, a host.dir gets a marker
// file when it is set, and nothing is stored there while the marker is missing: a
// disk that is not mounted leaves an empty mount point on the system disk.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostStoreError } from '../storage/hoststore/host-store.ts';
import { writeFileAtomicSync } from './atomic-file.ts';
import type { Config } from './config.ts';
import type { HomePaths } from './home.ts';

export const HOSTED_MARKER_FILE = '.hearth-hosted';

export function hostedDir(paths: HomePaths, config: Config): string {
  return config.get('host.dir') || paths.hosted;
}

/** For `config set host.dir PATH`: the folder must exist; its marker names this home. */
export function markHostDir(path: string, peerId: string): void {
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new Error(`host.dir ${path} is not an existing folder: mount the disk or create the folder first (mkdir -p ${path})`);
  const file = join(path, HOSTED_MARKER_FILE);
  try {
    if ((JSON.parse(readFileSync(file, 'utf8')) as { home?: string }).home === peerId) return;
  } catch {
    // No marker yet: write it.
  }
  writeFileAtomicSync(file, `${JSON.stringify({ hearth: 'hosted-dir', home: peerId, createdAt: new Date().toISOString() })}\n`);
}

/** Before an upload writes into a host.dir: its marker must be there (the disk is mounted). */
export function hostDirCheck(paths: HomePaths, config: Config, peerId: string): (() => Promise<void>) | undefined {
  const dir = config.get('host.dir');
  if (!dir) return undefined;
  return async () => {
    const home = await readFile(join(dir, HOSTED_MARKER_FILE), 'utf8').then((t) => (JSON.parse(t) as { home?: string }).home, () => undefined);
    if (home !== peerId) throw new HostStoreError('EINVAL', `this relative keeps family data in ${dir} (host.dir), which has no ${HOSTED_MARKER_FILE} marker: its disk is not mounted, so nothing is stored until it is`);
  };
}
