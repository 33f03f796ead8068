// Noise's ChaCha20-Poly1305 with the session keys as KeyObjects. The stock code
// (@chainsafe/libp2p-noise 17, crypto/index.js) hands createCipheriv the key as
// bytes for every 64 KiB message, and Node 24 then tries the bytes as a KeyObject
// and as a CryptoKey, each try throwing a TypeError and capturing its stack: ~10%
// of the sending daemon's main thread during a 2.6 GB put, and garbage for the GC.
// createCipheriv takes a KeyObject as readily, so the stock code runs unchanged
// with one made once per key.
import { createSecretKey, type KeyObject } from 'node:crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { defaultCrypto, nodeCrypto } from '@chainsafe/libp2p-noise/crypto';

/** Below this many bytes the stock code uses its WebAssembly ChaCha, which takes the key as bytes (its own threshold). */
const NODE_CRYPTO_FROM = 1200;

// Noise never changes a key's bytes in place: a new key is a new array.
const keyObjects = new WeakMap<Uint8Array, KeyObject>();

function asKeyObject(key: Uint8Array): Uint8Array {
  let keyObject = keyObjects.get(key);
  if (!keyObject) {
    keyObject = createSecretKey(key);
    keyObjects.set(key, keyObject);
  }
  // The stock node:crypto functions only pass the key on to createCipheriv/createDecipheriv.
  return keyObject as unknown as Uint8Array;
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt(plaintext, nonce, ad, key) {
    if (plaintext.byteLength < NODE_CRYPTO_FROM) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key);
    return nodeCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, asKeyObject(key));
  },
  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, key, dst) {
    if (ciphertext.byteLength < NODE_CRYPTO_FROM) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, key, dst);
    return nodeCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, asKeyObject(key), dst);
  },
};
