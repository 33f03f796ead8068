// Messages of the two-worker encode pipeline: main -> seal worker -> merkle worker ->
// main. Bytes travel as transferred ArrayBuffers, never copied between threads: the
// age file as the cipher produced it (one buffer per header, ciphertext chunk and
// tag), and main's plaintext batch back to main for reuse (`spare`).
import type { MessagePort } from 'node:worker_threads';
import type { SealedTotals } from './sealer.ts';

export interface WorkerRoleData {
  role: 'seal' | 'merkle';
  /** The seal worker's output and the merkle worker's input. */
  link: MessagePort;
}

interface Pieces {
  job: number;
  /** Consecutive bytes of the age file. */
  pieces: ArrayBuffer[];
}

/** One batch's output; exactly one per 'data' request, so main can count batches in flight. */
export type DataEvent = Pieces & { kind: 'data'; spare: ArrayBuffer };
export type ErrorEvent = { kind: 'error'; job: number; message: string };

/** main -> seal worker */
export type SealRequest =
  | { kind: 'start'; job: number; recipient: Uint8Array; leafSize: number }
  | { kind: 'data'; job: number; batch: ArrayBuffer; length: number }
  | { kind: 'end'; job: number }
  | { kind: 'abort'; job: number };

/** seal worker -> merkle worker */
export type MerkleRequest =
  | { kind: 'start'; job: number; leafSize: number }
  | DataEvent
  | (Pieces & { kind: 'end' } & SealedTotals)
  | { kind: 'abort'; job: number }
  | ErrorEvent;

/** merkle worker -> main */
export type EncodeEvent = DataEvent | (Pieces & { kind: 'end'; encryptedSize: number; merkleRoot: string } & SealedTotals) | ErrorEvent;
