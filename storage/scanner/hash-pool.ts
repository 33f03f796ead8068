// A small pool of worker threads hashing whole files, so that a first scan uses
// every core. A message costs the main thread about as much as hashing a 4 KiB file
// itself, so small files travel in batches: a batch goes out when it is full, or
// when the main thread next waits for I/O. Workers start on the first batch (a
// no-change scan starts none) and are unreferenced while idle, so an abandoned scan
// cannot keep the process alive.
import { Worker } from 'node:worker_threads';
import { workerStartOptions } from '../objects/worker-options.ts';

export interface HashBatch {
  id: number;
  paths: Uint8Array[];
}

export interface HashBatchReply {
  id: number;
  results: HashReply[];
}

/** What the file looked like once read to the end, or why it could not be read. */
export type HashReply =
  | { hash: string; bytesRead: number; size: number; mtimeMs: number; ctimeMs: number; ino: number; errorCode?: undefined }
  | { errorCode: string; errorMessage: string };

export type HashResult = Extract<HashReply, { hash: string }>;

export class HashError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

interface Job {
  path: Uint8Array;
  size: number;
  resolve: (result: HashResult) => void;
  reject: (err: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  batches: Map<number, Job[]>;
  // Bytes queued on this worker: batches go to the least loaded one, so a 30 MB
  // video on one worker does not hold up the small files behind it.
  pendingBytes: number;
}

const BATCH_FILES = 64;
const BATCH_BYTES = 1 << 20;
const WORKER_URL = new URL('./hash-worker.ts', import.meta.url);

export class HashPool {
  readonly #size: number;
  readonly #workers: PoolWorker[] = [];
  #batch: Job[] = [];
  #batchBytes = 0;
  #flushScheduled = false;
  #closed = false;
  #nextId = 0;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`hash concurrency must be a positive integer, got ${size}`);
    this.#size = size;
  }

  hash(path: Uint8Array, size: number): Promise<HashResult> {
    if (this.#closed) return Promise.reject(stopped());
    return new Promise<HashResult>((resolve, reject) => {
      this.#batch.push({ path, size, resolve, reject });
      this.#batchBytes += size;
      if (this.#batch.length >= BATCH_FILES || this.#batchBytes >= BATCH_BYTES) {
        this.#flush();
      } else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          this.#flush();
        });
      }
    });
  }

  /** Stops the workers; files not hashed yet fail with EWORKER. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#batch.splice(0)) job.reject(stopped());
    const workers = this.#workers.splice(0);
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }

  #flush(): void {
    if (this.#batch.length === 0) return;
    const jobs = this.#batch;
    const bytes = this.#batchBytes;
    this.#batch = [];
    this.#batchBytes = 0;
    const target = this.#pickWorker();
    const id = this.#nextId++;
    if (target.batches.size === 0) target.worker.ref();
    target.batches.set(id, jobs);
    target.pendingBytes += bytes;
    target.worker.postMessage({ id, paths: jobs.map((j) => j.path) } satisfies HashBatch);
  }

  #pickWorker(): PoolWorker {
    let best: PoolWorker | undefined;
    for (const w of this.#workers) if (!best || w.pendingBytes < best.pendingBytes) best = w;
    if (best && (best.batches.size === 0 || this.#workers.length >= this.#size)) return best;
    return this.#startWorker();
  }

  #startWorker(): PoolWorker {
    const entry: PoolWorker = { worker: new Worker(WORKER_URL, workerStartOptions()), batches: new Map(), pendingBytes: 0 };
    entry.worker.on('message', (reply: HashBatchReply) => {
      const jobs = entry.batches.get(reply.id);
      if (!jobs) return;
      entry.batches.delete(reply.id);
      if (entry.batches.size === 0) entry.worker.unref();
      jobs.forEach((job, i) => {
        entry.pendingBytes -= job.size;
        const result = reply.results[i]!;
        if (result.errorCode === undefined) job.resolve(result);
        else job.reject(new HashError(result.errorCode, result.errorMessage));
      });
    });
    entry.worker.on('error', (err) => this.#retire(entry, err));
    entry.worker.on('exit', (code) => this.#retire(entry, new Error(`exited with code ${code}`)));
    this.#workers.push(entry);
    return entry;
  }

  #retire(entry: PoolWorker, err: Error): void {
    const index = this.#workers.indexOf(entry);
    if (index >= 0) this.#workers.splice(index, 1);
    for (const jobs of entry.batches.values()) {
      for (const job of jobs) job.reject(new HashError('EWORKER', `the hashing worker failed: ${err.message}`));
    }
    entry.batches.clear();
  }
}

function stopped(): HashError {
  return new HashError('EWORKER', 'the scan stopped before this file was hashed');
}
