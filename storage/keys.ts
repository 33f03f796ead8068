// Every secret a home holds is derived from its 24-word BIP39 recovery phrase, so a
// home rebuilt from the phrase has the same PeerId, age identity and catalog keys.
// Derivation: IKM = the phrase's 256-bit entropy; each key = HKDF-SHA256(IKM,
// salt "hearth/v1", info = its label). See docs/keys.md.
import { createPrivateKey, createPublicKey, hkdfSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { entropyToMnemonic, mnemonicToEntropy, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { bech32 } from '@scure/base';

const SALT = 'hearth/v1';
export const KEY_LABELS = {
  libp2p: 'hearth libp2p ed25519 identity',
  age: 'hearth age x25519 identity',
  catalog: 'hearth catalog encryption',
  naming: 'hearth object naming',
} as const;

// DER prefixes that turn a raw 32-byte key into PKCS8 / SPKI for node:crypto.
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');

export interface HomeKeys {
  /** 32-byte seed of the Ed25519 libp2p identity (also signs catalog records). */
  ed25519Seed: Buffer;
  ed25519Public: Buffer;
  /** Raw X25519 secret of the age identity. */
  x25519Secret: Buffer;
  x25519Public: Buffer;
  catalogKey: Buffer;
  namingKey: Buffer;
  signingKey: KeyObject;
}

export function generatePhrase(): string {
  return entropyToMnemonic(randomBytes(32), wordlist);
}

const WORDS = new Set(wordlist);

/** Words of the list one edit (a letter added, dropped, changed or two swapped) from `word`, or sharing its first four letters (which the list makes unique). */
function closestWords(word: string): string[] {
  const oneEdit = (a: string, b: string): boolean => {
    if (Math.abs(a.length - b.length) > 1) return false;
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    const rest = (x: string, n: number) => x.slice(i + n);
    return rest(a, 1) === rest(b, 1) || rest(a, 1) === rest(b, 0) || rest(a, 0) === rest(b, 1)
      || (a.length === b.length && a[i] === b[i + 1] && a[i + 1] === b[i] && rest(a, 2) === rest(b, 2));
  };
  const near = wordlist.filter((w) => oneEdit(word, w) || (word.length >= 4 && w.startsWith(word.slice(0, 4))));
  return near.slice(0, 3);
}

/** Normalise and check a phrase; throws a one-line error naming the problem. */
export function phraseToEntropy(phrase: string): Buffer {
  const words = phrase.trim().toLowerCase().split(/\s+/).join(' ');
  if (words.split(' ').length !== 24) throw new Error(`recovery phrase must have 24 words, got ${words ? words.split(' ').length : 0}`);
  const unknown = words.split(' ').findIndex((w) => !WORDS.has(w));
  if (unknown >= 0) {
    const word = words.split(' ')[unknown]!;
    const near = closestWords(word);
    throw new Error(`word ${unknown + 1} "${word}" is not in the word list${near.length ? ` (did you mean ${near.map((w) => `"${w}"`).join(' or ')}?)` : ''}: check it against the written phrase`);
  }
  if (!validateMnemonic(words, wordlist)) throw new Error('recovery phrase is not valid: every word is in the list but their checksum fails, so a word is wrong (another valid word) or two are swapped: check each against the written phrase');
  return Buffer.from(mnemonicToEntropy(words, wordlist));
}

function derive(entropy: Buffer, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', entropy, SALT, label, 32));
}

export function deriveKeys(entropy: Buffer): HomeKeys {
  if (entropy.length !== 32) throw new Error('identity entropy must be 32 bytes');
  const ed25519Seed = derive(entropy, KEY_LABELS.libp2p);
  const x25519Secret = derive(entropy, KEY_LABELS.age);
  const signingKey = ed25519PrivateKey(ed25519Seed);
  return {
    ed25519Seed,
    ed25519Public: rawPublicKey(createPublicKey(signingKey)),
    x25519Secret,
    x25519Public: x25519PublicFromSecret(x25519Secret),
    catalogKey: derive(entropy, KEY_LABELS.catalog),
    namingKey: derive(entropy, KEY_LABELS.naming),
    signingKey,
  };
}

export function ed25519PrivateKey(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' });
}

export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' });
}

export function x25519PrivateKey(secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8, secret]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([X25519_SPKI, raw]), format: 'der', type: 'spki' });
}

export function x25519PublicFromSecret(secret: Uint8Array): Buffer {
  return rawPublicKey(createPublicKey(x25519PrivateKey(secret)));
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function signEd25519(key: KeyObject, data: Uint8Array): Buffer {
  return sign(null, data, key);
}

export function verifyEd25519(publicRaw: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  return verify(null, data, ed25519PublicKey(publicRaw), signature);
}

/** The age identity line, as `age-keygen` prints it. */
export function ageSecretKeyString(secret: Uint8Array): string {
  return bech32.encode('age-secret-key-', bech32.toWords(secret), false).toUpperCase();
}

export function ageRecipientString(publicKey: Uint8Array): string {
  return bech32.encode('age', bech32.toWords(publicKey), false);
}

export function parseAgeSecretKey(line: string): Buffer {
  const { prefix, words } = bech32.decode(line.trim().toLowerCase() as `${string}1${string}`, false);
  if (prefix !== 'age-secret-key-') throw new Error('not an age secret key (expected AGE-SECRET-KEY-1...)');
  return Buffer.from(bech32.fromWords(words));
}

export function parseAgeRecipient(line: string): Buffer {
  const { prefix, words } = bech32.decode(line.trim() as `${string}1${string}`, false);
  if (prefix !== 'age') throw new Error('not an age recipient (expected age1...)');
  return Buffer.from(bech32.fromWords(words));
}

export function entropyToPhrase(entropy: Buffer): string {
  return entropyToMnemonic(entropy, wordlist);
}
