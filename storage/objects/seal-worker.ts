// The seal stage of the encode pipeline (see encode.ts): hashes the plaintext and
// encrypts it to age, one job per object, so one worker serves every object.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { MerkleRequest, SealRequest, StageData } from './messages.ts';
import { ObjectSealer } from './sealer.ts';
import { collectGarbage } from '../collect-garbage.ts';

/** Room for one batch's age bytes: up to 17 sealed chunks, and the header on the first. */
const OUTPUT_BYTES = 1024 * 1024 + 64 * 1024 + 4096;

class SealJob {
  readonly sealer: ObjectSealer;
  #output: Uint8Array | undefined;
  #length = 0;
  readonly #spares: ArrayBuffer[];

  /** `spares`: output buffers back from main, shared by every job of this worker. */
  constructor(recipient: Uint8Array, hash: boolean, spares: ArrayBuffer[]) {
    this.#spares = spares;
    this.sealer = new ObjectSealer(recipient, (piece) => this.#append(piece), { hash });
  }

  /** What the sealer emitted since the last call, in one buffer. */
  take(): { output: ArrayBuffer; length: number } {
    const output = this.#output ?? new Uint8Array(this.#spares.pop() ?? new ArrayBuffer(OUTPUT_BYTES));
    const taken = { output: output.buffer as ArrayBuffer, length: this.#length };
    this.#output = undefined;
    this.#length = 0;
    return taken;
  }

  #append(piece: Uint8Array): void {
    let output = (this.#output ??= new Uint8Array(this.#spares.pop() ?? new ArrayBuffer(OUTPUT_BYTES)));
    if (this.#length + piece.length > output.length) {
      const grown = new Uint8Array(Math.max(OUTPUT_BYTES, 2 * (this.#length + piece.length)));
      grown.set(output.subarray(0, this.#length));
      output = this.#output = grown;
    }
    output.set(piece, this.#length);
    this.#length += piece.length;
  }
}

/**
 * Every sealed chunk's ciphertext is a fresh 64 KiB buffer from node:crypto, garbage
 * once copied out. V8 collects such buffers only after ~64 MB of them pile up, which
 * showed as +85 MB RSS per GiB encoded; a minor GC every SCAVENGE_BYTES keeps it near
 * +15 MB for the cost of a few young-generation scavenges of an almost empty heap.
 */
const SCAVENGE_BYTES = 8 * 1024 * 1024;

function runSeal(input: MessagePort, output: MessagePort): void {
  const jobs = new Map<number, SealJob>();
  const spares: ArrayBuffer[] = [];
  let sealedSinceScavenge = 0;
  input.on('message', (message: SealRequest) => {
    const { job } = message;
    if (message.kind === 'start') {
      try {
        jobs.set(job, new SealJob(message.recipient, message.hash, spares));
        output.postMessage({ kind: 'start', job, leafSize: message.leafSize } satisfies MerkleRequest);
      } catch (err) {
        output.postMessage({ kind: 'error', job, message: (err as Error).message } satisfies MerkleRequest);
      }
      return;
    }
    if (message.kind === 'data') spares.push(...message.outputs);
    const state = jobs.get(job);
    if (!state) return; // aborted or failed
    if (message.kind === 'abort') {
      jobs.delete(job);
      output.postMessage(message satisfies MerkleRequest);
    } else if (message.kind === 'data') {
      state.sealer.push(new Uint8Array(message.batch, 0, message.length));
      const sealed = state.take();
      sealedSinceScavenge += message.length;
      if (sealedSinceScavenge >= SCAVENGE_BYTES) {
        collectGarbage({ type: 'minor' });
        sealedSinceScavenge = 0;
      }
      const event: MerkleRequest = { kind: 'data', job, ...sealed, spare: message.batch };
      output.postMessage(event, [sealed.output, message.batch]);
    } else {
      jobs.delete(job);
      const totals = state.sealer.finish();
      const sealed = state.take();
      output.postMessage({ kind: 'end', job, ...sealed, ...totals } satisfies MerkleRequest, [sealed.output]);
    }
  });
}

runSeal(parentPort as unknown as MessagePort, (workerData as StageData).link);
