// The directory tree behind an ISO volume, built from the caller's entries: parent
// directories are implied by paths, children are ordered by their names' bytes, and
// inode numbers follow that order, so the tree depends only on the set of entries.
import type { Readable } from 'node:stream';
import { displayPath, encodeFsName } from '../paths.ts';

export interface IsoFileEntry {
  type: 'file';
  /** Hearth path: '/'-separated, relative; raw non-UTF-8 bytes as U+DC80..U+DCFF. */
  path: string;
  size: number;
  mtimeMs: number;
  /** Permission bits (the file-type bits, if present, are ignored). */
  mode: number;
  uid?: number;
  gid?: number;
  /** Called once, when the stream reaches this file's data. Give this or `file`. */
  open?(): Readable;
  /**
   * The file's path to read it from: read with synchronous reads straight into the
   * image's buffers when the stream reaches it, no stream per file. Give this or `open`.
   */
  file?: string | Buffer;
  /** With `file`: the file as scanned; other times or inode once it is read are reported as a change. */
  scanned?: { mtimeMs: number; ctimeMs: number; ino: number };
  /** Hex SHA-256 the caller expects; a difference is reported as a mismatch. */
  expectedSha256?: string;
}

export interface IsoSymlinkEntry {
  type: 'symlink';
  path: string;
  /** Link target as a Hearth path string (may be absolute, may contain raw bytes). */
  target: string;
  mtimeMs: number;
  mode: number;
  uid?: number;
  gid?: number;
}

/** Optional: gives a directory its attributes; unlisted parents get defaults. */
export interface IsoDirEntry {
  type: 'dir';
  path: string;
  mtimeMs: number;
  mode: number;
  uid?: number;
  gid?: number;
}

export type IsoEntry = IsoFileEntry | IsoSymlinkEntry | IsoDirEntry;

interface NodeBase {
  /** Last path component (the Rock Ridge name). */
  name: string;
  path: string;
  mtimeMs: number;
  mode: number;
  uid: number;
  gid: number;
  /** Rock Ridge file serial number; unique, so no reader mistakes two files for hard links. */
  ino: number;
}

export interface DirNode extends NodeBase {
  kind: 'dir';
  parent: DirNode | null;
  children: TreeNode[];
}

export interface FileNode extends NodeBase {
  kind: 'file';
  parent: DirNode;
  entry: IsoFileEntry;
  size: number;
}

export interface SymlinkNode extends NodeBase {
  kind: 'symlink';
  parent: DirNode;
  target: Buffer;
}

export type TreeNode = DirNode | FileNode | SymlinkNode;

export interface Tree {
  root: DirNode;
  /** File nodes in the order of the entries: the order their data is laid out. */
  files: FileNode[];
}

const NAME_MAX = 255;
/** libisofs (xorriso, osirrox) refuses to load an image with a longer symlink target (it reads them into 1024-byte buffers). */
export const ISO_SYMLINK_TARGET_MAX = 1023;
const DEFAULT_DIR_MODE = 0o755;

export function buildTree(entries: readonly IsoEntry[], impliedDirMtimeMs: number): Tree {
  const root: DirNode = {
    kind: 'dir', name: '', path: '', parent: null, children: [],
    mtimeMs: impliedDirMtimeMs, mode: DEFAULT_DIR_MODE, uid: 0, gid: 0, ino: 0,
  };
  const dirs = new Map<string, DirNode>([['', root]]);
  const explicit = new Set<string>();
  const leaves = new Set<string>();
  const files: FileNode[] = [];

  const dirAt = (path: string): DirNode => {
    const existing = dirs.get(path);
    if (existing) return existing;
    if (leaves.has(path)) throw new Error(`ISO entry ${displayPath(path)} is used both as a file and as a directory; give each path one type`);
    const slash = path.lastIndexOf('/');
    const parent = dirAt(slash < 0 ? '' : path.slice(0, slash));
    const dir: DirNode = {
      kind: 'dir', name: path.slice(slash + 1), path, parent, children: [],
      mtimeMs: impliedDirMtimeMs, mode: DEFAULT_DIR_MODE, uid: 0, gid: 0, ino: 0,
    };
    parent.children.push(dir);
    dirs.set(path, dir);
    return dir;
  };

  for (const entry of entries) {
    checkEntry(entry);
    const { path } = entry;
    if (leaves.has(path) || explicit.has(path)) throw new Error(`ISO entry ${displayPath(path)} is listed twice; list each path once`);
    const slash = path.lastIndexOf('/');
    const name = path.slice(slash + 1);
    const attributes = {
      name, path, mtimeMs: entry.mtimeMs, mode: entry.mode & 0o7777, uid: entry.uid ?? 0, gid: entry.gid ?? 0, ino: 0,
    };
    if (entry.type === 'dir') {
      explicit.add(path);
      Object.assign(dirAt(path), attributes);
      continue;
    }
    if (dirs.has(path)) throw new Error(`ISO entry ${displayPath(path)} is used both as a file and as a directory; give each path one type`);
    leaves.add(path);
    const parent = dirAt(slash < 0 ? '' : path.slice(0, slash));
    if (entry.type === 'file') {
      const file: FileNode = { kind: 'file', ...attributes, parent, entry, size: entry.size };
      parent.children.push(file);
      files.push(file);
    } else {
      parent.children.push({ kind: 'symlink', ...attributes, parent, target: encodeFsName(entry.target) });
    }
  }

  let ino = 0;
  const number = (dir: DirNode) => {
    dir.ino = ++ino;
    const keyed = dir.children.map((child) => ({ child, key: encodeFsName(child.name) }));
    keyed.sort((a, b) => Buffer.compare(a.key, b.key));
    dir.children = keyed.map(({ child }) => child);
    for (const child of dir.children) {
      if (child.kind === 'dir') number(child);
      else child.ino = ++ino;
    }
  };
  number(root);
  return { root, files };
}

function checkEntry(entry: IsoEntry): void {
  const { path } = entry;
  if (typeof path !== 'string' || path === '') throw new Error('ISO entry has an empty path; give every entry a relative path');
  for (const component of path.split('/')) {
    if (component === '' || component === '.' || component === '..') {
      throw new Error(`ISO entry path ${displayPath(path)} is not a plain relative path; use '/'-separated names without empty, '.' or '..' parts`);
    }
    if (component.includes('\0')) throw new Error(`ISO entry path ${displayPath(path)} contains a NUL character; remove it`);
    if (encodeFsName(component).length > NAME_MAX) {
      throw new Error(`ISO entry name ${displayPath(component)} is longer than ${NAME_MAX} bytes; shorten it`);
    }
  }
  if (!Number.isFinite(entry.mtimeMs)) throw new Error(`ISO entry ${displayPath(path)} has no valid mtimeMs; pass milliseconds since 1970`);
  if (!Number.isInteger(entry.mode) || entry.mode < 0) throw new Error(`ISO entry ${displayPath(path)} has an invalid mode; pass permission bits such as 0o644`);
  for (const id of [entry.uid, entry.gid]) {
    if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) {
      throw new Error(`ISO entry ${displayPath(path)} has an invalid uid or gid; pass an integer from 0 to 4294967295`);
    }
  }
  if (entry.type === 'file' && !(Number.isSafeInteger(entry.size) && entry.size >= 0)) {
    throw new Error(`ISO entry ${displayPath(path)} has an invalid size; pass a non-negative integer byte count`);
  }
  if (entry.type === 'file' && (entry.file === undefined) === (entry.open === undefined)) {
    throw new Error(`ISO entry ${displayPath(path)} needs exactly one of file (a path to read) and open (a stream)`);
  }
  if (entry.type === 'symlink') {
    const length = encodeFsName(entry.target).length;
    if (length === 0 || length > ISO_SYMLINK_TARGET_MAX || entry.target.includes('\0')) {
      throw new Error(`ISO symlink ${displayPath(path)} has an empty, over-long (> ${ISO_SYMLINK_TARGET_MAX} bytes) or NUL-containing target; fix the target`);
    }
  }
}
