// Writing big files past the page cache. On this machine's VM, writing 2.6 GB
// through the page cache and syncing it cost 3.8-6.5 CPU-seconds of kernel time
// (copying into pages the kernel first has to obtain, then writing them back), and
// the same bytes written with O_DIRECT 0.2. Direct writes need page-aligned memory,
// and whole 4 KiB blocks at aligned file offsets; whatever is not (a file's last
// partial block) goes through the page cache, on a second descriptor of the same file.
import { closeSync, constants, fdatasync, ftruncate, open, openSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';

/** Alignment of direct writes (offsets, lengths, memory): the largest logical block size in use. */
export const DIRECT_BLOCK = 4096;

const WASM_PAGE = 64 * 1024;
// A WebAssembly memory starts on a page boundary, unlike a Buffer from malloc. The
// global is typed only in TypeScript's DOM library.
const { Memory: WasmMemory } = (globalThis as unknown as { WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

/** Page-aligned memory of at least `bytes` (a whole number of 64 KiB pages). */
export function alignedBuffer(bytes: number): Buffer {
  const pages = Math.ceil(bytes / WASM_PAGE);
  return Buffer.from(new WasmMemory({ initial: pages, maximum: pages }).buffer);
}

/** The file opened again for direct writes, or undefined where the file system has none (tmpfs). */
export function openDirect(path: string | Buffer): number | undefined {
  if (constants.O_DIRECT === undefined) return undefined;
  try {
    return openSync(path, constants.O_WRONLY | constants.O_DIRECT);
  } catch {
    return undefined;
  }
}

const writeAsync = promisify(write);
const fdatasyncAsync = promisify(fdatasync);
const ftruncateAsync = promisify(ftruncate);

const ZERO_BLOCK = Buffer.alloc(DIRECT_BLOCK);

/** Bytes from `at` up to the first block of the other kind (all zeros or not) than the one at `at`. */
function sameKindRun(bytes: Buffer, at: number, zeros: boolean): number {
  let end = at;
  while (end < bytes.length) {
    const block = bytes.subarray(end, Math.min(end + DIRECT_BLOCK, bytes.length));
    if (block.equals(ZERO_BLOCK.subarray(0, block.length)) !== zeros) break;
    end += block.length;
  }
  return end - at;
}

/** Bytes staged before a direct write; two stages, so one fills while the other is written. */
const STAGE_BYTES = 1024 * 1024;

/**
 * Stages of finished streams, for the next: a fresh WebAssembly memory is zeroed,
 * page-faulted memory that the GC reclaims late, which made restoring 1,020 files
 * ~20% slower in CPU than buffered writes. Streams at once beyond the pool allocate.
 */
const spareStages: Buffer[] = [];
const SPARE_STAGES = 8;

/**
 * A new file written mostly with direct I/O, then synced unless told otherwise: when
 * it has finished, its bytes are on the disk. Writes are asynchronous (libuv's
 * threads); a chunk is copied into a stage and taken at once unless both stages are
 * full. A file system that refuses direct writes gets the rest through the page cache.
 */
export class DirectWriteStream extends Writable {
  readonly path: string | Buffer;
  readonly #sync: boolean;
  readonly #sparse: boolean;
  readonly #flags: 'w' | 'wx';
  /** Whether the file's last bytes were left as a hole, so its size must be set at the end. */
  #endsInHole = false;
  #fd: number | undefined;
  /** Opened at the first full stage, so small files cost one descriptor. */
  #directFd: number | undefined;
  #direct = true;
  #stages: [Buffer, Buffer] | undefined;
  #current = 0;
  #staged = 0;
  #position = 0;
  #writing: Promise<void> = Promise.resolve();
  #destroying = false;

  /**
   * `flags` as for fs.open: 'w' (default) or 'wx'. `sync: false` skips the final
   * fdatasync, for files whose loss in a crash costs only writing them again (restores).
   * `sparse: true` writes no block (4 KiB, at a 4 KiB offset) that is all zeros: the
   * file gets a hole there, so a sparse file restored stays sparse.
   */
  constructor(path: string | Buffer, options: { flags?: 'w' | 'wx'; sync?: boolean; sparse?: boolean } = {}) {
    super({ highWaterMark: STAGE_BYTES });
    this.path = path;
    this.#sync = options.sync ?? true;
    this.#sparse = options.sparse ?? false;
    this.#flags = options.flags ?? 'w';
  }

  // Opened on libuv's threads: creating a file costs ~0.3 ms here, which a restore
  // of many small files paid on its one busy thread.
  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, this.#flags, (err, fd) => {
      this.#fd = fd;
      callback(err);
    });
  }

  /** Bytes handed to the file so far (staged bytes not included). */
  get bytesWritten(): number {
    return this.#position;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#append(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const finishing = this.#writing.then(() => this.#finish());
    this.#track(finishing);
    finishing.then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A write in flight still owns the descriptors and a stage, and an append under
    // way may start one more: close them once the last has settled, or a descriptor
    // number reused meanwhile would receive its bytes.
    this.#destroying = true;
    void (async () => {
      for (let writing; writing !== this.#writing; ) {
        writing = this.#writing;
        await writing.catch(() => {});
      }
      this.#close();
      callback(error);
    })();
  }

  /** The write from now on in flight; its failure is met by the next append, finish or destroy, not left unhandled. */
  #track(writing: Promise<void>): void {
    this.#writing = writing;
    writing.catch(() => {});
  }

  /** Before each write: a destroyed stream starts none. */
  #checkAlive(): void {
    if (this.#destroying) throw new Error(`${String(this.path)}: the stream was destroyed`);
  }

  async #append(chunk: Buffer): Promise<void> {
    for (let taken = 0; taken < chunk.length; ) {
      const stages = (this.#stages ??= [spareStages.pop() ?? alignedBuffer(STAGE_BYTES), spareStages.pop() ?? alignedBuffer(STAGE_BYTES)]);
      const copied = chunk.copy(stages[this.#current]!, this.#staged, taken);
      taken += copied;
      this.#staged += copied;
      if (this.#staged === STAGE_BYTES) {
        // At most one write in flight: wait for it before handing over the next stage.
        await this.#writing;
        this.#checkAlive();
        this.#track(this.#writeStage(stages[this.#current]!, STAGE_BYTES));
        this.#current ^= 1;
        this.#staged = 0;
      }
    }
  }

  /** Runs once every stage write has settled. */
  async #finish(): Promise<void> {
    this.#checkAlive();
    if (this.#stages && this.#staged > 0) {
      const stage = this.#stages[this.#current]!;
      // A file that never filled a stage is written whole through the page cache: a
      // second descriptor for a few blocks costs more than their copy.
      const blocks = this.#directFd === undefined ? 0 : Math.floor(this.#staged / DIRECT_BLOCK) * DIRECT_BLOCK;
      if (blocks > 0) await this.#writeStage(stage, blocks);
      await this.#writeAll(this.#fd!, stage.subarray(blocks, this.#staged));
      this.#staged = 0;
    }
    if (this.#endsInHole) await ftruncateAsync(this.#fd!, this.#position);
    if (this.#sync) await fdatasyncAsync(this.#fd!);
    this.#close();
  }

  /** Writes stage[0, length) (whole blocks) at the current position, directly while allowed. */
  async #writeStage(stage: Buffer, length: number): Promise<void> {
    if (this.#direct && this.#directFd === undefined) {
      this.#directFd = openDirect(this.path);
      this.#direct = this.#directFd !== undefined;
    }
    const start = this.#position;
    if (this.#direct) {
      try {
        await this.#writeAll(this.#directFd!, stage.subarray(0, length));
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
        // Opened, but the file system refuses direct writes: the page cache from here on.
        this.#direct = false;
      }
    }
    await this.#writeAll(this.#fd!, stage.subarray(this.#position - start, length));
  }

  /** Writes `bytes` at the current position; when sparse, its zero blocks are skipped, not written. */
  async #writeAll(fd: number, bytes: Buffer): Promise<void> {
    if (!this.#sparse) return this.#writeDense(fd, bytes);
    for (let at = 0; at < bytes.length; ) {
      const zeros = sameKindRun(bytes, at, true);
      if (zeros > 0) {
        this.#position += zeros;
        this.#endsInHole = true;
        at += zeros;
      } else {
        const data = sameKindRun(bytes, at, false);
        await this.#writeDense(fd, bytes.subarray(at, at + data));
        this.#endsInHole = false;
        at += data;
      }
    }
  }

  async #writeDense(fd: number, bytes: Buffer): Promise<void> {
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await writeAsync(fd, bytes, done, bytes.length - done, this.#position);
      done += bytesWritten;
      this.#position += bytesWritten;
    }
  }

  #close(): void {
    for (const fd of [this.#directFd, this.#fd]) if (fd !== undefined) closeSync(fd);
    this.#directFd = this.#fd = undefined;
    for (const stage of this.#stages ?? []) if (spareStages.length < SPARE_STAGES) spareStages.push(stage);
    this.#stages = undefined;
  }
}
