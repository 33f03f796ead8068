// The image reader reads each file with synchronous reads, which is cheapest per
// byte, but the kernel's readahead follows one file and stops at its end: every
// new file of a cold photo set began with a wait for the disk, ~1.7 s of 6 for
// 1,020 files, while the encoder's workers ran dry. FileReadAhead reads the next
// files asynchronously (on libuv's threads) a bounded distance ahead of the reader,
// so the reader finds them in the page cache. The bytes it reads are thrown away;
// a read that fails is left for the reader to meet and report.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** Files smaller than this are not read ahead: opening them costs more than their wait. */
const MIN_FILE_BYTES = 256 * 1024;
const CHUNK_BYTES = 1024 * 1024;

export class FileReadAhead {
  /** Each file's path (undefined: not a file on disk) and size, in the order the reader takes them. */
  readonly #files: readonly { path: string | Buffer | undefined; size: number }[];
  /** starts[i]: bytes of the files before file i. */
  readonly #starts: number[];
  readonly #aheadBytes: number;
  #reader = 0;
  #next = 0;
  #running = false;
  #closed = false;
  #scratch: Buffer | undefined;

  constructor(files: readonly { path: string | Buffer | undefined; size: number }[], aheadBytes = 32 * 1024 * 1024) {
    this.#files = files;
    this.#aheadBytes = aheadBytes;
    let at = 0;
    this.#starts = files.map((file) => {
      const start = at;
      at += file.size;
      return start;
    });
  }

  /** The reader starts file `index`: keep up to aheadBytes beyond it read. */
  reached(index: number): void {
    this.#reader = index;
    // Behind the reader, read-ahead skips to the file after the reader's.
    this.#next = Math.max(this.#next, index + 1);
    if (this.#running || this.#closed) return;
    this.#running = true;
    void this.#loop().finally(() => (this.#running = false));
  }

  close(): void {
    this.#closed = true;
  }

  async #loop(): Promise<void> {
    while (!this.#closed && this.#next < this.#files.length && this.#starts[this.#next]! - this.#starts[this.#reader]! < this.#aheadBytes) {
      const file = this.#files[this.#next++]!;
      if (file.path !== undefined && file.size >= MIN_FILE_BYTES) await this.#read(file.path, file.size);
    }
  }

  async #read(path: string | Buffer, size: number): Promise<void> {
    const scratch = (this.#scratch ??= Buffer.allocUnsafe(CHUNK_BYTES));
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
    if (!handle) return;
    try {
      for (let at = 0; at < size && !this.#closed; ) {
        const { bytesRead } = await handle.read(scratch, 0, Math.min(CHUNK_BYTES, size - at), at);
        if (bytesRead === 0) break;
        at += bytesRead;
      }
    } catch {
      // The reader meets the same failure and reports it.
    } finally {
      await handle.close().catch(() => {});
    }
  }
}
