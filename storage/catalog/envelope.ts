// One catalog log record as it is stored and as hosts receive it. Pure functions:
// a host verifies an owner's log with nothing but the owner's Ed25519 public key.
// Byte layout and the reasons for it: docs/catalog-format.md.
import { createCipheriv, createDecipheriv, createHash, randomBytes, verify, type KeyObject } from 'node:crypto';
import { ed25519PublicKey, signEd25519 } from '../keys.ts';
import { readU64, writeU64 } from './layout.ts';

export const ENVELOPE_VERSION = 1;
/** Largest plaintext payload one envelope may carry; hosts refuse bigger records. */
export const MAX_PAYLOAD_BYTES = 1 << 20;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SIGNATURE_BYTES = 64;
const HASH_BYTES = 32;
/** version(1) seq(8) prev(32) nonce(12) ciphertextLength(4) */
export const HEADER_BYTES = 1 + 8 + HASH_BYTES + NONCE_BYTES + 4;
export const MAX_ENVELOPE_BYTES = HEADER_BYTES + MAX_PAYLOAD_BYTES + TAG_BYTES + SIGNATURE_BYTES;
/** The owner's Ed25519 key is also its libp2p identity, so catalog signatures are domain-separated. */
const SIGNATURE_CONTEXT = Buffer.from('hearth catalog envelope v1\n', 'utf8');
export const ZERO_HASH = '0'.repeat(HASH_BYTES * 2);

export interface ChainHead {
  seq: number;
  /** SHA-256 of the envelope's bytes, lowercase hex; ZERO_HASH before the first record. */
  hash: string;
}

export interface Envelope {
  version: number;
  seq: number;
  prev: string;
  nonce: Buffer;
  /** ChaCha20-Poly1305 ciphertext followed by its 16-byte tag. */
  ciphertext: Buffer;
  signature: Buffer;
  header: Buffer;
  /** header + ciphertext: the bytes the signature covers. */
  signed: Buffer;
}

export type ChainErrorCode = 'malformed' | 'signature' | 'replay' | 'gap' | 'fork';

/** A record a host must refuse; `code` says why so a protocol can report it. */
export class CatalogChainError extends Error {
  readonly code: ChainErrorCode;
  readonly seq: number | undefined;
  constructor(code: ChainErrorCode, seq: number | undefined, message: string) {
    super(message);
    this.name = 'CatalogChainError';
    this.code = code;
    this.seq = seq;
  }
}

export interface EnvelopeKeys {
  catalogKey: Buffer;
  signingKey: KeyObject;
}

export function encodeEnvelope(seq: number, prev: string, payload: Uint8Array, keys: EnvelopeKeys): Buffer {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new Error(`catalog record seq must be a positive integer, got ${seq}`);
  if (!/^[0-9a-f]{64}$/.test(prev)) throw new Error('catalog record prev must be 64 lowercase hex characters');
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new Error(`catalog payload is ${payload.length} bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit: split it`);
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length + TAG_BYTES + SIGNATURE_BYTES);
  out[0] = ENVELOPE_VERSION;
  writeU64(out, 1, seq);
  out.write(prev, 9, 'hex');
  const nonce = randomBytes(NONCE_BYTES);
  nonce.copy(out, 41);
  out.writeUInt32BE(payload.length + TAG_BYTES, 53);
  const header = out.subarray(0, HEADER_BYTES);
  const cipher = createCipheriv('chacha20-poly1305', keys.catalogKey, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(header, { plaintextLength: payload.length });
  let at = HEADER_BYTES;
  at += cipher.update(payload).copy(out, at);
  at += cipher.final().copy(out, at);
  at += cipher.getAuthTag().copy(out, at);
  signEd25519(keys.signingKey, Buffer.concat([SIGNATURE_CONTEXT, out.subarray(0, at)])).copy(out, at);
  return out;
}

/** Parse the framing only; no signature or decryption check. Throws CatalogChainError('malformed'). */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const malformed = (why: string) => new CatalogChainError('malformed', undefined, `catalog record is malformed: ${why}`);
  if (buf.length < HEADER_BYTES + TAG_BYTES + SIGNATURE_BYTES) throw malformed(`${buf.length} bytes is shorter than any record`);
  if (buf.length > MAX_ENVELOPE_BYTES) throw malformed(`${buf.length} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit`);
  if (buf[0] !== ENVELOPE_VERSION) throw malformed(`unknown version ${buf[0]} (this Hearth reads version ${ENVELOPE_VERSION})`);
  const seq = readU64(buf, 1);
  if (seq < 1 || !Number.isSafeInteger(seq)) throw malformed(`seq ${seq} is out of range`);
  const ciphertextLength = buf.readUInt32BE(53);
  if (ciphertextLength < TAG_BYTES || HEADER_BYTES + ciphertextLength + SIGNATURE_BYTES !== buf.length) {
    throw malformed(`ciphertext length ${ciphertextLength} does not match the record size ${buf.length}`);
  }
  const signedEnd = HEADER_BYTES + ciphertextLength;
  return {
    version: buf[0]!,
    seq,
    prev: buf.toString('hex', 9, 41),
    nonce: buf.subarray(41, 53),
    ciphertext: buf.subarray(HEADER_BYTES, signedEnd),
    signature: buf.subarray(signedEnd),
    header: buf.subarray(0, HEADER_BYTES),
    signed: buf.subarray(0, signedEnd),
  };
}

export function envelopeHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// Building a KeyObject costs as much as a verification; a host checks many records
// from a handful of owners.
const ownerKeys = new Map<string, KeyObject>();

function ownerKey(publicRaw: Uint8Array): KeyObject {
  if (publicRaw.length !== 32) throw new Error(`owner public key must be 32 raw Ed25519 bytes, got ${publicRaw.length}`);
  const hex = Buffer.from(publicRaw).toString('hex');
  let key = ownerKeys.get(hex);
  if (!key) {
    if (ownerKeys.size >= 64) ownerKeys.clear();
    key = ed25519PublicKey(publicRaw);
    ownerKeys.set(hex, key);
  }
  return key;
}

export function envelopeSignatureValid(ownerPublicRaw: Uint8Array, envelope: Envelope): boolean {
  return verify(null, Buffer.concat([SIGNATURE_CONTEXT, envelope.signed]), ownerKey(ownerPublicRaw), envelope.signature);
}

/**
 * The check a host runs before storing a pushed record: signed by the owner, and the
 * direct successor of `prev` (null = the host holds nothing yet). Returns the new head.
 */
export function verifyEnvelopeAppend(ownerPublicRaw: Uint8Array, prev: ChainHead | null, envelopeBytes: Uint8Array): ChainHead {
  const envelope = decodeEnvelope(envelopeBytes);
  const { seq } = envelope;
  if (!envelopeSignatureValid(ownerPublicRaw, envelope)) {
    throw new CatalogChainError('signature', seq, `catalog record ${seq} has a bad signature: it was not signed by this owner's key; refuse it`);
  }
  const head = prev ?? { seq: 0, hash: ZERO_HASH };
  if (seq <= head.seq) {
    throw new CatalogChainError('replay', seq, `catalog record ${seq} is a replay or rollback: the log already reaches record ${head.seq}; refuse it`);
  }
  if (seq > head.seq + 1) {
    throw new CatalogChainError('gap', seq, `catalog record ${seq} leaves a gap: the log ends at record ${head.seq}, so record ${head.seq + 1} must come first`);
  }
  if (envelope.prev !== head.hash) {
    throw new CatalogChainError('fork', seq, `catalog record ${seq} forks the log: it follows a record ${seq - 1} other than the one held (hash ${head.hash.slice(0, 16)}…); refuse it`);
  }
  return { seq, hash: envelopeHash(envelopeBytes) };
}

/** Decrypt and authenticate the payload; throws when the catalog key or the bytes are wrong. */
export function decryptEnvelope(catalogKey: Buffer, envelope: Envelope): Buffer {
  const body = envelope.ciphertext.subarray(0, envelope.ciphertext.length - TAG_BYTES);
  const decipher = createDecipheriv('chacha20-poly1305', catalogKey, envelope.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(envelope.header, { plaintextLength: body.length });
  decipher.setAuthTag(envelope.ciphertext.subarray(body.length));
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw new Error(`catalog record ${envelope.seq} does not decrypt: the catalog key is wrong or the record is damaged`);
  }
}
