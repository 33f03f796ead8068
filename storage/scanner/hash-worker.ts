// Hashes batches of whole files for the scanner's pool. Synchronous reads:
// FIELD-NOTES measured SHA-256 at ~1.0 GB/s this way against ~0.73 GB/s streamed,
// and a worker blocking on its own files costs the main thread nothing.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { HashBatch, HashBatchReply, HashReply } from './hash-pool.ts';

const CHUNK = 1 << 20;
const buffer = Buffer.allocUnsafe(CHUNK);
// O_NOFOLLOW: a path swapped for a symlink after lstat must fail, not be followed.
// O_NONBLOCK: a path swapped for a FIFO must fail fast, not wait for a writer.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

function hashFile(path: Uint8Array): HashReply {
  let fd: number;
  try {
    fd = openSync(Buffer.from(path.buffer, path.byteOffset, path.byteLength), OPEN_FLAGS);
  } catch (err) {
    return failure(err);
  }
  try {
    const hash = createHash('sha256');
    let bytesRead = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, CHUNK, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      bytesRead += n;
    }
    const after = fstatSync(fd);
    return { hash: hash.digest('hex'), bytesRead, size: after.size, mtimeMs: after.mtimeMs, ctimeMs: after.ctimeMs, ino: after.ino };
  } catch (err) {
    return failure(err);
  } finally {
    closeSync(fd);
  }
}

function failure(err: unknown): HashReply {
  return { errorCode: (err as NodeJS.ErrnoException).code ?? 'EIO', errorMessage: (err as Error).message };
}

parentPort!.on('message', (batch: HashBatch) => {
  parentPort!.postMessage({ id: batch.id, results: batch.paths.map(hashFile) } satisfies HashBatchReply);
});
