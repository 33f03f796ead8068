// Encoding an object: the plaintext is encrypted to an age file, hashed (SHA-256, for
// its id, unless the source names itself more cheaply: an ISO image) and the age
// file's bytes are hashed into the Merkle tree audits check.
//
// On two cores the work is split over a reusable pair of worker threads, each a
// stage of a pipeline: main reads plaintext into 1 MiB batches -> seal worker
// (SHA-256 + ChaCha20-Poly1305) -> merkle worker (leaf and node hashes) -> main
// writes the age file. Measured here, SHA-256 (SHA-NI) + ChaCha20 cost about 1.0-1.3
// CPU-s/GiB and the 2 KiB-leaf Merkle tree about 1.0, so the two stages balance and
// the whole is ~2.5 CPU-s/GiB, near 800 MB/s on two idle cores. Bytes move between
// threads as transferred ArrayBuffers that go round (messages.ts), which keeps
// allocation (and the page faults and GC it costs) low. At most MAX_BATCHES_IN_FLIGHT batches
// are between reading and a completed write, so memory stays flat for any size.
// Objects of at most INLINE_LIMIT bytes, and any the caller asks for (inline), are
// encoded on the calling thread.
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { MessageChannel, Worker } from 'node:worker_threads';
import { assertLeafSize, MERKLE_LEAF_SIZE, MerkleBuilder } from '../merkle.ts';
import type { EncodeEvent, SealRequest, StageData } from './messages.ts';
import { ObjectSealer, type SealedTotals } from './sealer.ts';
import { workerStartOptions } from './worker-options.ts';

const BATCH_SIZE = 1024 * 1024;
const MAX_BATCHES_IN_FLIGHT = 4;
const INLINE_LIMIT = 256 * 1024;

/**
 * Plaintext that copies itself into the encoder's own buffers, so a producer that
 * reads files (the ISO writer) needs no buffer of its own per chunk: fresh buffers
 * cost more than the copy (page faults; on this VM ~2 s per GB of 1 MiB buffers).
 */
export interface PlaintextSource {
  /** Writes the next bytes into `target` from its start and returns how many: fewer than its length only at the end. */
  fill(target: Uint8Array): number | Promise<number>;
  /**
   * A digest that identifies the plaintext as surely as its SHA-256, hex, asked for
   * once every byte was filled. A source that has one (an ISO image, from its
   * files' hashes) spares the encoder a SHA-256 pass over the whole plaintext.
   */
  digest?(): string;
}

export interface EncodeOptions {
  /** A stream, or a PlaintextSource (also when it is a stream: fill() is then used and the stream is not read). */
  plaintext: Readable | PlaintextSource;
  /** Raw 32-byte X25519 public key of the age recipient. */
  recipient: Uint8Array;
  /** Receives the age file; encoding ends it and waits until it has finished, or destroys it on failure. */
  output: Writable;
  leafSize?: number;
  /**
   * Encode on the calling thread whatever the size: for plaintext produced far more
   * slowly than the workers would take it (an image of thousands of small files,
   * read one by one), whose two threads would save little time and cost ~45 MB.
   */
  inline?: boolean;
}

export interface EncodedObject {
  plainSize: number;
  /** Names the object (objectId): the plaintext's SHA-256, or the source's own digest(), hex. */
  plainDigest: string;
  encryptedSize: number;
  /** Root of the Merkle tree over the age file's bytes, hex. */
  merkleRoot: string;
  leafSize: number;
}

/** The object's public name: hex HMAC-SHA256(naming key, raw plaintext digest). */
export function objectId(namingKey: Uint8Array, plainDigestHex: string): string {
  if (!/^[0-9a-f]{64}$/i.test(plainDigestHex)) throw new Error(`plaintext digest must be 64 hex digits, got "${plainDigestHex}"`);
  return createHmac('sha256', namingKey).update(Buffer.from(plainDigestHex, 'hex')).digest('hex');
}

/** The encoder's totals, named by the source's own digest when it has one. */
function named(totals: SealedTotals, source: PlaintextSource): { plainSize: number; plainDigest: string } {
  const plainDigest = totals.plainSha256 ?? source.digest!();
  return { plainSize: totals.plainSize, plainDigest };
}

async function endOutput(output: Writable): Promise<void> {
  output.end();
  await finished(output, { readable: false });
}

/**
 * Encodes on the calling thread, a batch at a time: `batch` holds the first `filled`
 * bytes and is refilled until the plaintext ends. Each batch's age bytes go out in
 * one corked write, and the next batch waits while the output is full.
 */
async function encodeInline(batch: Uint8Array, filled: number, source: PlaintextSource, output: Writable, recipient: Uint8Array, leafSize: number): Promise<EncodedObject> {
  const merkle = new MerkleBuilder(leafSize);
  // A write that fails while a batch is read is met at the next batch, or by endOutput().
  const noted = (): void => {};
  output.on('error', noted);
  try {
    output.cork();
    const sealer = new ObjectSealer(
      recipient,
      (piece) => {
        merkle.update(piece);
        output.write(piece);
      },
      { hash: !source.digest },
    );
    for (let length = filled; ; length = await source.fill(batch)) {
      sealer.push(batch.subarray(0, length));
      if (length < batch.length) break;
      output.uncork();
      if (output.errored) throw output.errored;
      if (output.writableNeedDrain) await once(output, 'drain');
      output.cork();
    }
    const totals = named(sealer.finish(), source);
    output.uncork();
    await endOutput(output);
    return { ...totals, encryptedSize: merkle.size, merkleRoot: merkle.digest(), leafSize };
  } finally {
    output.off('error', noted);
  }
}

/** Main thread's side of one object in the pipeline: output writes and the batch budget. */
class PooledJob {
  readonly done = Promise.withResolvers<EncodedObject>();
  readonly #output: Writable;
  readonly #source: PlaintextSource;
  readonly #leafSize: number;
  /** Takes an output buffer back once the output has written it. */
  readonly #recycle: (buffer: ArrayBuffer) => void;
  #inFlight = 0;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(output: Writable, source: PlaintextSource, leafSize: number, recycle: (buffer: ArrayBuffer) => void) {
    this.#output = output;
    this.#source = source;
    this.#leafSize = leafSize;
    this.#recycle = recycle;
    // The failure also surfaces through acquireBatch() in the reading loop.
    this.done.promise.catch(() => {});
  }

  /** Waits until another batch may enter the pipeline. */
  async acquireBatch(): Promise<void> {
    while (this.#inFlight >= MAX_BATCHES_IN_FLIGHT && !this.#failure) {
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    if (this.#failure) throw this.#failure;
    this.#inFlight++;
  }

  /** A batch's ciphertext; its budget returns once the output has taken all of it. */
  write(output: ArrayBuffer, length: number): void {
    if (this.#failure) return;
    this.#output.write(Buffer.from(output, 0, length), (err?: Error | null) => {
      if (err) return this.fail(err);
      this.#recycle(output);
      this.#inFlight--;
      this.#notify();
    });
  }

  async finish(output: ArrayBuffer, length: number, result: SealedTotals & { encryptedSize: number; merkleRoot: string }): Promise<void> {
    if (this.#failure) return;
    try {
      this.#output.write(Buffer.from(output, 0, length));
      await endOutput(this.#output);
      const { encryptedSize, merkleRoot } = result;
      this.done.resolve({ ...named(result, this.#source), encryptedSize, merkleRoot, leafSize: this.#leafSize });
    } catch (err) {
      this.fail(err as Error);
    }
  }

  fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#notify();
    this.done.reject(err);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

interface Stages {
  seal: Worker;
  merkle: Worker;
}

/**
 * A reusable pair of encode workers shared by every object encoded through it;
 * several objects may be encoded at once. Idle workers do not keep the process alive.
 */
export class ObjectEncoderPool {
  #stages: Stages | undefined;
  readonly #jobs = new Map<number, PooledJob>();
  /** Plaintext batch buffers the workers handed back. */
  readonly #spareBatches: ArrayBuffer[] = [];
  /** Output buffers written, to hand back to the seal worker with the next batch. */
  #spareOutputs: ArrayBuffer[] = [];
  #nextJob = 1;
  #closed = false;

  async encode(options: EncodeOptions): Promise<EncodedObject> {
    if (this.#closed) throw new Error('object encoder pool is closed: create a new ObjectEncoderPool');
    const leafSize = options.leafSize ?? MERKLE_LEAF_SIZE;
    assertLeafSize(leafSize);
    const source = plaintextSource(options.plaintext);
    try {
      const first = this.#newBatch();
      const filled = await source.fill(first);
      if (filled <= INLINE_LIMIT || options.inline) {
        const encoded = await encodeInline(first, filled, source, options.output, options.recipient, leafSize);
        this.#spareBatch(first.buffer as ArrayBuffer);
        return encoded;
      }
      return await this.#encodePooled(first, filled, source, options, leafSize);
    } catch (err) {
      // The caller learns of the failure from the rejection; an 'error' event on
      // streams it may not listen to would only crash the process.
      (options.plaintext as Partial<Readable>).destroy?.();
      options.output.destroy();
      throw err;
    }
  }

  /** Stops the workers; objects still being encoded fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const stages = this.#stages;
    this.#stages = undefined;
    for (const job of this.#jobs.values()) job.fail(new Error('object encoder pool was closed while encoding'));
    if (stages) await Promise.all([stages.seal.terminate(), stages.merkle.terminate()]);
  }

  async #encodePooled(first: Uint8Array, filled: number, source: PlaintextSource, options: EncodeOptions, leafSize: number): Promise<EncodedObject> {
    const stages = this.#startStages();
    const id = this.#nextJob++;
    const job = new PooledJob(options.output, source, leafSize, (buffer) => {
      if (this.#spareOutputs.length <= MAX_BATCHES_IN_FLIGHT) this.#spareOutputs.push(buffer);
    });
    const onOutputError = (err: Error): void => job.fail(err);
    options.output.on('error', onOutputError);
    this.#jobs.set(id, job);
    if (this.#jobs.size === 1) this.#setRef(stages, true);
    const post = (request: SealRequest, transfer: ArrayBuffer[] = []): void => stages.seal.postMessage(request, transfer);
    try {
      post({ kind: 'start', job: id, recipient: options.recipient, leafSize, hash: !source.digest });
      let batch = first;
      let length = filled;
      for (;;) {
        await job.acquireBatch();
        const outputs = this.#spareOutputs;
        this.#spareOutputs = [];
        post({ kind: 'data', job: id, batch: batch.buffer as ArrayBuffer, length, outputs }, [batch.buffer as ArrayBuffer, ...outputs]);
        if (length < BATCH_SIZE) break;
        batch = this.#newBatch();
        length = await source.fill(batch);
        if (length === 0) break;
      }
      post({ kind: 'end', job: id });
      return await job.done.promise;
    } catch (err) {
      if (this.#stages === stages) post({ kind: 'abort', job: id });
      throw err;
    } finally {
      options.output.off('error', onOutputError);
      this.#jobs.delete(id);
      if (this.#jobs.size === 0 && this.#stages === stages) this.#setRef(stages, false);
    }
  }

  /** A plaintext batch buffer, one the workers handed back when there is one. */
  #newBatch(): Uint8Array {
    return new Uint8Array(this.#spareBatches.pop() ?? new ArrayBuffer(BATCH_SIZE));
  }

  #spareBatch(buffer: ArrayBuffer): void {
    if (this.#spareBatches.length < MAX_BATCHES_IN_FLIGHT) this.#spareBatches.push(buffer);
  }

  #startStages(): Stages {
    if (this.#stages) return this.#stages;
    const { port1, port2 } = new MessageChannel();
    const start = (file: string, data: StageData): Worker =>
      new Worker(new URL(file, import.meta.url), { ...workerStartOptions(), workerData: data, transferList: [data.link] });
    const stages: Stages = { seal: start('./seal-worker.ts', { link: port1 }), merkle: start('./merkle-worker.ts', { link: port2 }) };
    stages.merkle.on('message', (event: EncodeEvent) => this.#route(event));
    for (const worker of [stages.seal, stages.merkle]) {
      worker.on('error', (err) => this.#lose(stages, new Error(`object encoder worker failed: ${err.message}`)));
      worker.on('exit', (code) => this.#lose(stages, new Error(`object encoder worker exited with code ${code}`)));
    }
    this.#stages = stages;
    return stages;
  }

  #route(event: EncodeEvent): void {
    if (event.kind === 'data') this.#spareBatch(event.spare);
    const job = this.#jobs.get(event.job);
    if (!job) return;
    if (event.kind === 'error') {
      job.fail(new Error(event.message));
    } else if (event.kind === 'data') {
      job.write(event.output, event.length);
    } else {
      void job.finish(event.output, event.length, event);
    }
  }

  /** A worker died: fail its jobs and start fresh workers for the next object. */
  #lose(stages: Stages, err: Error): void {
    if (this.#stages !== stages) return;
    this.#stages = undefined;
    for (const job of this.#jobs.values()) job.fail(err);
    void stages.seal.terminate();
    void stages.merkle.terminate();
  }

  #setRef(stages: Stages, ref: boolean): void {
    for (const worker of [stages.seal, stages.merkle]) {
      if (ref) worker.ref();
      else worker.unref();
    }
  }
}

function plaintextSource(plaintext: Readable | PlaintextSource): PlaintextSource {
  if (typeof (plaintext as PlaintextSource).fill === 'function') return plaintext as PlaintextSource;
  return new StreamSource(plaintext as Readable);
}

/** A stream's chunks copied into the encoder's buffers. */
class StreamSource implements PlaintextSource {
  readonly #chunks: AsyncIterator<Buffer>;
  #rest: Buffer | undefined;
  #ended = false;

  constructor(stream: Readable) {
    this.#chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  async fill(target: Uint8Array): Promise<number> {
    let at = 0;
    while (at < target.length && !this.#ended) {
      let chunk = this.#rest;
      this.#rest = undefined;
      if (!chunk) {
        const next = await this.#chunks.next();
        if (next.done) {
          this.#ended = true;
          break;
        }
        chunk = next.value;
      }
      const n = Math.min(chunk.length, target.length - at);
      target.set(n === chunk.length ? chunk : chunk.subarray(0, n), at);
      at += n;
      if (n < chunk.length) this.#rest = chunk.subarray(n);
    }
    return at;
  }
}

let sharedPool: ObjectEncoderPool | undefined;

/**
 * Encrypts `plaintext` to an age file on `output` and returns its sizes, plaintext
 * digest (objectId) and Merkle root. Uses `pool`, or a process-wide pool whose idle workers
 * do not keep the process alive.
 */
export function encodeObject(options: EncodeOptions & { pool?: ObjectEncoderPool }): Promise<EncodedObject> {
  const pool = options.pool ?? (sharedPool ??= new ObjectEncoderPool());
  return pool.encode(options);
}
