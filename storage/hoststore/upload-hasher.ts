// Hashing an upload while it arrives, in a worker thread (upload-hash-worker.ts):
// SHA-256 plus the Merkle index cost about 1.5 CPU-seconds per GiB, as much again
// as everything else the thread running libp2p does for a put (Noise, Yamux, the
// disk writes), so there they would halve what one core can receive (measured:
// docs/object-protocol.md, Throughput).
// The worker reads the partial file back as the upload reports bytes written, so
// received bytes are neither copied nor held for it, and a resumed upload's kept
// prefix is hashed the same way. One worker serves every upload in the process;
// it is unreferenced while idle, so it never keeps the process alive, and stops
// after a while without uploads.
import { Worker } from 'node:worker_threads';
import { workerStartOptions } from '../objects/worker-options.ts';
import type { ObjectIdentity } from './merkle-index-file.ts';

export type HashRequest =
  | { kind: 'start'; job: number; path: string; size: number; leafSize: number }
  /** Bytes [0, upTo) of the file are written: hash up to there. */
  | { kind: 'written'; job: number; upTo: number }
  | { kind: 'finish'; job: number; identity: ObjectIdentity }
  | { kind: 'cancel'; job: number };

export type HashReply = { job: number; sha256: string; root: string; index: Uint8Array } | { job: number; error: string };

/** What the host computed from an upload's bytes. */
export interface UploadDigests {
  /** SHA-256 (hex), kept for the scrub. */
  sha256: string;
  /** Merkle root (hex) with the job's leaf size. */
  root: string;
  /** The Merkle index file for the object file with the identity given to finish(). */
  index: Buffer;
}

const WORKER_URL = new URL('./upload-hash-worker.ts', import.meta.url);
// The worker costs the process 17-30 MB of RSS (its own heap; the upper figure
// until Node's compile cache holds its modules), so it goes when no upload needed
// it for this long.
const IDLE_STOP_MS = 30_000;

interface Pending {
  resolve(digests: UploadDigests): void;
  reject(err: Error): void;
}

/** The worker and the replies awaited from it; referenced only while some upload uses it. */
class HashWorker {
  readonly #worker = new Worker(WORKER_URL, workerStartOptions());
  readonly #replies = new Map<number, Pending>();
  #failure: Error | undefined;
  #holds = 0;
  #idle: NodeJS.Timeout | undefined;

  constructor() {
    this.#worker.unref();
    this.#worker.on('message', (reply: HashReply) => {
      const waiting = this.#replies.get(reply.job);
      this.#replies.delete(reply.job);
      if ('error' in reply) waiting?.reject(new Error(`hashing the upload failed: ${reply.error}`));
      else waiting?.resolve({ sha256: reply.sha256, root: reply.root, index: Buffer.from(reply.index.buffer, reply.index.byteOffset, reply.index.byteLength) });
    });
    const fail = (err: Error): void => {
      this.#failure ??= new Error(`the upload hashing worker stopped: ${err.message}`);
      for (const waiting of this.#replies.values()) waiting.reject(this.#failure);
      this.#replies.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  }

  /** False once it failed or stopped after being idle: the next upload starts another. */
  get usable(): boolean {
    return this.#failure === undefined;
  }

  hold(): void {
    clearTimeout(this.#idle);
    if (this.#holds++ === 0) this.#worker.ref();
  }

  release(): void {
    if (--this.#holds > 0) return;
    this.#worker.unref();
    this.#idle = setTimeout(() => {
      this.#failure = new Error('stopped after being idle');
      void this.#worker.terminate();
    }, IDLE_STOP_MS);
    this.#idle.unref();
  }

  send(request: HashRequest): void {
    this.#worker.postMessage(request);
  }

  /** The reply to a finish request about to be sent. */
  reply(job: number): Promise<UploadDigests> {
    if (this.#failure) return Promise.reject(this.#failure);
    const { promise, resolve, reject } = Promise.withResolvers<UploadDigests>();
    this.#replies.set(job, { resolve, reject });
    return promise;
  }
}

let shared: HashWorker | undefined;
let nextJob = 0;

/**
 * Hashing of one upload's partial file at `path`, `size` bytes when complete.
 * Report each write with written(); finish() once all `size` bytes are written,
 * or cancel().
 */
export class UploadHashJob {
  readonly #job = nextJob++;
  readonly #worker: HashWorker;
  #closed = false;

  constructor(path: string, size: number, leafSize: number) {
    if (!shared?.usable) shared = new HashWorker();
    this.#worker = shared;
    this.#worker.hold();
    this.#worker.send({ kind: 'start', job: this.#job, path, size, leafSize });
  }

  written(upTo: number): void {
    if (!this.#closed) this.#worker.send({ kind: 'written', job: this.#job, upTo });
  }

  /** Digests of the whole file, its index keyed to `identity`. */
  async finish(identity: ObjectIdentity): Promise<UploadDigests> {
    if (this.#closed) throw new Error('upload hashing already ended');
    this.#closed = true;
    try {
      const reply = this.#worker.reply(this.#job);
      this.#worker.send({ kind: 'finish', job: this.#job, identity });
      return await reply;
    } finally {
      this.#worker.release();
    }
  }

  cancel(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.send({ kind: 'cancel', job: this.#job });
    this.#worker.release();
  }
}
