// One directory hierarchy of the volume (the primary one with Rock Ridge, or the
// Joliet one): directory records, their packing into sectors, the directories'
// path-table order and the path tables themselves. Both hierarchies share the tree
// and the file extents; they differ in identifiers and System Use entries.
import { SECTOR, sectorsFor, shortDate, writeBoth16, writeBoth32 } from './bytes.ts';
import { compareIdentifiers, type ChildName } from './names.ts';
import { continuationAreaBytes, splitSystemUse, systemUseField, type ContinuationArea, type SystemUseSplit } from './rockridge.ts';
import type { DirNode, FileNode, SymlinkNode, TreeNode } from './tree.ts';

/** A data length field holds at most 2^32 - 1; a file this size still fits one extent. */
const SINGLE_EXTENT_MAX = 0xffffffff;
/** Multi-extent parts: the largest sector multiple below 4 GiB, so parts abut. */
export const SECTION_BYTES = 0xfffff800;

export function sectionCount(size: number): number {
  return size <= SINGLE_EXTENT_MAX ? 1 : Math.ceil(size / SECTION_BYTES);
}

export function sectionLength(size: number, section: number): number {
  const count = sectionCount(size);
  if (count === 1) return size;
  return section < count - 1 ? SECTION_BYTES : size - SECTION_BYTES * (count - 1);
}

// ECMA-119 9.1: a record's length is one byte and must be even.
const RECORD_MAX = 254;
const RECORD_FIXED = 33;
const FLAG_DIRECTORY = 0x02;
const FLAG_MULTI_EXTENT = 0x80;
const MAX_DIRECTORIES = 0xffff;

export type RecordRole = 'self' | 'parent' | 'child';

// Records keep no bytes: a volume may list hundreds of thousands of files, so
// identifiers and System Use entries are encoded again when the image is written.
interface DirRecord {
  /** For children only; "." and ".." are the bytes 0x00 and 0x01. */
  identifier: string;
  /** The directory itself for "." and its parent for "..". */
  node: TreeNode;
  role: RecordRole;
  section: number;
  length: number;
  /** Set when some System Use entries live in Continuation Areas. */
  split: SystemUseSplit | null;
}

export interface HierarchyDir {
  node: DirNode;
  /** Path-table identifier (0x00 for the root). */
  identifier: Buffer;
  /** 1-based position in the path table. */
  number: number;
  parentNumber: number;
  records: DirRecord[];
  recordOffsets: number[];
  /** Bytes, a whole number of sectors. */
  size: number;
  lba: number;
}

export interface Extent {
  lba: number;
  length: number;
}

export interface HierarchyRules {
  identifiers(children: readonly ChildName[]): string[];
  encode(identifier: string): Buffer;
  includesSymlinks: boolean;
  /** System Use entries of a record, or null for a hierarchy without SUSP. */
  systemUse: ((node: TreeNode, role: RecordRole) => Buffer[]) | null;
}

export class Hierarchy {
  /** Directories in path-table order: by depth, then parent, then identifier. */
  readonly dirs: HierarchyDir[] = [];
  readonly pathTableSize: number;
  private readonly byNode = new Map<DirNode, HierarchyDir>();
  private readonly rules: HierarchyRules;

  constructor(root: DirNode, rules: HierarchyRules) {
    this.rules = rules;
    this.addDir(root, Buffer.from([0]), 1);
    // dirs grows while it is walked: appending each directory's subdirectories in
    // identifier order yields the path-table order.
    for (let i = 0; i < this.dirs.length; i++) {
      const dir = this.dirs[i]!;
      const children = dir.node.children.filter((child) => rules.includesSymlinks || child.kind !== 'symlink');
      const identifiers = rules.identifiers(children.map((child) => ({ name: child.name, isDir: child.kind === 'dir' })));
      const sorted = children
        .map((node, k) => ({ node, identifier: identifiers[k]! }))
        .sort((a, b) => compareIdentifiers(a.identifier, b.identifier));

      const record = (identifier: string, node: TreeNode, role: RecordRole, section: number): DirRecord => {
        const fixed = systemUseOffset(this.identifierBytes(role, identifier));
        const entries = rules.systemUse ? rules.systemUse(node, role) : [];
        const split = splitSystemUse(entries, RECORD_MAX - fixed);
        const length = fixed + (split ? split.inRecordLength : entries.reduce((sum, entry) => sum + entry.length, 0));
        return { identifier, node, role, section, length: length + (length % 2), split };
      };
      dir.records.push(record('', dir.node, 'self', 0));
      dir.records.push(record('', dir.node.parent ?? dir.node, 'parent', 0));
      for (const { node, identifier } of sorted) {
        const sections = node.kind === 'file' ? sectionCount(node.size) : 1;
        for (let section = 0; section < sections; section++) dir.records.push(record(identifier, node, 'child', section));
        if (node.kind === 'dir') this.addDir(node, rules.encode(identifier), dir.number);
      }
      packRecords(dir);
    }
    if (this.dirs.length > MAX_DIRECTORIES) {
      throw new Error(`ISO volume has ${this.dirs.length} directories, more than the path table can number (${MAX_DIRECTORIES}); split the files over more volumes`);
    }
    this.pathTableSize = this.dirs.reduce((sum, dir) => sum + pathTableRecordLength(dir.identifier), 0);
  }

  private addDir(node: DirNode, identifier: Buffer, parentNumber: number): void {
    const dir: HierarchyDir = {
      node, identifier, number: this.dirs.length + 1, parentNumber, records: [], recordOffsets: [], size: 0, lba: 0,
    };
    this.dirs.push(dir);
    this.byNode.set(node, dir);
  }

  /** Gives the directory extents consecutive sectors from `lba`; returns the next free sector. */
  placeDirectories(lba: number): number {
    for (const dir of this.dirs) {
      dir.lba = lba;
      lba += dir.size / SECTOR;
    }
    return lba;
  }

  /** Continuation Areas in the order the directory records refer to them. */
  continuationAreas(): ContinuationArea[] {
    return this.dirs.flatMap((dir) => dir.records.flatMap((record) => (record.split ? [record.split.area] : [])));
  }

  /** Each Continuation Area with its bytes, in the order of continuationAreas(). */
  *continuationAreaContents(): Generator<{ area: ContinuationArea; bytes: Buffer }> {
    for (const dir of this.dirs) {
      for (const record of dir.records) {
        if (!record.split) continue;
        const entries = this.rules.systemUse!(record.node, record.role);
        yield { area: record.split.area, bytes: continuationAreaBytes(entries, record.split) };
      }
    }
  }

  /** ECMA-119 9.4: the L (little-endian) or M (big-endian) path table. */
  pathTable(bigEndian: boolean): Buffer {
    const table = Buffer.alloc(this.pathTableSize);
    let at = 0;
    for (const dir of this.dirs) {
      table[at] = dir.identifier.length;
      if (bigEndian) {
        table.writeUInt32BE(dir.lba, at + 2);
        table.writeUInt16BE(dir.parentNumber, at + 6);
      } else {
        table.writeUInt32LE(dir.lba, at + 2);
        table.writeUInt16LE(dir.parentNumber, at + 6);
      }
      dir.identifier.copy(table, at + 8);
      at += pathTableRecordLength(dir.identifier);
    }
    return table;
  }

  /** The root's record as a volume descriptor carries it: 34 bytes, no System Use. */
  rootRecord(): Buffer {
    const bytes = Buffer.alloc(34);
    const record: DirRecord = { identifier: '', node: this.dirs[0]!.node, role: 'self', section: 0, length: 34, split: null };
    this.writeRecord(bytes, 0, record, [], () => ({ lba: 0, length: 0 }));
    return bytes;
  }

  /** A directory's extent; `leafExtent` says where files' and symlinks' data lie. */
  directoryBytes(dir: HierarchyDir, leafExtent: (node: FileNode | SymlinkNode, section: number) => Extent): Buffer {
    const bytes = Buffer.alloc(dir.size);
    dir.records.forEach((record, i) => {
      const entries = this.rules.systemUse ? this.rules.systemUse(record.node, record.role) : [];
      this.writeRecord(bytes, dir.recordOffsets[i]!, record, entries, leafExtent);
    });
    return bytes;
  }

  private identifierBytes(role: RecordRole, identifier: string): Buffer {
    return role === 'child' ? this.rules.encode(identifier) : Buffer.from([role === 'self' ? 0 : 1]);
  }

  private writeRecord(
    bytes: Buffer,
    at: number,
    record: DirRecord,
    entries: readonly Buffer[],
    leafExtent: (node: FileNode | SymlinkNode, section: number) => Extent,
  ): void {
    const { node } = record;
    const identifier = this.identifierBytes(record.role, record.identifier);
    let extent: Extent;
    let flags = 0;
    if (node.kind === 'dir') {
      const dir = this.byNode.get(node)!;
      extent = { lba: dir.lba, length: dir.size };
      flags = FLAG_DIRECTORY;
    } else {
      extent = leafExtent(node, record.section);
      if (node.kind === 'file' && record.section < sectionCount(node.size) - 1) flags = FLAG_MULTI_EXTENT;
    }
    bytes[at] = record.length;
    writeBoth32(bytes, at + 2, extent.lba);
    writeBoth32(bytes, at + 10, extent.length);
    shortDate(node.mtimeMs).copy(bytes, at + 18);
    bytes[at + 25] = flags;
    writeBoth16(bytes, at + 28, 1);
    bytes[at + 32] = identifier.length;
    identifier.copy(bytes, at + 33);
    systemUseField(entries, record.split).copy(bytes, at + systemUseOffset(identifier));
  }
}

/** Records may not cross a sector boundary (ECMA-119 6.8.1.1); a record that would starts the next sector. */
function packRecords(dir: HierarchyDir): void {
  let offset = 0;
  for (const record of dir.records) {
    if ((offset % SECTOR) + record.length > SECTOR) offset = sectorsFor(offset) * SECTOR;
    dir.recordOffsets.push(offset);
    offset += record.length;
  }
  dir.size = sectorsFor(offset) * SECTOR;
}

/** The identifier is followed by a padding byte when its length is even (ECMA-119 9.1.12). */
function systemUseOffset(identifier: Buffer): number {
  return RECORD_FIXED + identifier.length + (identifier.length % 2 === 0 ? 1 : 0);
}

function pathTableRecordLength(identifier: Buffer): number {
  return 8 + identifier.length + (identifier.length % 2);
}
