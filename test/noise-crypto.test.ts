// Noise's cipher with KeyObject keys (node/noise-crypto.ts) must be the stock one,
// byte for byte, on both sides of its WebAssembly/node:crypto threshold.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { noiseCrypto } from '../node/noise-crypto.ts';

const bytes = (data: Uint8Array | { subarray(): Uint8Array }): Buffer => Buffer.from(data instanceof Uint8Array ? data : data.subarray());

describe('noiseCrypto', () => {
  it('encrypts and decrypts as the stock implementation does, key after key', () => {
    for (const size of [0, 100, 1199, 1200, 65519]) {
      for (let n = 0; n < 3; n++) {
        const key = randomBytes(32);
        const nonce = randomBytes(12);
        const ad = randomBytes(n * 16);
        const plaintext = randomBytes(size);
        const sealed = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key));
        expect(sealed).toEqual(bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key)));
        expect(bytes(noiseCrypto.chaCha20Poly1305Decrypt(Buffer.from(sealed), nonce, ad, key))).toEqual(plaintext);
      }
    }
  });

  it('refuses a message whose tag does not match', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const sealed = Buffer.from(bytes(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(4096), nonce, new Uint8Array(0), key)));
    sealed[100]! ^= 1;
    expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, new Uint8Array(0), key)).toThrow();
  });
});
