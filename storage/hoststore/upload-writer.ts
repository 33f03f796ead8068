// Storing an upload as it arrives, in a worker thread (upload-writer-worker.ts): the
// thread running libp2p copies the received bytes into 1 MiB slabs and hands each
// full slab to the worker (moved, not copied), which hashes it into the object's
// SHA-256 and Merkle index, writes it to the partial file and hands it back. The
// libp2p thread then keeps no received buffer past the batch it is given and does
// no disk I/O: SHA-256, the Merkle index and the writes cost as much CPU as
// everything else a put does there (Noise, Yamux), so there they would halve what
// one core can receive (measured: docs/object-protocol.md, Throughput).
// Slabs are ordinary memory: copying into memory shared with a worker (a
// SharedArrayBuffer) ran at ~4 GB/s against ~50 GB/s, 14% of the libp2p thread.
// One worker serves every upload in the process; it is unreferenced while idle, so
// it never keeps the process alive, and stops after a while without uploads.
import { Worker } from 'node:worker_threads';
import { workerStartOptions } from '../objects/worker-options.ts';
import type { ObjectIdentity } from './merkle-index-file.ts';

export type WriterRequest =
  /**
   * Start a job on the file at `path`, which holds `offset` bytes of the object
   * already; with `hashOnly`, hash the file as it is. With `indexPath`, write the
   * object's Merkle index there (merkle-index-file.ts), synced by finish.
   */
  | { kind: 'open'; job: number; path: string; size: number; leafSize: number; offset: number; hashOnly: boolean; indexPath?: string }
  /** The next `length` object bytes, at the start of `slab`, which the worker hands back. */
  | { kind: 'data'; job: number; slab: ArrayBuffer; length: number }
  /** Every byte was sent: write the rest, sync, answer the digests. */
  | { kind: 'finish'; job: number }
  /** Write what arrived, sync and close, keeping the partial for a resume. */
  | { kind: 'abandon'; job: number };

/** Each reply says which request it answers; a failed request is answered with its error. */
export type WriterReply =
  | { job: number; to: 'data'; slab: ArrayBuffer }
  | { job: number; to: 'finish'; root: string; identity: ObjectIdentity }
  | { job: number; to: 'abandon' }
  | { job: number; to: WriterRequest['kind']; error: JobFailure; slab?: ArrayBuffer };

/** A failed request: its message, and the errno code (ENOSPC...) when the file system refused. */
export interface JobFailure {
  message: string;
  code?: string;
}

/** What the host computed from an upload's bytes. */
export interface UploadDigests {
  /** Merkle root (hex) with the job's leaf size. */
  root: string;
  /** The file as synced (size, inode, mtime): what its index, if one was written, is keyed to. */
  identity: ObjectIdentity;
}

const WORKER_URL = new URL('./upload-writer-worker.ts', import.meta.url);
// The worker costs the process 17-30 MB of RSS (its own heap; the upper figure
// until Node's compile cache holds its modules), so it goes when no upload needed
// it for this long.
const IDLE_STOP_MS = 30_000;
export const SLAB_BYTES = 1024 * 1024;
/** Slabs per upload: the worker stores one while the next ones fill. */
const SLABS = 4;

interface JobListener {
  reply(reply: WriterReply): void;
  /** The worker itself failed: no reply will come. */
  fail(err: Error): void;
}

/** The worker and the jobs listening to it; referenced only while some job uses it. */
class WriterWorker {
  readonly #worker = new Worker(WORKER_URL, workerStartOptions());
  readonly #listeners = new Map<number, JobListener>();
  #failure: Error | undefined;
  #holds = 0;
  #idle: NodeJS.Timeout | undefined;

  constructor() {
    this.#worker.unref();
    this.#worker.on('message', (reply: WriterReply) => this.#listeners.get(reply.job)?.reply(reply));
    const fail = (err: Error): void => {
      this.#failure ??= new Error(`the upload worker stopped: ${err.message}`);
      for (const listener of this.#listeners.values()) listener.fail(this.#failure);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  }

  /** False once it failed or stopped after being idle: the next upload starts another. */
  get usable(): boolean {
    return this.#failure === undefined;
  }

  attach(job: number, listener: JobListener): void {
    clearTimeout(this.#idle);
    this.#listeners.set(job, listener);
    if (this.#holds++ === 0) this.#worker.ref();
  }

  detach(job: number): void {
    if (!this.#listeners.delete(job)) return;
    if (--this.#holds > 0) return;
    this.#worker.unref();
    this.#idle = setTimeout(() => {
      this.#failure = new Error('stopped after being idle');
      void this.#worker.terminate();
    }, IDLE_STOP_MS);
    this.#idle.unref();
  }

  send(request: WriterRequest, transfer?: ArrayBuffer[]): void {
    if (this.#failure) throw this.#failure;
    this.#worker.postMessage(request, transfer);
  }
}

let shared: WriterWorker | undefined;
let nextJob = 0;

/** One job on the shared worker: its requests, and the replies it waits for. */
class WorkerJob {
  readonly id = nextJob++;
  readonly #worker: WriterWorker;
  /** The first failure; the job is over for the writer once it is set. */
  #error: Error | undefined;
  #workerFailed = false;
  #ending: WriterRequest['kind'] | undefined;
  #last: WriterReply | undefined;
  #wake: (() => void) | undefined;
  /** Slabs the worker handed back. */
  readonly returned: ArrayBuffer[] = [];

  constructor(open: Omit<Extract<WriterRequest, { kind: 'open' }>, 'kind' | 'job'>) {
    if (!shared?.usable) shared = new WriterWorker();
    this.#worker = shared;
    this.#worker.attach(this.id, {
      reply: (reply) => {
        if ('error' in reply) this.#error ??= Object.assign(new Error(`storing the upload failed: ${reply.error.message}`), { code: reply.error.code });
        if ('slab' in reply && reply.slab) this.returned.push(reply.slab);
        if (reply.to === this.#ending) this.#last = reply;
        this.#notify();
      },
      fail: (err) => {
        this.#error ??= err;
        this.#workerFailed = true;
        this.#notify();
      },
    });
    this.#worker.send({ kind: 'open', job: this.id, ...open });
  }

  get error(): Error | undefined {
    return this.#error;
  }

  sendData(slab: ArrayBuffer, length: number): void {
    this.#worker.send({ kind: 'data', job: this.id, slab, length }, [slab]);
  }

  /** Until the worker answers anything; throws once the job failed. */
  async progress(): Promise<void> {
    if (!this.#error) await new Promise<void>((resolve) => (this.#wake = resolve));
    if (this.#error) throw this.#error;
  }

  /** Ask for the job's end and wait for the answer; the worker has let go of the file when it comes. */
  async end(kind: 'finish' | 'abandon'): Promise<WriterReply> {
    this.#ending = kind;
    try {
      if (!this.#workerFailed) this.#worker.send({ kind, job: this.id });
      while (!this.#last && !this.#workerFailed) await new Promise<void>((resolve) => (this.#wake = resolve));
      if (!this.#last || 'error' in this.#last) throw this.#error;
      return this.#last;
    } finally {
      this.#worker.detach(this.id);
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

function digestsOf(reply: WriterReply): UploadDigests {
  if (!('root' in reply)) throw new Error(`the upload worker answered finish with ${JSON.stringify(reply)}`);
  return { root: reply.root, identity: reply.identity };
}

/**
 * The partial file of one upload at `path`, which holds `offset` of the object's
 * `size` bytes already (a resume: the worker hashes them from the file first),
 * and its Merkle index, written at `indexPath` as the bytes arrive.
 * write() the rest in order, then finish() or abandon() (which removes the index).
 */
export class UploadWriter {
  readonly #size: number;
  readonly #job: WorkerJob;
  /** Object bytes received, the kept prefix included. */
  #received: number;
  /** Slabs not yet filled; the others are with the worker. */
  #unused = SLABS;
  /** The slab being filled. */
  #slab: Buffer | undefined;
  #filled = 0;
  #ended = false;

  constructor(path: string, indexPath: string, size: number, leafSize: number, offset: number) {
    this.#size = size;
    this.#received = offset;
    this.#job = new WorkerJob({ path, indexPath, size, leafSize, offset, hashOnly: false });
  }

  /** Copy the bytes into slabs; waits only while every slab is with the worker. */
  async write(chunks: Uint8Array[]): Promise<void> {
    if (this.#ended) throw new Error('the upload writer has ended');
    for (const chunk of chunks) {
      if (this.#received + chunk.byteLength > this.#size) throw new RangeError(`more than the object's ${this.#size} bytes`);
      for (let taken = 0; taken < chunk.byteLength; ) {
        this.#slab ??= await this.#freeSlab();
        const length = Math.min(chunk.byteLength - taken, SLAB_BYTES - this.#filled);
        this.#slab.set(chunk.subarray(taken, taken + length), this.#filled);
        taken += length;
        this.#filled += length;
        this.#received += length;
        if (this.#filled === SLAB_BYTES) this.#hand();
      }
    }
    if (this.#job.error) throw this.#job.error;
  }

  /** Once every byte was written: the digests, with the file synced and closed. */
  async finish(): Promise<UploadDigests> {
    this.#ended = true;
    this.#hand();
    return digestsOf(await this.#job.end('finish'));
  }

  /** Keep what arrived (written, synced, closed) for a resume; no-op after finish(). */
  async abandon(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    if (!this.#job.error) this.#hand();
    await this.#job.end('abandon');
  }

  async #freeSlab(): Promise<Buffer> {
    for (;;) {
      const returned = this.#job.returned.pop();
      if (returned) return Buffer.from(returned);
      if (this.#unused > 0) {
        this.#unused--;
        return Buffer.allocUnsafeSlow(SLAB_BYTES);
      }
      await this.#job.progress();
    }
  }

  /** Give the worker the slab being filled. */
  #hand(): void {
    if (!this.#slab || this.#filled === 0) return;
    this.#job.sendData(this.#slab.buffer as ArrayBuffer, this.#filled);
    this.#slab = undefined;
    this.#filled = 0;
  }
}

/**
 * Digests of a stored file, computed in the worker as for an upload whose bytes
 * are all written, so that reading a whole object never blocks the libp2p
 * thread; with `indexPath`, its Merkle index is written there too.
 */
export async function hashStoredFile(path: string, size: number, leafSize: number, indexPath?: string): Promise<UploadDigests> {
  return digestsOf(await new WorkerJob({ path, size, leafSize, offset: size, hashOnly: true, indexPath }).end('finish'));
}
