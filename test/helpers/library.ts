// Generated photo-library-like trees, and a way to snapshot a tree's exact
// contents (bytes, links, modes, mtimes) to compare a restore against.
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFsName } from '../../storage/paths.ts';

export function writeFile(root: string, rel: string | Buffer, size: number, seed = 1): void {
  const path = typeof rel === 'string' ? join(root, rel) : Buffer.concat([Buffer.from(root + '/'), rel]);
  const dir = typeof rel === 'string' ? join(root, rel, '..') : root;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path, pseudoRandom(size, seed));
}

/** Deterministic bytes: the same (size, seed) gives the same content. */
export function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(`seed-${seed}`).digest();
  for (let off = 0; off < size; off += 32) {
    block.copy(out, off, 0, Math.min(32, size - off));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** A library with the awkward cases a family's photos folder really has. */
export function makeLibrary(root: string): void {
  mkdirSync(root, { recursive: true });
  writeFile(root, 'empty.txt', 0, 1);
  writeFile(root, 'one-byte.bin', 1, 2);
  writeFile(root, '2024/summer/chunk-minus.jpg', 65535, 3);
  writeFile(root, '2024/summer/chunk-exact.jpg', 65536, 4);
  writeFile(root, '2024/summer/chunk-plus.jpg', 65537, 5);
  writeFile(root, '2024/video/clip.mp4', 3 * 1024 * 1024 + 17, 6);
  writeFile(root, '2023/Ünïcødé 写真/日本の夏 🎆.jpg', 5000, 7);
  writeFile(root, `2023/${'long-name-'.repeat(20)}.jpg`, 3000, 8);
  writeFile(root, 'deep/a/b/c/d/e/f/g/h/i/j/photo.png', 2048, 9);
  writeFile(root, 'dup/copy-of-one-byte.bin', 1, 2);
  writeFile(root, Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0xe9, 0x2e, 0x6a, 0x70, 0x67]), 1234, 10); // "latiné.jpg" in Latin-1
  mkdirSync(join(root, 'empty-folder'), { recursive: true });
  symlinkSync('2024/video/clip.mp4', join(root, 'latest-clip.mp4'));
  utimesSync(join(root, '2024/video/clip.mp4'), new Date('2024-07-01T10:00:00Z'), new Date('2024-07-01T10:00:00Z'));
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  sha256?: string;
  target?: string;
  mode: number;
  mtimeMs?: number;
}

/** Path (with raw bytes as lone surrogates) → what is there. */
export function snapshotTree(root: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (dir: Buffer, rel: string): void => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const path = rel ? `${rel}/${decodeFsName(name)}` : decodeFsName(name);
      const st = lstatSync(full);
      if (st.isDirectory()) {
        out.set(path, { type: 'dir', mode: st.mode & 0o7777 });
        walk(full, path);
      } else if (st.isSymbolicLink()) {
        out.set(path, { type: 'symlink', target: readlinkSync(full, 'utf8'), mode: 0 });
      } else {
        out.set(path, { type: 'file', sha256: createHash('sha256').update(readFileSync(full)).digest('hex'), mode: st.mode & 0o7777, mtimeMs: Math.floor(st.mtimeMs / 1000) });
      }
    }
  };
  walk(Buffer.from(root), '');
  return out;
}

export function randomName(): string {
  return randomBytes(6).toString('hex');
}

/** Temp files a restore left (named ".hearth-restore-..."), anywhere under root. */
export function restoreTemps(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: Buffer): void => {
    for (const entry of readdirSync(dir, { encoding: 'buffer', withFileTypes: true })) {
      const full = Buffer.concat([dir, Buffer.from('/'), entry.name]);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.toString('latin1').startsWith('.hearth-restore-')) found.push(decodeFsName(full));
    }
  };
  walk(Buffer.from(root));
  return found;
}
