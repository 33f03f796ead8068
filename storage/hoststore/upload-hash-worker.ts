// The host's receive-side hashing, off the thread that runs libp2p: each upload's
// partial file is read back as it grows (from the page cache, just written) and fed
// to its SHA-256 and Merkle index. Jobs and messages: upload-hasher.ts.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { MerkleIndexBuilder, type ObjectIdentity } from './merkle-index-file.ts';
import type { HashReply, HashRequest } from './upload-hasher.ts';

const READ_CHUNK = 1024 * 1024;
const buffer = Buffer.allocUnsafe(READ_CHUNK);

interface Job {
  /** Undefined when the file could not be opened. */
  fd: number | undefined;
  size: number;
  sha256: Hash;
  index: MerkleIndexBuilder;
  hashed: number;
  /** The first failure; reported when the job finishes. */
  error?: string;
}

const jobs = new Map<number, Job>();

function catchUp(job: Job, upTo: number): void {
  while (job.fd !== undefined && job.error === undefined && job.hashed < upTo) {
    const bytesRead = readSync(job.fd, buffer, 0, Math.min(READ_CHUNK, upTo - job.hashed), job.hashed);
    if (bytesRead === 0) {
      job.error = `the partial file ended at ${job.hashed} of the ${upTo} bytes written to it`;
      return;
    }
    const bytes = buffer.subarray(0, bytesRead);
    job.sha256.update(bytes);
    job.index.update(bytes);
    job.hashed += bytesRead;
  }
}

function handle(request: HashRequest): void {
  if (request.kind === 'start') {
    const job: Job = { fd: undefined, size: request.size, sha256: createHash('sha256'), index: new MerkleIndexBuilder(request.size, request.leafSize), hashed: 0 };
    jobs.set(request.job, job);
    job.fd = openSync(request.path, 'r');
    return;
  }
  const job = jobs.get(request.job);
  if (!job) return;
  if (request.kind === 'written') {
    catchUp(job, request.upTo);
    return;
  }
  jobs.delete(request.job);
  try {
    if (request.kind === 'finish') finish(request.job, job, request.identity);
  } finally {
    if (job.fd !== undefined) closeSync(job.fd);
  }
}

function finish(id: number, job: Job, identity: ObjectIdentity): void {
  catchUp(job, job.size);
  if (job.error !== undefined) {
    parentPort!.postMessage({ job: id, error: job.error } satisfies HashReply);
    return;
  }
  const index = job.index.file(identity);
  parentPort!.postMessage({ job: id, sha256: job.sha256.digest('hex'), root: job.index.root(), index } satisfies HashReply, [index.buffer as ArrayBuffer]);
}

// Failures are answered only to a finish request: one while the upload runs waits in its job.
parentPort!.on('message', (request: HashRequest) => {
  try {
    handle(request);
  } catch (err) {
    const job = jobs.get(request.job);
    if (job) job.error ??= (err as Error).message;
    else if (request.kind === 'finish') parentPort!.postMessage({ job: request.job, error: (err as Error).message } satisfies HashReply);
  }
});
