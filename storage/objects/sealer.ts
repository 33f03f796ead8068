import { createHash, type Hash } from 'node:crypto';
import { sealHeader } from '../age/header.ts';
import { PayloadSealer } from '../age/payload.ts';

export interface SealedTotals {
  plainSize: number;
  plainSha256: string;
}

/**
 * One object's age encryption and plaintext SHA-256 in a single pass. `emit` receives
 * the age file in order (header first, during construction), in fresh buffers the
 * caller may keep.
 */
export class ObjectSealer {
  readonly #sha: Hash = createHash('sha256');
  readonly #payload: PayloadSealer;
  #plainSize = 0;

  constructor(recipient: Uint8Array, emit: (bytes: Buffer) => void) {
    const { prefix, payloadKey } = sealHeader(recipient);
    emit(prefix);
    this.#payload = new PayloadSealer(payloadKey, (ciphertext, tag) => {
      emit(ciphertext);
      emit(tag);
    });
  }

  push(plain: Uint8Array): void {
    this.#sha.update(plain);
    this.#plainSize += plain.length;
    this.#payload.push(plain);
  }

  finish(): SealedTotals {
    this.#payload.finish();
    return { plainSize: this.#plainSize, plainSha256: this.#sha.digest('hex') };
  }
}
