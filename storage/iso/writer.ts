// IsoVolumeWriter: lays out an ISO 9660 image (Level 3, Rock Ridge, Joliet) from a
// list of entries before reading any file, then streams it with no temporary copy.
// Layout, in sectors of 2048 bytes (see docs/iso-volume.md):
//   0-15 system area | 16 primary VD | 17 Joliet VD | 18 terminator
//   | path tables: primary L, M, Joliet L, M | primary directories
//   | Rock Ridge continuation areas | Joliet directories | one zero sector
//   | file data in entry order, each file padded to a whole sector.
// Every file's bytes are one contiguous range, including multi-extent files.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { encodeFsName } from '../paths.ts';
import { SECTOR, sectorsFor } from './bytes.ts';
import { jolietDescriptor, primaryDescriptor, terminatorDescriptor } from './descriptors.ts';
import { Hierarchy, SECTION_BYTES, sectionLength, type Extent, type RecordRole } from './hierarchy.ts';
import { jolietIdentifiers, primaryIdentifiers, volumeIdentifiers } from './names.ts';
import {
  S_IFDIR, S_IFLNK, S_IFREG, erEntry, nmEntries, pxEntry, slEntries, spEntry, tfEntry,
  type ContinuationArea,
} from './rockridge.ts';
import { buildTree, type FileNode, type IsoEntry, type SymlinkNode, type Tree, type TreeNode } from './tree.ts';

export { ISO_SYMLINK_TARGET_MAX } from './tree.ts';
export type { IsoDirEntry, IsoEntry, IsoFileEntry, IsoSymlinkEntry } from './tree.ts';

export interface IsoVolumeOptions {
  /** Shown by readers as the volume label; mapped to each descriptor's character set. */
  volumeId: string;
  /** Volume creation time, also the mtime of directories no entry describes; default: the newest entry mtime. */
  createdMs?: number;
}

export interface IsoExtent {
  offset: number;
  length: number;
}

export interface IsoMismatch {
  path: string;
  reason: string;
}

export interface IsoPackResult {
  /** Files whose extent does not hold what the caller scanned: do not trust those extents. */
  mismatched: IsoMismatch[];
  /** Hex SHA-256 of each file's extent as written (zero padding included). */
  fileSha256: Map<string, string>;
}

interface Settle {
  resolve(result: IsoPackResult): void;
  reject(err: Error): void;
}

const SYSTEM_AREA_SECTORS = 16;
const FIRST_DESCRIPTOR_LBA = 16;
const DESCRIPTOR_SECTORS = 3;
const MAX_SECTORS = 0xffffffff;
const ZERO_CHUNK = 1 << 20;

export class IsoVolumeWriter {
  /** Total image bytes. */
  readonly size: number;
  readonly result: Promise<IsoPackResult>;

  readonly #tree: Tree;
  readonly #primary: Hierarchy;
  readonly #joliet: Hierarchy;
  readonly #createdMs: number;
  readonly #volumeId: { primary: string; joliet: string };
  readonly #pathTableLbas: { primaryL: number; primaryM: number; jolietL: number; jolietM: number };
  readonly #zeroLba: number;
  readonly #fileLba = new Map<FileNode, number>();
  readonly #filesByPath = new Map<string, FileNode>();
  readonly #settle: Settle;
  #streamed = false;

  constructor(entries: readonly IsoEntry[], options: IsoVolumeOptions) {
    if (!options.volumeId) throw new Error('ISO volume needs a volumeId; pass a short label');
    this.#createdMs = options.createdMs ?? entries.reduce((newest, e) => Math.max(newest, e.mtimeMs), 0);
    this.#volumeId = volumeIdentifiers(options.volumeId);
    this.#tree = buildTree(entries, this.#createdMs);
    for (const file of this.#tree.files) this.#filesByPath.set(file.path, file);

    this.#primary = new Hierarchy(this.#tree.root, {
      identifiers: primaryIdentifiers,
      encode: (identifier) => Buffer.from(identifier, 'latin1'),
      includesSymlinks: true,
      systemUse: rockRidgeEntries,
    });
    // Joliet has no symlinks; readers that use it (7z, Windows) do not see them.
    this.#joliet = new Hierarchy(this.#tree.root, {
      identifiers: jolietIdentifiers,
      encode: utf16be,
      includesSymlinks: false,
      systemUse: null,
    });

    let lba = FIRST_DESCRIPTOR_LBA + DESCRIPTOR_SECTORS;
    const takeSectors = (bytes: number) => {
      const start = lba;
      lba += sectorsFor(bytes);
      return start;
    };
    this.#pathTableLbas = {
      primaryL: takeSectors(this.#primary.pathTableSize),
      primaryM: takeSectors(this.#primary.pathTableSize),
      jolietL: takeSectors(this.#joliet.pathTableSize),
      jolietM: takeSectors(this.#joliet.pathTableSize),
    };
    lba = this.#primary.placeDirectories(lba);
    lba = placeContinuationAreas(this.#primary.continuationAreas(), lba);
    lba = this.#joliet.placeDirectories(lba);
    // Empty files and symlinks point at a sector of their own rather than at another
    // file's data, so no reader takes them for a view of that file.
    this.#zeroLba = lba++;
    for (const file of this.#tree.files) {
      this.#fileLba.set(file, file.size > 0 ? lba : this.#zeroLba);
      lba += sectorsFor(file.size);
    }
    if (lba > MAX_SECTORS) throw new Error('ISO volume would exceed 8 TiB (2^32 sectors); pack fewer files per volume');
    this.size = lba * SECTOR;

    let settle!: Settle;
    this.result = new Promise<IsoPackResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.#settle = settle;
    // The stream reports the same failure; a caller watching only the stream must
    // not get an unhandled rejection.
    this.result.catch(() => {});
  }

  /** Where a file's bytes lie in the image: one range, even for multi-extent files. */
  extent(path: string): IsoExtent | undefined {
    const file = this.#filesByPath.get(path);
    if (!file) return undefined;
    return { offset: this.#fileLba.get(file)! * SECTOR, length: file.size };
  }

  /** The image bytes; each file's open() is called once, in layout order. Callable once. */
  stream(): Readable {
    if (this.#streamed) throw new Error('IsoVolumeWriter.stream() was already called; create a new writer to write the image again');
    this.#streamed = true;
    return Readable.from(this.#image(), { objectMode: false });
  }

  async *#image(): AsyncGenerator<Buffer> {
    const mismatched: IsoMismatch[] = [];
    const fileSha256 = new Map<string, string>();
    try {
      yield* this.#metadata();
      for (const file of this.#tree.files) yield* this.#fileData(file, mismatched, fileSha256);
      this.#settle.resolve({ mismatched, fileSha256 });
    } catch (err) {
      this.#settle.reject(err as Error);
      throw err;
    } finally {
      this.#settle.reject(new Error('the ISO image stream was closed before the image was complete; write the volume again'));
    }
  }

  *#metadata(): Generator<Buffer> {
    const leafExtent = (node: FileNode | SymlinkNode, section: number): Extent =>
      node.kind === 'file' && node.size > 0
        ? { lba: this.#fileLba.get(node)! + section * (SECTION_BYTES / SECTOR), length: sectionLength(node.size, section) }
        : { lba: this.#zeroLba, length: 0 };
    const sectors = this.size / SECTOR;
    const lbas = this.#pathTableLbas;

    yield Buffer.alloc(SYSTEM_AREA_SECTORS * SECTOR);
    yield primaryDescriptor({
      volumeSectors: sectors, volumeId: this.#volumeId.primary, pathTableSize: this.#primary.pathTableSize,
      lPathTableLba: lbas.primaryL, mPathTableLba: lbas.primaryM, rootRecord: this.#primary.rootRecord(), createdMs: this.#createdMs,
    });
    yield jolietDescriptor({
      volumeSectors: sectors, volumeId: this.#volumeId.joliet, pathTableSize: this.#joliet.pathTableSize,
      lPathTableLba: lbas.jolietL, mPathTableLba: lbas.jolietM, rootRecord: this.#joliet.rootRecord(), createdMs: this.#createdMs,
    });
    yield terminatorDescriptor();
    for (const hierarchy of [this.#primary, this.#joliet]) {
      for (const bigEndian of [false, true]) yield padToSector(hierarchy.pathTable(bigEndian));
    }
    for (const dir of this.#primary.dirs) yield this.#primary.directoryBytes(dir, leafExtent);
    yield* continuationSectors(this.#primary.continuationAreaContents());
    for (const dir of this.#joliet.dirs) yield this.#joliet.directoryBytes(dir, leafExtent);
    yield Buffer.alloc(SECTOR);
  }

  /**
   * Exactly `size` bytes of the file, then padding to the sector: a file that shrank
   * or could not be read is completed with zeros, one that grew is cut, and either
   * is reported, so the image stays valid whatever happens to the file.
   */
  async *#fileData(file: FileNode, mismatched: IsoMismatch[], fileSha256: Map<string, string>): AsyncGenerator<Buffer> {
    const { entry, size } = file;
    const hash = createHash('sha256');
    let written = 0;
    let problem: string | undefined;
    try {
      for await (const chunk of entry.open()) {
        const bytes: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        const room = size - written;
        const part = bytes.length > room ? bytes.subarray(0, room) : bytes;
        if (part.length > 0) {
          hash.update(part);
          written += part.length;
          yield part;
        }
        if (bytes.length > room) {
          problem = `grew: more than ${size} bytes when packed; only the first ${size} were written`;
          break;
        }
      }
      if (written < size) problem = `shrank: ${written} of ${size} bytes when packed; the rest is zeros`;
    } catch (err) {
      problem = `unreadable after ${written} of ${size} bytes (${(err as Error).message}); the rest is zeros`;
    }
    for (let left = size - written; left > 0; left -= ZERO_CHUNK) {
      const zeros = Buffer.alloc(Math.min(left, ZERO_CHUNK));
      hash.update(zeros);
      yield zeros;
    }
    if (size % SECTOR !== 0) yield Buffer.alloc(SECTOR - (size % SECTOR));

    const sha256 = hash.digest('hex');
    fileSha256.set(file.path, sha256);
    if (!problem && entry.expectedSha256 !== undefined && entry.expectedSha256.toLowerCase() !== sha256) {
      problem = `changed: SHA-256 ${sha256} differs from the scanned ${entry.expectedSha256}`;
    }
    if (problem) mismatched.push({ path: file.path, reason: problem });
  }
}

function rockRidgeEntries(node: TreeNode, role: RecordRole): Buffer[] {
  const isRootSelf = role === 'self' && node.kind === 'dir' && node.parent === null;
  const type = node.kind === 'dir' ? S_IFDIR : node.kind === 'file' ? S_IFREG : S_IFLNK;
  const nlink = node.kind === 'dir' ? 2 + node.children.filter((child) => child.kind === 'dir').length : 1;
  const entries = [
    ...(isRootSelf ? [spEntry()] : []),
    pxEntry({ mode: type | node.mode, nlink, uid: node.uid, gid: node.gid, ino: node.ino }),
    tfEntry(node.mtimeMs),
  ];
  if (role === 'child') entries.push(...nmEntries(encodeFsName(node.name)));
  if (role === 'child' && node.kind === 'symlink') entries.push(...slEntries(node.target));
  if (isRootSelf) entries.push(erEntry());
  return entries;
}

/** Packs areas into sectors from `lba`, none crossing a sector boundary; returns the next free sector. */
function placeContinuationAreas(areas: ContinuationArea[], lba: number): number {
  if (areas.length === 0) return lba;
  let offset = 0;
  for (const area of areas) {
    if (offset + area.length > SECTOR) {
      lba++;
      offset = 0;
    }
    area.lba = lba;
    area.offset = offset;
    offset += area.length;
  }
  return lba + 1;
}

/** The sectors placeContinuationAreas() filled, in order (areas come sorted by place). */
function* continuationSectors(areas: Iterable<{ area: ContinuationArea; bytes: Buffer }>): Generator<Buffer> {
  let sector: Buffer | undefined;
  let sectorLba = -1;
  for (const { area, bytes } of areas) {
    if (!sector || area.lba !== sectorLba) {
      if (sector) yield sector;
      sector = Buffer.alloc(SECTOR);
      sectorLba = area.lba;
    }
    bytes.copy(sector, area.offset);
  }
  if (sector) yield sector;
}

function padToSector(bytes: Buffer): Buffer {
  return Buffer.concat([bytes, Buffer.alloc(sectorsFor(bytes.length) * SECTOR - bytes.length)]);
}

function utf16be(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}
