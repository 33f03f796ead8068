// One stage of the encode pipeline (see encode.ts). The seal stage hashes the
// plaintext and encrypts it; the merkle stage hashes the ciphertext into the Merkle
// tree. Each keeps per-job state, so one pair of workers serves every object.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { MerkleBuilder } from '../merkle.ts';
import type { EncodeEvent, MerkleRequest, SealRequest, WorkerRoleData } from './messages.ts';
import { ObjectSealer } from './sealer.ts';

/** A buffer that owns its whole ArrayBuffer can be transferred; a pool slice must be copied out. */
function ownArrayBuffer(piece: Buffer): ArrayBuffer {
  if (piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength) return piece.buffer as ArrayBuffer;
  const copy = new ArrayBuffer(piece.length);
  new Uint8Array(copy).set(piece);
  return copy;
}

class SealJob {
  readonly sealer: ObjectSealer;
  #pieces: ArrayBuffer[] = [];

  constructor(recipient: Uint8Array) {
    this.sealer = new ObjectSealer(recipient, (piece) => this.#pieces.push(ownArrayBuffer(piece)));
  }

  /** What the sealer emitted since the last call. */
  take(): ArrayBuffer[] {
    const pieces = this.#pieces;
    this.#pieces = [];
    return pieces;
  }
}

function runSeal(input: MessagePort, output: MessagePort): void {
  const jobs = new Map<number, SealJob>();
  input.on('message', (message: SealRequest) => {
    const { job } = message;
    if (message.kind === 'start') {
      try {
        jobs.set(job, new SealJob(message.recipient));
        output.postMessage({ kind: 'start', job, leafSize: message.leafSize } satisfies MerkleRequest);
      } catch (err) {
        output.postMessage({ kind: 'error', job, message: (err as Error).message } satisfies MerkleRequest);
      }
      return;
    }
    const state = jobs.get(job);
    if (!state) return; // aborted or failed
    if (message.kind === 'abort') {
      jobs.delete(job);
      output.postMessage(message satisfies MerkleRequest);
    } else if (message.kind === 'data') {
      state.sealer.push(new Uint8Array(message.batch, 0, message.length));
      const pieces = state.take();
      const event: MerkleRequest = { kind: 'data', job, pieces, spare: message.batch };
      output.postMessage(event, [...pieces, message.batch]);
    } else {
      jobs.delete(job);
      const totals = state.sealer.finish();
      const pieces = state.take();
      output.postMessage({ kind: 'end', job, pieces, ...totals } satisfies MerkleRequest, pieces);
    }
  });
}

function runMerkle(input: MessagePort, output: MessagePort): void {
  const jobs = new Map<number, MerkleBuilder>();
  input.on('message', (message: MerkleRequest) => {
    const { job } = message;
    if (message.kind === 'start') {
      jobs.set(job, new MerkleBuilder(message.leafSize));
      return;
    }
    if (message.kind === 'error') {
      output.postMessage(message satisfies EncodeEvent);
      return;
    }
    const builder = jobs.get(job);
    if (!builder) return;
    if (message.kind === 'abort') {
      jobs.delete(job);
      return;
    }
    for (const piece of message.pieces) builder.update(new Uint8Array(piece));
    if (message.kind === 'data') {
      output.postMessage(message satisfies EncodeEvent, [...message.pieces, message.spare]);
    } else {
      jobs.delete(job);
      const event: EncodeEvent = { ...message, encryptedSize: builder.size, merkleRoot: builder.digest() };
      output.postMessage(event, message.pieces);
    }
  });
}

const { role, link } = workerData as WorkerRoleData;
if (role === 'seal') runSeal(parentPort as unknown as MessagePort, link);
else runMerkle(link, parentPort as unknown as MessagePort);
