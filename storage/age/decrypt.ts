import { Transform, type TransformCallback } from 'node:stream';
import { openHeader } from './header.ts';
import { PayloadOpener } from './payload.ts';

/**
 * An age v1 file in, plaintext out, for the X25519 identity `identity` (raw 32-byte
 * secret). Every chunk is authenticated before its plaintext is passed on; a stream
 * that ends early or was altered fails with an error.
 */
export class AgeDecryptStream extends Transform {
  readonly #identity: Uint8Array;
  #headerBytes: Buffer[] = [];
  #opener: PayloadOpener | undefined;

  constructor(identity: Uint8Array) {
    super();
    this.#identity = identity;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      if (this.#opener) this.#opener.push(chunk);
      else this.#readHeader(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (!this.#opener) throw new Error('age file ends inside its header: the file is truncated or is not an age file');
      this.#opener.finish();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  #readHeader(chunk: Buffer): void {
    this.#headerBytes.push(chunk);
    const bytes = Buffer.concat(this.#headerBytes);
    const opened = openHeader(bytes, this.#identity);
    if (!opened) return;
    this.#headerBytes = [];
    this.#opener = new PayloadOpener(opened.payloadKey, (plain) => this.push(plain));
    this.#opener.push(bytes.subarray(opened.chunksStart));
  }
}
