// The age v1 payload: ChaCha20-Poly1305 STREAM over 64 KiB chunks. Chunk i is sealed
// with nonce = 11-byte big-endian i || flag, flag 0x01 only on the final chunk. The
// final chunk may be full; it is empty only when the whole plaintext is.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';

export const CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;

function writeChunkNonce(nonce: Buffer, counter: number, last: boolean): void {
  // Counters beyond 2^53 are unreachable (that is 2^69 bytes), so bytes 0-2 stay zero.
  nonce.writeUInt32BE(Math.floor(counter / 0x1_0000_0000), 3);
  nonce.writeUInt32BE(counter >>> 0, 7);
  nonce[11] = last ? 1 : 0;
}

/**
 * Seals plaintext pushed in pieces of any size. Chunks are sealed straight from the
 * caller's buffers when possible; a full chunk is held back until more input shows it
 * is not the final one.
 */
export class PayloadSealer {
  // A KeyObject: given raw bytes, createCipheriv converts the key on every chunk (9 of its 10 us).
  readonly #key: KeyObject;
  readonly #emit: (ciphertext: Buffer, tag: Buffer) => void;
  readonly #nonce = Buffer.alloc(12);
  readonly #pending = Buffer.allocUnsafe(CHUNK_SIZE);
  #fill = 0;
  #counter = 0;

  constructor(payloadKey: Buffer, emit: (ciphertext: Buffer, tag: Buffer) => void) {
    this.#key = createSecretKey(payloadKey);
    this.#emit = emit;
  }

  push(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      if (this.#fill === CHUNK_SIZE) {
        this.#seal(this.#pending, false);
        this.#fill = 0;
      }
      if (this.#fill === 0 && data.length - off > CHUNK_SIZE) {
        this.#seal(data.subarray(off, off + CHUNK_SIZE), false);
        off += CHUNK_SIZE;
        continue;
      }
      const n = Math.min(CHUNK_SIZE - this.#fill, data.length - off);
      this.#pending.set(data.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
    }
  }

  finish(): void {
    this.#seal(this.#pending.subarray(0, this.#fill), true);
  }

  #seal(plain: Uint8Array, last: boolean): void {
    writeChunkNonce(this.#nonce, this.#counter++, last);
    const cipher = createCipheriv('chacha20-poly1305', this.#key, this.#nonce, { authTagLength: TAG_SIZE });
    const ciphertext = cipher.update(plain);
    cipher.final();
    this.#emit(ciphertext, cipher.getAuthTag());
  }
}

export interface OpenerOptions {
  /** Index of the first chunk pushed (range reads start mid-file). */
  firstChunk?: number;
  /**
   * Index of the file's final chunk when the file size is known (range reads). Without
   * it, the final chunk is whatever remains at finish().
   */
  finalChunk?: number;
}

/** Authenticates and decrypts sealed chunks pushed in pieces of any size. */
export class PayloadOpener {
  readonly #key: KeyObject;
  readonly #emit: (plain: Buffer) => void;
  readonly #nonce = Buffer.alloc(12);
  readonly #pending = Buffer.allocUnsafe(SEALED_CHUNK_SIZE);
  readonly #finalChunk: number | undefined;
  #fill = 0;
  #counter: number;
  #openedFinal = false;

  constructor(payloadKey: Buffer, emit: (plain: Buffer) => void, options: OpenerOptions = {}) {
    this.#key = createSecretKey(payloadKey);
    this.#emit = emit;
    this.#counter = options.firstChunk ?? 0;
    this.#finalChunk = options.finalChunk;
  }

  push(data: Uint8Array): void {
    const known = this.#finalChunk !== undefined;
    let off = 0;
    while (off < data.length) {
      if (this.#fill === SEALED_CHUNK_SIZE) {
        this.#open(this.#pending, this.#isFinal());
        this.#fill = 0;
      }
      const rest = data.length - off;
      if (this.#fill === 0 && (rest > SEALED_CHUNK_SIZE || (known && rest === SEALED_CHUNK_SIZE))) {
        this.#open(data.subarray(off, off + SEALED_CHUNK_SIZE), this.#isFinal());
        off += SEALED_CHUNK_SIZE;
        continue;
      }
      const n = Math.min(SEALED_CHUNK_SIZE - this.#fill, rest);
      this.#pending.set(data.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
    }
  }

  /** Opens what is left; throws if the stream ended before its final chunk. */
  finish(): void {
    if (this.#finalChunk === undefined) {
      this.#open(this.#pending.subarray(0, this.#fill), true);
    } else if (this.#fill > 0) {
      if (this.#fill < SEALED_CHUNK_SIZE && !this.#isFinal()) this.#truncated();
      this.#open(this.#pending.subarray(0, this.#fill), this.#isFinal());
    }
    this.#fill = 0;
  }

  #isFinal(): boolean {
    return this.#counter === this.#finalChunk;
  }

  #truncated(): never {
    throw new Error(`age payload is truncated at chunk ${this.#counter}: the file is incomplete; fetch it again`);
  }

  #open(sealed: Uint8Array, last: boolean): void {
    if (this.#openedFinal) throw new Error('age payload has data after its final chunk: the file is corrupt or was tampered with');
    if (sealed.length < TAG_SIZE) this.#truncated();
    if (last && sealed.length === TAG_SIZE && this.#counter > 0) {
      throw new Error('age payload ends with an empty chunk after data, which age forbids: the file is corrupt or was tampered with');
    }
    writeChunkNonce(this.#nonce, this.#counter, last);
    const decipher = createDecipheriv('chacha20-poly1305', this.#key, this.#nonce, { authTagLength: TAG_SIZE });
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    try {
      decipher.final();
    } catch {
      throw new Error(`age payload chunk ${this.#counter} failed authentication: the file is corrupt, truncated or was tampered with`);
    }
    this.#counter++;
    this.#openedFinal = last;
    this.#emit(plain);
  }
}
