// The age v1 header (C2SP age.md): version line, recipient stanzas, MAC line, then
// the 16-byte payload nonce. We write exactly one X25519 stanza; we read any header
// the `age` CLI writes, skipping stanzas of other types.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { x25519PrivateKey, x25519PublicKey } from '../keys.ts';

const VERSION_LINE = 'age-encryption.org/v1';
const X25519_INFO = 'age-encryption.org/v1/X25519';
const FILE_KEY_SIZE = 16;
const WRAPPED_KEY_SIZE = FILE_KEY_SIZE + 16;
const ZERO_NONCE = Buffer.alloc(12);
const LF = 0x0a;
const BODY_COLUMNS = 64;

export const PAYLOAD_NONCE_SIZE = 16;
/** Bytes of the header we write (one X25519 stanza), up to and including the MAC line. */
export const AGE_X25519_HEADER_SIZE = 168;
/**
 * A header larger than this is refused: the X25519 header is 168 bytes and the CLI's
 * largest native stanzas (post-quantum, ssh-rsa) are a few KiB.
 */
const MAX_HEADER_SIZE = 64 * 1024;

export interface SealedHeader {
  /** Header and payload nonce: the first bytes of the file. */
  prefix: Buffer;
  payloadKey: Buffer;
}

export interface OpenedHeader {
  /** Size of the header up to and including the MAC line (without the payload nonce). */
  headerSize: number;
  /** Offset of the first sealed chunk: the header and the payload nonce. */
  chunksStart: number;
  payloadKey: Buffer;
}

function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
}

function base64Raw(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/=+$/, '');
}

const BASE64_CHARS = /^[A-Za-z0-9+/]*$/;

/** Strict unpadded base64, as the spec requires: non-canonical encodings are refused. */
function decodeBase64Raw(text: string, what: string): Buffer {
  const bytes = BASE64_CHARS.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (!bytes || base64Raw(bytes) !== text) throw new Error(`malformed age header: ${what} is not canonical unpadded base64`);
  return bytes;
}

function payloadKeyFor(fileKey: Buffer, nonce: Buffer): Buffer {
  return hkdf(fileKey, nonce, 'payload');
}

function headerMac(fileKey: Buffer, headerUpToDashes: Uint8Array): Buffer {
  return createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(headerUpToDashes).digest();
}

function wrapKey(sharedSecret: Buffer, ephemeralShare: Uint8Array, recipient: Uint8Array): Buffer {
  return hkdf(sharedSecret, Buffer.concat([ephemeralShare, recipient]), X25519_INFO);
}

function rawPublic(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}

// Every object is encrypted to the same recipient: building its KeyObject once saves
// a quarter of the header's cost, which dominates for small objects.
let lastRecipient: { raw: Buffer; key: KeyObject } | undefined;

function recipientKey(recipient: Uint8Array): KeyObject {
  if (!lastRecipient?.raw.equals(recipient)) lastRecipient = { raw: Buffer.from(recipient), key: x25519PublicKey(recipient) };
  return lastRecipient.key;
}

/** A fresh file key wrapped to `recipient` (raw 32-byte X25519 public key). */
export function sealHeader(recipient: Uint8Array): SealedHeader {
  if (recipient.length !== 32) throw new Error(`age recipient must be a 32-byte X25519 public key, got ${recipient.length} bytes`);
  const fileKey = randomBytes(FILE_KEY_SIZE);
  const ephemeral = generateKeyPairSync('x25519');
  const ephemeralShare = rawPublic(ephemeral.publicKey);
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipientKey(recipient) });
  const cipher = createCipheriv('chacha20-poly1305', wrapKey(shared, ephemeralShare, recipient), ZERO_NONCE, { authTagLength: 16 });
  const body = Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()]);
  // A 32-byte body is 43 base64 characters: one final line shorter than 64 columns.
  const upToDashes = Buffer.from(`${VERSION_LINE}\n-> X25519 ${base64Raw(ephemeralShare)}\n${base64Raw(body)}\n---`, 'latin1');
  const nonce = randomBytes(PAYLOAD_NONCE_SIZE);
  const macLine = Buffer.from(` ${base64Raw(headerMac(fileKey, upToDashes))}\n`, 'latin1');
  return { prefix: Buffer.concat([upToDashes, macLine, nonce]), payloadKey: payloadKeyFor(fileKey, nonce) };
}

interface Stanza {
  args: string[];
  body: Buffer;
}

interface ParsedHeader {
  stanzas: Stanza[];
  upToDashesEnd: number;
  mac: Buffer;
  headerSize: number;
}

function isVisibleAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return text.length > 0;
}

function refuseNonAge(bytes: Buffer): void {
  const start = bytes.subarray(0, VERSION_LINE.length + 1).toString('latin1');
  if (start.startsWith('-----BEGIN')) throw new Error('armored (PEM) age files are not supported: convert with `age -d` first or encrypt without -a');
  const expected = `${VERSION_LINE}\n`;
  if (expected.startsWith(start)) return;
  if (start.startsWith('age-encryption.org/')) throw new Error('unsupported age format version: only age-encryption.org/v1 files can be read');
  throw new Error('not an age file: it does not start with "age-encryption.org/v1"');
}

/** Parses the header's structure; returns undefined when `bytes` ends before the MAC line does. */
function parseHeader(bytes: Buffer): ParsedHeader | undefined {
  refuseNonAge(bytes);
  let pos = 0;
  const nextLine = (): string | undefined => {
    const end = bytes.indexOf(LF, pos);
    if (end < 0) return undefined;
    const line = bytes.subarray(pos, end).toString('latin1');
    pos = end + 1;
    return line;
  };
  if (nextLine() === undefined) return undefined;
  const stanzas: Stanza[] = [];
  for (;;) {
    const lineStart = pos;
    const line = nextLine();
    if (line === undefined) return undefined;
    if (line.startsWith('-> ')) {
      const args = line.slice(3).split(' ');
      if (!args.every(isVisibleAscii)) throw new Error('malformed age header: a stanza line has an empty or non-printable argument');
      const bodyText: string[] = [];
      for (;;) {
        const bodyLine = nextLine();
        if (bodyLine === undefined) return undefined;
        if (bodyLine.length > BODY_COLUMNS) throw new Error('malformed age header: a stanza body line is longer than 64 columns');
        bodyText.push(bodyLine);
        if (bodyLine.length < BODY_COLUMNS) break;
      }
      stanzas.push({ args, body: decodeBase64Raw(bodyText.join(''), 'a stanza body') });
    } else if (line.startsWith('--- ')) {
      if (stanzas.length === 0) throw new Error('malformed age header: it has no recipient stanza');
      const mac = decodeBase64Raw(line.slice(4), 'the header MAC');
      if (mac.length !== 32) throw new Error('malformed age header: the header MAC is not 32 bytes');
      return { stanzas, upToDashesEnd: lineStart + 3, mac, headerSize: pos };
    } else {
      throw new Error('malformed age header: expected a "->" stanza or the "---" MAC line');
    }
  }
}

function unwrapX25519(stanza: Stanza, identity: KeyObject, identityPublic: Buffer): Buffer | undefined {
  if (stanza.args.length !== 2) throw new Error('malformed age header: an X25519 stanza must have exactly one share argument');
  const share = decodeBase64Raw(stanza.args[1]!, 'an X25519 share');
  if (share.length !== 32) throw new Error('malformed age header: an X25519 share is not 32 bytes');
  if (stanza.body.length !== WRAPPED_KEY_SIZE) throw new Error('malformed age header: an X25519 stanza body is not 32 bytes');
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: identity, publicKey: x25519PublicKey(share) });
  } catch {
    throw new Error('malformed age header: an X25519 share is a low-order point');
  }
  if (shared.every((b) => b === 0)) throw new Error('malformed age header: an X25519 share is a low-order point');
  const decipher = createDecipheriv('chacha20-poly1305', wrapKey(shared, share, identityPublic), ZERO_NONCE, { authTagLength: 16 });
  decipher.setAuthTag(stanza.body.subarray(FILE_KEY_SIZE));
  try {
    return Buffer.concat([decipher.update(stanza.body.subarray(0, FILE_KEY_SIZE)), decipher.final()]);
  } catch {
    return undefined; // this stanza is addressed to someone else
  }
}

/**
 * Opens the header at the start of `bytes` with `identity` (raw 32-byte X25519
 * secret). Returns undefined while `bytes` is too short to hold the header and the
 * payload nonce; throws on a malformed or tampered header or a foreign file.
 */
export function openHeader(bytes: Buffer, identity: Uint8Array): OpenedHeader | undefined {
  if (identity.length !== 32) throw new Error(`age identity must be a 32-byte X25519 secret, got ${identity.length} bytes`);
  const parsed = parseHeader(bytes);
  if (!parsed) {
    if (bytes.length > MAX_HEADER_SIZE) throw new Error(`age header is larger than ${MAX_HEADER_SIZE} bytes: not a file Hearth can read`);
    return undefined;
  }
  if (bytes.length < parsed.headerSize + PAYLOAD_NONCE_SIZE) return undefined;
  const identityKey = x25519PrivateKey(identity);
  const identityPublic = rawPublic(createPublicKey(identityKey));
  let fileKey: Buffer | undefined;
  for (const stanza of parsed.stanzas) {
    if (stanza.args[0] === 'X25519') fileKey ??= unwrapX25519(stanza, identityKey, identityPublic);
  }
  if (!fileKey) throw new Error('age file is not encrypted to this identity: no X25519 stanza opens with it; use the key the file was made for');
  const expected = headerMac(fileKey, bytes.subarray(0, parsed.upToDashesEnd));
  if (!timingSafeEqual(expected, parsed.mac)) throw new Error('age header MAC does not match: the header is corrupt or was tampered with');
  const nonce = bytes.subarray(parsed.headerSize, parsed.headerSize + PAYLOAD_NONCE_SIZE);
  return { headerSize: parsed.headerSize, chunksStart: parsed.headerSize + PAYLOAD_NONCE_SIZE, payloadKey: payloadKeyFor(fileKey, nonce) };
}
