// Messages of the two-worker encode pipeline: main -> seal worker -> merkle worker ->
// main. Bytes travel as transferred ArrayBuffers, never copied between threads, and
// every buffer goes round: main's plaintext batch comes back to main for reuse
// (`spare`), and each batch's age bytes travel in one output buffer that main hands
// back to the seal worker once written (`outputs`). In steady state no thread
// allocates a buffer per batch: fresh memory costs more than the copies (page faults).
import type { MessagePort } from 'node:worker_threads';
import type { SealedTotals } from './sealer.ts';

export interface StageData {
  /** The seal worker's output and the merkle worker's input. */
  link: MessagePort;
}

/** Consecutive bytes of the age file: the first `length` bytes of `output`. */
interface Output {
  job: number;
  output: ArrayBuffer;
  length: number;
}

/** One batch's output; exactly one per 'data' request, so main can count batches in flight. */
export type DataEvent = Output & { kind: 'data'; spare: ArrayBuffer };
export type ErrorEvent = { kind: 'error'; job: number; message: string };

/** main -> seal worker */
export type SealRequest =
  /** `hash`: whether to take the plaintext's SHA-256 (not when the source names itself). */
  | { kind: 'start'; job: number; recipient: Uint8Array; leafSize: number; hash: boolean }
  /** `outputs`: written output buffers, back for reuse. */
  | { kind: 'data'; job: number; batch: ArrayBuffer; length: number; outputs: ArrayBuffer[] }
  | { kind: 'end'; job: number }
  | { kind: 'abort'; job: number };

/** seal worker -> merkle worker */
export type MerkleRequest =
  | { kind: 'start'; job: number; leafSize: number }
  | DataEvent
  | (Output & { kind: 'end' } & SealedTotals)
  | { kind: 'abort'; job: number }
  | ErrorEvent;

/** merkle worker -> main */
export type EncodeEvent = DataEvent | (Output & { kind: 'end'; encryptedSize: number; merkleRoot: string } & SealedTotals) | ErrorEvent;
