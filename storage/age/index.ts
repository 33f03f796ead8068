// age v1 files (C2SP age.md) with node:crypto, byte-compatible with the `age` CLI.
export { AgeEncryptStream } from './encrypt.ts';
export { AgeDecryptStream } from './decrypt.ts';
export { AGE_X25519_HEADER_SIZE, PAYLOAD_NONCE_SIZE } from './header.ts';
export { CHUNK_SIZE, SEALED_CHUNK_SIZE, TAG_SIZE } from './payload.ts';
export {
  ageEncryptedSize,
  agePlainSize,
  decryptRange,
  encryptedRangeFor,
  type DecryptRangeOptions,
  type EncryptedRange,
  type PlainRange,
} from './range.ts';
