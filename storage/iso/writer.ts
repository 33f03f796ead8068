// IsoVolumeWriter: lays out an ISO 9660 image (Level 3, Rock Ridge, Joliet) from a
// list of entries before reading any file, then streams it with no temporary copy.
// Layout, in sectors of 2048 bytes (see docs/iso-volume.md):
//   0-15 system area | 16 primary VD | 17 Joliet VD | 18 terminator
//   | path tables: primary L, M, Joliet L, M | primary directories
//   | Rock Ridge continuation areas | Joliet directories | one zero sector
//   | file data in entry order, each file padded to a whole sector.
// Every file's bytes are one contiguous range, including multi-extent files.
import { createHash, hash, type Hash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
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
import { FileReadAhead } from './read-ahead.ts';
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
  /** The image's digest, hex: see IMAGE_DIGEST_DOMAIN. */
  imageDigest: string;
}

/**
 * An image is named by a digest that identifies it as surely as its SHA-256, for
 * half the hashing: SHA-256 over this domain string, the metadata bytes (every
 * sector before the first file), then each file's 32-byte SHA-256 in layout order.
 * The metadata fixes every file's place and size, and zeros pad each extent, so
 * equal digests mean equal images; hashing the image itself again after its files
 * cost as much CPU as the Merkle tree.
 */
const IMAGE_DIGEST_DOMAIN = 'hearth iso image digest v1\n';

interface Settle {
  resolve(result: IsoPackResult): void;
  reject(err: Error): void;
}

const SYSTEM_AREA_SECTORS = 16;
const FIRST_DESCRIPTOR_LBA = 16;
const DESCRIPTOR_SECTORS = 3;
const MAX_SECTORS = 0xffffffff;
/** Chunks of the image as a stream; fill() callers bring their own buffers. */
const STREAM_CHUNK = 64 * 1024;
// O_NOFOLLOW: a path swapped for a symlink after the scan must fail, not be followed.
// O_NONBLOCK: a path swapped for a FIFO must fail fast, not wait for a writer.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

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

  /**
   * The image bytes, as a stream that can also fill() a caller's buffers (the object
   * encoder's PlaintextSource). Each file is read once, in layout order. Callable once.
   */
  stream(options: { onBytes?: (total: number) => void } = {}): IsoImageStream {
    if (this.#streamed) throw new Error('IsoVolumeWriter.stream() was already called; create a new writer to write the image again');
    this.#streamed = true;
    const readAhead = new FileReadAhead(this.#tree.files.map((file) => ({ path: file.entry.file, size: file.size })));
    return new IsoImageStream(new ImageReader(this.#parts(), this.#settle, readAhead, options.onBytes));
  }

  /** The image in order: metadata bytes, then each file's data (read when reached). */
  *#parts(): Generator<Buffer | FileNode> {
    yield* this.#metadata();
    yield* this.#tree.files;
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
}

/** The image as a stream; fill() writes into a caller's buffer instead (no chunk buffers). */
export class IsoImageStream extends Readable {
  readonly #reader: ImageReader;

  constructor(reader: ImageReader) {
    super({ highWaterMark: STREAM_CHUNK });
    this.#reader = reader;
  }

  /** Writes the next image bytes into `target`; fewer than its length only at the end. Use this or the stream, not both. */
  fill(target: Uint8Array): Promise<number> {
    return this.#reader.fill(target);
  }

  /** Names the image in place of its SHA-256 (IMAGE_DIGEST_DOMAIN); known once the image was read. */
  digest(): string {
    return this.#reader.digest();
  }

  override _read(): void {
    const chunk = Buffer.allocUnsafe(STREAM_CHUNK);
    this.#reader.fill(chunk).then(
      (n) => {
        if (n > 0) this.push(chunk.subarray(0, n));
        if (n < chunk.length) this.push(null);
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#reader.close();
    callback(err);
  }
}

/** Produces the image bytes from its parts into whatever buffer it is given. */
class ImageReader {
  readonly #parts: Iterator<Buffer | FileNode>;
  readonly #settle: Settle;
  readonly #mismatched: IsoMismatch[] = [];
  readonly #fileSha256 = new Map<string, string>();
  readonly #imageHash = createHash('sha256').update(IMAGE_DIGEST_DOMAIN);
  #imageDigest: string | undefined;
  #bytes: Buffer | undefined;
  #bytesAt = 0;
  #file: FileData | undefined;
  #finished = false;
  readonly #readAhead: FileReadAhead;
  #fileIndex = 0;
  readonly #onBytes: ((total: number) => void) | undefined;
  #total = 0;

  constructor(parts: Iterator<Buffer | FileNode>, settle: Settle, readAhead: FileReadAhead, onBytes: ((total: number) => void) | undefined) {
    this.#parts = parts;
    this.#settle = settle;
    this.#readAhead = readAhead;
    this.#onBytes = onBytes;
  }

  async fill(target: Uint8Array): Promise<number> {
    let at = 0;
    try {
      while (at < target.length && !this.#finished) {
        if (this.#bytes) {
          const n = Math.min(this.#bytes.length - this.#bytesAt, target.length - at);
          target.set(this.#bytes.subarray(this.#bytesAt, this.#bytesAt + n), at);
          at += n;
          this.#bytesAt += n;
          if (this.#bytesAt === this.#bytes.length) this.#bytes = undefined;
        } else if (this.#file) {
          at += await this.#file.read(target, at);
          if (this.#file.done) {
            this.#fileSha256.set(this.#file.node.path, this.#file.sha256!);
            this.#imageHash.update(Buffer.from(this.#file.sha256!, 'hex'));
            if (this.#file.problem) this.#mismatched.push({ path: this.#file.node.path, reason: this.#file.problem });
            this.#file = undefined;
          }
        } else {
          const next = this.#parts.next();
          if (next.done) {
            this.#finished = true;
            this.#readAhead.close();
            this.#imageDigest = this.#imageHash.digest('hex');
            this.#settle.resolve({ mismatched: this.#mismatched, fileSha256: this.#fileSha256, imageDigest: this.#imageDigest });
          } else if (Buffer.isBuffer(next.value)) {
            this.#bytes = next.value;
            this.#imageHash.update(next.value);
            this.#bytesAt = 0;
          } else {
            this.#file = new FileData(next.value);
            this.#readAhead.reached(this.#fileIndex++);
          }
        }
      }
    } catch (err) {
      this.close(err as Error);
      throw err;
    }
    this.#total += at;
    this.#onBytes?.(this.#total);
    return at;
  }

  /** The image digest (IMAGE_DIGEST_DOMAIN), once every byte was filled. */
  digest(): string {
    if (this.#imageDigest === undefined) throw new Error('the ISO image digest is known only once the whole image was read');
    return this.#imageDigest;
  }

  /** Stops early: the result fails unless the image was complete. */
  close(err?: Error): void {
    this.#readAhead.close();
    this.#file?.close();
    this.#file = undefined;
    if (!this.#finished) this.#settle.reject(err ?? new Error('the ISO image stream was closed before the image was complete; write the volume again'));
  }
}

/**
 * One file's extent: exactly `size` bytes of the file, then zeros to the sector
 * boundary. A file that shrank or could not be read is completed with zeros, one
 * that grew is cut, and either is reported (`problem`), so the image stays valid
 * whatever happens to the file. A file given by path is read with synchronous reads
 * straight into the target: a stream per file cost ~0.3 ms, more than a small file.
 */
class FileData {
  readonly node: FileNode;
  problem: string | undefined;
  sha256: string | undefined;
  done = false;
  // Created only for a file that takes more than one piece: a file read whole at once
  // is hashed one-shot, cheaper for small files (230 vs 275 ms per 100,000 x 4 KiB)
  // and with no native hash state left for the GC to find.
  #hash: Hash | undefined;
  #written = 0;
  #padded = 0;
  #reading = true;
  #fd: number | undefined;
  #chunks: AsyncIterator<Buffer | Uint8Array> | undefined;
  #rest: Uint8Array | undefined;

  constructor(node: FileNode) {
    this.node = node;
  }

  /** Writes the next bytes of the extent into `target` from `at`; returns how many. */
  async read(target: Uint8Array, at: number): Promise<number> {
    const { size } = this.node;
    const room = target.length - at;
    if (this.#reading) {
      let n = 0;
      try {
        n = this.#written < size || this.#fd === undefined ? await this.#readSome(target, at, Math.min(room, size - this.#written)) : 0;
      } catch (err) {
        this.#stopReading(`unreadable after ${this.#written} of ${size} bytes (${(err as Error).message}); the rest is zeros`);
      }
      if (n > 0) {
        this.#update(target.subarray(at, at + n));
        this.#written += n;
        return n;
      }
      if (this.#reading) {
        let problem: string | undefined;
        try {
          problem = this.#endProblem();
        } catch (err) {
          problem = `unreadable at its end (${(err as Error).message}); it will be read again`;
        }
        this.#stopReading(problem);
      }
    }
    if (this.#written < size) {
      const n = Math.min(room, size - this.#written);
      target.fill(0, at, at + n);
      this.#update(target.subarray(at, at + n));
      this.#written += n;
      return n;
    }
    const padding = (SECTOR - (size % SECTOR)) % SECTOR;
    const n = Math.min(room, padding - this.#padded);
    target.fill(0, at, at + n);
    this.#padded += n;
    if (this.#padded === padding) this.#finish();
    return n;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    void this.#chunks?.return?.();
    this.#chunks = undefined;
  }

  async #readSome(target: Uint8Array, at: number, want: number): Promise<number> {
    const { entry } = this.node;
    if (entry.file !== undefined) {
      this.#fd ??= openSync(entry.file, OPEN_FLAGS);
      return want > 0 ? readSync(this.#fd, target, at, want, this.#written) : 0;
    }
    this.#chunks ??= entry.open!()[Symbol.asyncIterator]() as AsyncIterator<Buffer | Uint8Array>;
    let chunk = this.#rest;
    this.#rest = undefined;
    while (!chunk?.length) {
      const next = await this.#chunks.next();
      if (next.done) return 0;
      chunk = next.value;
    }
    if (chunk.length > want) {
      // Bytes beyond the file's size mean it grew; within it, they wait for the next fill.
      if (this.#written + want === this.node.size) this.#stopReading(`grew: more than ${this.node.size} bytes when packed; only the first ${this.node.size} were written`);
      else this.#rest = chunk.subarray(want);
      chunk = chunk.subarray(0, want);
    }
    target.set(chunk, at);
    return chunk.length;
  }

  /** Why reading ended where it did, if that is a problem. */
  #endProblem(): string | undefined {
    const { size, entry } = this.node;
    if (this.#written < size) return `shrank: ${this.#written} of ${size} bytes when packed; the rest is zeros`;
    if (this.#fd === undefined) return undefined;
    const after = fstatSync(this.#fd);
    if (after.size > size) return `grew: more than ${size} bytes when packed; only the first ${size} were written`;
    const scanned = entry.scanned;
    if (after.size < size || (scanned && (after.mtimeMs !== scanned.mtimeMs || after.ctimeMs !== scanned.ctimeMs || after.ino !== scanned.ino))) {
      return 'changed while it was being packed';
    }
    return undefined;
  }

  #stopReading(problem: string | undefined): void {
    this.#reading = false;
    this.problem ??= problem;
    this.close();
  }

  /** Hashes the extent's next bytes; a first piece that is the whole extent is hashed one-shot. */
  #update(bytes: Uint8Array): void {
    if (this.#written === 0 && bytes.length === this.node.size) this.sha256 = hash('sha256', bytes, 'hex');
    else (this.#hash ??= createHash('sha256')).update(bytes);
  }

  #finish(): void {
    this.done = true;
    this.sha256 ??= this.#hash ? this.#hash.digest('hex') : hash('sha256', '', 'hex');
    const expected = this.node.entry.expectedSha256;
    if (!this.problem && expected !== undefined && expected.toLowerCase() !== this.sha256) {
      this.problem = `changed: SHA-256 ${this.sha256} differs from the scanned ${expected}`;
    }
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
