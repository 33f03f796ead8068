// The host's receive side, off the thread that runs libp2p: each slab of an upload's
// bytes (upload-writer.ts) is fed to the object's Merkle index, written
// to its partial file and handed back. A resumed upload's kept prefix is read back
// from the file and hashed first. Jobs and messages: upload-writer.ts.
//
// Writes bypass the page cache (O_DIRECT) where the file system allows it: bytes are
// staged in page-aligned memory and whole 4 KiB blocks at aligned file offsets go
// straight to the disk; a resume's unaligned first block and the object's last
// partial block are written through the page cache (why: storage/direct-write.ts).
// Nothing is lost: hashing reads the slabs, not the file.
import { closeSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { alignedBuffer, DIRECT_BLOCK, openDirect } from '../direct-write.ts';
import { identityOf, INDEX_TRAILER_SIZE, MerkleIndexBuilder } from './merkle-index-file.ts';
import { SLAB_BYTES, type JobFailure, type WriterReply, type WriterRequest } from './upload-writer.ts';

/** Room for a slab behind the unaligned rest of the one before. */
const STAGE_BYTES = SLAB_BYTES + DIRECT_BLOCK;
// Through the page cache, sync every this many bytes in the background: Linux starts
// writing dirty pages back only at 10% of RAM, so otherwise the final sync waits for
// gigabytes.
const SYNC_EVERY = 64 * 1024 * 1024;

interface Job {
  size: number;
  index: MerkleIndexBuilder;
  /** The index file being written (a temporary name the host renames), when one was asked for. */
  indexFd: number | undefined;
  indexPath: string | undefined;
  /** Bytes of the object hashed, from byte 0. */
  hashed: number;
  /** Bytes of the object in the file. */
  written: number;
  fd: number;
  /** The same file opened with O_DIRECT, while direct writes work. */
  directFd: number | undefined;
  /** Page-aligned; holds object bytes from `written` on, not yet written. */
  stage: Buffer | undefined;
  staged: number;
  unsynced: number;
  /** The first failure: later data is ignored and finish() reports it. */
  error?: JobFailure;
  /** Bytes the file held at open, hashed from the file first. */
  prefixEnd: number;
  /** Requests that came while the prefix is hashed, answered in order after it; undefined once it is. */
  waiting: WriterRequest[] | undefined;
}

const jobs = new Map<number, Job>();

/** A failure kept from a data request, reported again by finish(). */
class JobError extends Error {
  readonly failure: JobFailure;
  constructor(failure: JobFailure) {
    super(failure.message);
    this.failure = failure;
  }
}

const prefixBuffer = Buffer.allocUnsafeSlow(SLAB_BYTES);

function reply(message: WriterReply, transfer?: ArrayBuffer[]): void {
  parentPort!.postMessage(message, transfer);
}

function open(request: Extract<WriterRequest, { kind: 'open' }>): void {
  const fd = openSync(request.path, request.hashOnly ? 'r' : 'r+');
  const job: Job = {
    size: request.size,
    index: new MerkleIndexBuilder(request.size, request.leafSize),
    indexFd: undefined,
    indexPath: request.indexPath,
    hashed: 0,
    written: request.offset,
    fd,
    directFd: undefined,
    stage: undefined,
    staged: 0,
    unsynced: 0,
    prefixEnd: request.offset,
    waiting: undefined,
  };
  jobs.set(request.job, job);
  if (request.indexPath !== undefined) {
    // Groups of hashes are written as they complete: memory stays a few pages whatever the object's size.
    const indexFd = openSync(request.indexPath, 'w');
    job.indexFd = indexFd;
    job.index = new MerkleIndexBuilder(request.size, request.leafSize, (hashes, position) => writeAll(indexFd, hashes, position));
    ftruncateSync(indexFd, job.index.length);
  }
  if (!request.hashOnly) {
    // A file system without direct I/O (tmpfs): the page cache it is.
    job.directFd = openDirect(request.path);
    if (job.directFd !== undefined) job.stage = alignedBuffer(STAGE_BYTES);
  }
  // What the file already holds is hashed from the file itself, a slab per turn, so
  // that a whole stored object (a build, a check, a long resume) never holds up the
  // other uploads this worker serves.
  if (job.hashed < job.prefixEnd) {
    job.waiting = [];
    setImmediate(() => hashPrefix(request.job, job));
  }
}

function hashPrefix(id: number, job: Job): void {
  if (jobs.get(id) !== job) return;
  try {
    const bytesRead = readSync(job.fd, prefixBuffer, 0, Math.min(SLAB_BYTES, job.prefixEnd - job.hashed), job.hashed);
    if (bytesRead === 0) throw new Error(`the file ended at ${job.hashed} of the ${job.prefixEnd} bytes expected`);
    hash(job, prefixBuffer.subarray(0, bytesRead));
  } catch (err) {
    job.error ??= failureOf(err);
  }
  if (job.error === undefined && job.hashed < job.prefixEnd) {
    setImmediate(() => hashPrefix(id, job));
    return;
  }
  const waiting = job.waiting!;
  job.waiting = undefined;
  for (const request of waiting) receive(request);
}

function hash(job: Job, bytes: Uint8Array): void {
  job.index.update(bytes);
  job.hashed += bytes.byteLength;
}

function store(job: Job, bytes: Buffer): void {
  const stage = job.stage;
  if (!stage) {
    writeBuffered(job, bytes);
    return;
  }
  for (let taken = 0; taken < bytes.byteLength; ) {
    const copied = bytes.copy(stage, job.staged, taken, Math.min(bytes.byteLength, taken + stage.byteLength - job.staged));
    taken += copied;
    job.staged += copied;
    writeStaged(job, stage, false);
  }
}

/** Write the staged bytes: whole blocks directly, the rest only when `last`. */
function writeStaged(job: Job, stage: Buffer, last: boolean): void {
  if (job.written % DIRECT_BLOCK !== 0) {
    // A resume's first block: through the page cache, up to the next block boundary.
    const head = Math.min(job.staged, DIRECT_BLOCK - (job.written % DIRECT_BLOCK));
    writeBuffered(job, stage.subarray(0, head));
    unstage(job, stage, head);
  }
  const blocks = Math.floor(job.staged / DIRECT_BLOCK) * DIRECT_BLOCK;
  if (blocks > 0 && job.written % DIRECT_BLOCK === 0 && job.directFd !== undefined) {
    try {
      writeAll(job.directFd, stage.subarray(0, blocks), job.written);
      job.written += blocks;
      unstage(job, stage, blocks);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      // The file system refused a direct write: the page cache from here on.
      closeSync(job.directFd);
      job.directFd = undefined;
    }
  }
  if (job.directFd === undefined || last) {
    writeBuffered(job, stage.subarray(0, job.staged));
    unstage(job, stage, job.staged);
  }
  if (job.directFd === undefined) job.stage = undefined;
}

/** Drop the first `length` staged bytes (written), moving the rest to the front. */
function unstage(job: Job, stage: Buffer, length: number): void {
  stage.copy(stage, 0, length, job.staged);
  job.staged -= length;
}

function writeBuffered(job: Job, bytes: Uint8Array): void {
  writeAll(job.fd, bytes, job.written);
  job.written += bytes.byteLength;
  job.unsynced += bytes.byteLength;
  if (job.unsynced >= SYNC_EVERY) {
    job.unsynced = 0;
    // finish() and abandon() sync again and see any error then.
    fdatasync(job.fd, () => {});
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}

/** Close the job's files; an index not finished is removed (a resume hashes from byte 0 and writes it again). */
function closeJob(id: number, job: Job, indexFinished = false): void {
  jobs.delete(id);
  if (job.directFd !== undefined) closeSync(job.directFd);
  closeSync(job.fd);
  if (job.indexFd !== undefined) {
    closeSync(job.indexFd);
    if (!indexFinished) rmSync(job.indexPath!, { force: true });
  }
}

/** Write what is still staged and sync. */
function flush(job: Job): void {
  if (job.stage) writeStaged(job, job.stage, true);
  fdatasyncSync(job.fd);
}

function handle(request: WriterRequest): void {
  if (request.kind === 'open') {
    open(request);
    return;
  }
  const job = jobs.get(request.job);
  if (!job) {
    // Its open failed, and was answered with the error.
    if (request.kind === 'data') reply({ job: request.job, to: 'data', slab: request.slab }, [request.slab]);
    if (request.kind === 'finish') reply({ job: request.job, to: 'finish', error: { message: 'the upload was not open' } });
    if (request.kind === 'abandon') reply({ job: request.job, to: 'abandon' });
    return;
  }
  switch (request.kind) {
    case 'data': {
      if (job.error === undefined) {
        const bytes = Buffer.from(request.slab, 0, request.length);
        hash(job, bytes);
        store(job, bytes);
      }
      reply({ job: request.job, to: 'data', slab: request.slab }, [request.slab]);
      return;
    }
    case 'abandon': {
      try {
        if (job.error === undefined) flush(job);
      } finally {
        closeJob(request.job, job);
      }
      reply({ job: request.job, to: 'abandon' });
      return;
    }
    case 'finish': {
      let finished = false;
      try {
        if (job.error !== undefined) throw new JobError(job.error);
        if (job.hashed !== job.size) throw new Error(`the upload ended after ${job.hashed} of ${job.size} bytes`);
        flush(job);
        const identity = identityOf(fstatSync(job.fd, { bigint: true }));
        const root = job.index.root();
        if (job.indexFd !== undefined) {
          writeAll(job.indexFd, job.index.trailer(identity), job.index.length - INDEX_TRAILER_SIZE);
          fdatasyncSync(job.indexFd);
        }
        finished = true;
        reply({ job: request.job, to: 'finish', root, identity });
      } finally {
        closeJob(request.job, job, finished);
      }
    }
  }
}

function failureOf(err: unknown): JobFailure {
  return err instanceof JobError ? err.failure : { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code };
}

// A failure while data flows is kept in its job, which then takes no more data; a
// failed open, finish or abandon ends the job.
function receive(request: WriterRequest): void {
  const waiting = request.kind === 'open' ? undefined : jobs.get(request.job)?.waiting;
  if (waiting) {
    waiting.push(request);
    return;
  }
  try {
    handle(request);
  } catch (err) {
    const failure = failureOf(err);
    const job = jobs.get(request.job);
    if (request.kind === 'data' && job) job.error ??= failure;
    else if (job) closeJob(request.job, job);
    if (request.kind === 'data') reply({ job: request.job, to: 'data', error: failure, slab: request.slab }, [request.slab]);
    else reply({ job: request.job, to: request.kind, error: failure });
  }
}

parentPort!.on('message', receive);
