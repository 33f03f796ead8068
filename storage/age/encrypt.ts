import { Transform, type TransformCallback } from 'node:stream';
import { sealHeader } from './header.ts';
import { PayloadSealer } from './payload.ts';

/** Plaintext in, an age v1 file for one X25519 recipient (raw 32-byte public key) out. */
export class AgeEncryptStream extends Transform {
  readonly #sealer: PayloadSealer;

  constructor(recipient: Uint8Array) {
    super();
    const { prefix, payloadKey } = sealHeader(recipient);
    this.push(prefix);
    this.#sealer = new PayloadSealer(payloadKey, (ciphertext, tag) => this.push(Buffer.concat([ciphertext, tag])));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#sealer.push(chunk);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#sealer.finish();
    callback();
  }
}
