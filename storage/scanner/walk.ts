// The walk half of a scan: a depth-first walk whose children are visited in raw byte
// order, with ignore patterns applied and every entry lstat'ed, in batches. It runs
// on its own thread (walk-worker.ts) or, a batch at a time, on the scanner's
// (scanner.ts, ScanOptions.walkThread).
import { lstatSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import type { Dirent, Stats } from 'node:fs';
import { decodeFsName, encodeFsName } from '../paths.ts';
import { compileIgnore } from './ignore.ts';
import { BATCH_ENTRIES, EntryCode, FIELDS, type WalkError, type WalkMessage, type WalkStart } from './walk-messages.ts';

const SLASH = Buffer.from('/');
const NUL = Buffer.from([0]);

interface Frame {
  abs: Buffer;
  rel: string;
  key: Buffer;
  children: Dirent<Buffer>[];
  next: number;
}

/** Entries collected for the next message. */
class Batch {
  numbers = new Float64Array(BATCH_ENTRIES * FIELDS);
  keys: Buffer[] = [];
  paths: string[] = [];
  extras: Array<string | WalkError | null> = [];

  get count(): number {
    return this.paths.length;
  }

  add(code: EntryCode, rel: string, key: Buffer, st: Stats | undefined, extra: string | WalkError | null = null): void {
    const at = this.count * FIELDS;
    const n = this.numbers;
    n[at] = code;
    if (st) {
      n[at + 1] = st.size;
      n[at + 2] = st.mtimeMs;
      n[at + 3] = st.ctimeMs;
      n[at + 4] = st.ino;
      n[at + 5] = st.dev;
      n[at + 6] = st.mode;
      n[at + 7] = st.uid;
      n[at + 8] = st.gid;
      n[at + 9] = st.nlink;
    }
    this.keys.push(key);
    this.paths.push(rel);
    this.extras.push(extra);
  }

  message(): WalkMessage {
    const keyEnds = new Uint32Array(this.count);
    let end = 0;
    this.keys.forEach((key, i) => (keyEnds[i] = end += key.length));
    return { kind: 'batch', numbers: this.numbers.subarray(0, this.count * FIELDS), keys: Buffer.concat(this.keys), keyEnds, paths: this.paths, extras: this.extras };
  }
}

function walkError(doing: string, err: unknown): WalkError {
  return { doing, code: (err as NodeJS.ErrnoException).code, message: (err as Error).message };
}

// libuv lists a folder in scandir's alphasort order, which is byte order only in the C locale.
function readSortedDir(abs: Buffer): Dirent<Buffer>[] {
  return readdirSync(abs, { encoding: 'buffer', withFileTypes: true }).sort((a, b) => Buffer.compare(a.name, b.name));
}

function entryCode(st: Stats): EntryCode {
  if (st.isFile()) return EntryCode.file;
  if (st.isDirectory()) return EntryCode.dir;
  if (st.isSymbolicLink()) return EntryCode.symlink;
  return EntryCode.gone;
}

/** The walk's batches, of at most BATCH_ENTRIES entries each; or 'fatal' alone if the root cannot be read. */
export function* walkBatches(start: WalkStart): Generator<WalkMessage, void, undefined> {
  const ignored = compileIgnore(start.ignore);
  const rootBytes = encodeFsName(start.root);
  let children: Dirent<Buffer>[];
  try {
    if (!statSync(rootBytes).isDirectory()) throw new Error('not a directory');
    children = readSortedDir(rootBytes);
  } catch (err) {
    yield { kind: 'fatal', message: (err as Error).message };
    return;
  }
  // Children's paths are joined with '/', so the filesystem root contributes no bytes of its own.
  const stack: Frame[] = [{ abs: start.root === '/' ? Buffer.alloc(0) : rootBytes, rel: '', key: Buffer.alloc(0), children, next: 0 }];
  let batch = new Batch();
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next === frame.children.length) {
      stack.pop();
      continue;
    }
    const dirent = frame.children[frame.next++]!;
    const nameBytes = dirent.name;
    const name = decodeFsName(nameBytes);
    const rel = frame.rel === '' ? name : `${frame.rel}/${name}`;
    // Sockets, FIFOs and devices hold no data worth restoring: skipped silently,
    // like ignored entries, so a previous entry at that path reads as deleted.
    if (!(dirent.isFile() || dirent.isDirectory() || dirent.isSymbolicLink())) continue;
    if (ignored(rel, name, dirent.isDirectory())) continue;
    const key = frame.key.length === 0 ? nameBytes : Buffer.concat([frame.key, NUL, nameBytes]);
    const abs = Buffer.concat([frame.abs, SLASH, nameBytes]);
    let st: Stats | undefined;
    try {
      st = lstatSync(abs);
    } catch (err) {
      batch.add(EntryCode.unreadable, rel, key, undefined, walkError('cannot read', err));
    }
    if (st) {
      const code = entryCode(st);
      if (code === EntryCode.dir) {
        try {
          const inside = readSortedDir(abs);
          batch.add(code, rel, key, st);
          stack.push({ abs, rel, key, children: inside, next: 0 });
        } catch (err) {
          batch.add(EntryCode.unreadable, rel, key, undefined, walkError('cannot read folder', err));
        }
      } else if (code === EntryCode.symlink) {
        try {
          batch.add(code, rel, key, st, decodeFsName(readlinkSync(abs, { encoding: 'buffer' })));
        } catch (err) {
          batch.add(EntryCode.linkUnreadable, rel, key, st, walkError('cannot read symlink', err));
        }
      } else {
        batch.add(code, rel, key, st);
      }
    }
    if (batch.count === BATCH_ENTRIES) {
      yield batch.message();
      batch = new Batch();
    }
  }
  if (batch.count > 0) yield batch.message();
}
