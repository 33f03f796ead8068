import { createHash, type Hash } from 'node:crypto';
import { sealHeader } from '../age/header.ts';
import { PayloadSealer } from '../age/payload.ts';

export interface SealedTotals {
  plainSize: number;
  /** Absent when the sealer was told not to hash (the source names itself). */
  plainSha256?: string;
}

/**
 * One object's age encryption and plaintext SHA-256 in a single pass. `emit` receives
 * the age file in order (header first, during construction), in fresh buffers the
 * caller may keep. `hash: false` skips the SHA-256, for plaintext with a digest of
 * its own.
 */
export class ObjectSealer {
  readonly #sha: Hash | undefined;
  readonly #payload: PayloadSealer;
  #plainSize = 0;

  constructor(recipient: Uint8Array, emit: (bytes: Buffer) => void, options: { hash: boolean } = { hash: true }) {
    if (options.hash) this.#sha = createHash('sha256');
    const { prefix, payloadKey } = sealHeader(recipient);
    emit(prefix);
    this.#payload = new PayloadSealer(payloadKey, (ciphertext, tag) => {
      emit(ciphertext);
      emit(tag);
    });
  }

  push(plain: Uint8Array): void {
    this.#sha?.update(plain);
    this.#plainSize += plain.length;
    this.#payload.push(plain);
  }

  finish(): SealedTotals {
    this.#payload.finish();
    return { plainSize: this.#plainSize, plainSha256: this.#sha?.digest('hex') };
  }
}
