// What a put verified about each hosted object, kept beside the host store so a
// later scrub can tell rot on this disk from the bytes the owner sent: the Merkle
// root the owner declared and the received bytes were checked against. Layout:
//   <hosted dir>/<ownerPeerId>/hashes/<first 2 chars of id>/<id>   {"merkleRoot":"…","leafSize":L,"size":N}
// A separate tree, not a sidecar in objects/, so listing objects stays a plain
// directory walk. A lost or torn file only means the next scrub adopts the hash
// of the bytes it finds (objects stored before hashes were kept are adopted too),
// so these files are not fsynced: the object itself was, before it was published.
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface KeptHash {
  /** RFC 6962 root of the object's bytes cut in leafSize-byte leaves (storage/merkle.ts), lowercase hex. */
  merkleRoot: string;
  leafSize: number;
  size: number;
}

export function keptHashPath(hostedDir: string, owner: string, id: string): string {
  return join(hostedDir, owner, 'hashes', id.slice(0, 2), id);
}

/** The kept hash, or undefined when none was kept, the file is torn, or it is of an older form ({sha256,size}). */
export async function readKeptHash(hostedDir: string, owner: string, id: string): Promise<KeptHash | undefined> {
  let text: string;
  try {
    text = await readFile(keptHashPath(hostedDir, owner, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const value = JSON.parse(text) as Partial<KeptHash>;
    const { merkleRoot, leafSize, size } = value;
    if (typeof merkleRoot === 'string' && /^[0-9a-f]{64}$/.test(merkleRoot) && Number.isSafeInteger(leafSize) && leafSize! >= 1 && Number.isSafeInteger(size) && size! >= 0) {
      return { merkleRoot, leafSize: leafSize!, size: size! };
    }
  } catch {
    // Torn by a crash: as if absent.
  }
  return undefined;
}

/**
 * Keep `hash` for the object. `replace` is for a put that just published the
 * object; `ifAbsent` is for a scrub adopting a hash, so it never overwrites a kept
 * hash a put wrote meanwhile (but does replace a torn or older-form file, which
 * would otherwise be adopted again by every scrub). Returns whether the file was written.
 */
export async function keepHash(hostedDir: string, owner: string, id: string, hash: KeptHash, mode: 'replace' | 'ifAbsent'): Promise<boolean> {
  const path = keptHashPath(hostedDir, owner, id);
  await mkdir(dirname(path), { recursive: true });
  const data = JSON.stringify({ merkleRoot: hash.merkleRoot, leafSize: hash.leafSize, size: hash.size } satisfies KeptHash);
  if (mode === 'ifAbsent') {
    if (await createFileAtomic(path, data)) return true;
    if ((await readKeptHash(hostedDir, owner, id)) !== undefined) return false;
  }
  await writeFileAtomic(path, data, { sync: false });
  return true;
}

export async function forgetHash(hostedDir: string, owner: string, id: string): Promise<void> {
  await rm(keptHashPath(hostedDir, owner, id), { force: true });
}

/** Replace `path` whole: a crash leaves the old or the new content, never a torn file. */
export async function writeFileAtomic(path: string, data: string, options: { sync: boolean }): Promise<void> {
  const tmp = await writeTemp(path, data, options.sync);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (options.sync) await syncDirectory(dirname(path));
}

/** Create `path` whole unless it exists; false when it did. */
async function createFileAtomic(path: string, data: string): Promise<boolean> {
  const tmp = await writeTemp(path, data, false);
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

async function writeTemp(path: string, data: string, sync: boolean): Promise<string> {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  const handle = await open(tmp, 'wx');
  try {
    await handle.writeFile(data);
    if (sync) await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  return tmp;
}

/** fsync a directory, so a rename or new entry in it survives a crash. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
