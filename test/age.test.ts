import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGE_X25519_HEADER_SIZE, AgeDecryptStream, AgeEncryptStream, ageEncryptedSize, agePlainSize } from '../storage/age/index.ts';
import { ageRecipientString, ageSecretKeyString, parseAgeSecretKey, x25519PublicFromSecret } from '../storage/keys.ts';

let dir: string;
const secret = randomBytes(32);
const recipient = x25519PublicFromSecret(secret);
let keyFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-age-'));
  keyFile = join(dir, 'key.txt');
  writeFileSync(keyFile, `${ageSecretKeyString(secret)}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Feeds `input` in pieces of the given sizes (cycled), so chunk and header boundaries fall anywhere. */
function pieces(input: Buffer, sizes: number[] = [input.length || 1]): Readable {
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < input.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(input.subarray(off, off + n));
    off += n;
  }
  return Readable.from(out);
}

async function run(source: Readable, transform: AgeEncryptStream | AgeDecryptStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(source, transform, new Writable({ write: (chunk: Buffer, _e, callback) => (out.push(chunk), callback()) }));
  return Buffer.concat(out);
}

const encrypt = (plain: Buffer, sizes?: number[]): Promise<Buffer> => run(pieces(plain, sizes), new AgeEncryptStream(recipient));
const decrypt = (file: Buffer, identity: Uint8Array = secret, sizes?: number[]): Promise<Buffer> => run(pieces(file, sizes), new AgeDecryptStream(identity));

function ageDecryptCli(file: Buffer): Buffer {
  const path = join(dir, 'cli-in.age');
  writeFileSync(path, file);
  return execFileSync('age', ['-d', '-i', keyFile, path], { maxBuffer: 64 * 1024 * 1024 });
}

function ageEncryptCli(plain: Buffer, args: string[]): Buffer {
  const path = join(dir, 'cli-plain.bin');
  writeFileSync(path, plain);
  return execFileSync('age', [...args, path], { maxBuffer: 64 * 1024 * 1024 });
}

const SIZES = [0, 1, 65535, 65536, 65537, 131072, 196613, 3 * 1024 * 1024 + 17];

describe('AgeEncryptStream', () => {
  for (const size of SIZES) {
    it(`${size} bytes decrypt with age -d`, async () => {
      const plain = randomBytes(size);
      const file = await encrypt(plain, [1000, 70000, 3]);
      expect(file.length).toBe(ageEncryptedSize(size));
      expect(agePlainSize(file.length)).toBe(size);
      expect(ageDecryptCli(file).equals(plain)).toBe(true);
      expect((await decrypt(file)).equals(plain)).toBe(true);
    });
  }

  it('writes a fresh file key and nonce each time', async () => {
    const plain = randomBytes(100);
    const [a, b] = [await encrypt(plain), await encrypt(plain)];
    expect(a.subarray(0, AGE_X25519_HEADER_SIZE + 16).equals(b.subarray(0, AGE_X25519_HEADER_SIZE + 16))).toBe(false);
  });

  it('refuses a recipient that is not 32 bytes', () => {
    expect(() => new AgeEncryptStream(randomBytes(31))).toThrow(/32-byte X25519 public key/);
  });
});

describe('AgeDecryptStream reads files the age CLI made', () => {
  for (const size of SIZES) {
    it(`${size} bytes from age -r`, async () => {
      const plain = randomBytes(size);
      const file = ageEncryptCli(plain, ['-r', ageRecipientString(recipient)]);
      expect((await decrypt(file, secret, [7, 65552, 100000])).equals(plain)).toBe(true);
    });
  }

  it('with an identity made by age-keygen', async () => {
    const keyPath = join(dir, 'keygen.txt');
    execFileSync('age-keygen', ['-o', keyPath], { stdio: 'ignore' });
    const identity = parseAgeSecretKey(readFileSync(keyPath, 'utf8').split('\n').find((line) => line.startsWith('AGE-SECRET-KEY-'))!);
    const publicLine = execFileSync('age-keygen', ['-y', keyPath], { encoding: 'utf8' }).trim();
    expect(ageRecipientString(x25519PublicFromSecret(identity))).toBe(publicLine);
    const plain = randomBytes(70000);
    expect((await decrypt(ageEncryptCli(plain, ['-r', publicLine]), identity)).equals(plain)).toBe(true);
  });

  describe('with other stanzas before and after ours', () => {
    let edPub: string;
    let rsaPub: string;
    beforeAll(() => {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'ed')]);
      execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', join(dir, 'rsa')]);
      edPub = join(dir, 'ed.pub');
      rsaPub = join(dir, 'rsa.pub');
    });

    it('ssh-ed25519 and ssh-rsa (multi-line body) stanzas first', async () => {
      const plain = randomBytes(100000);
      const other = x25519PublicFromSecret(randomBytes(32));
      // age writes -r recipients in order, then those of -R files.
      const ours = join(dir, 'ours.txt');
      writeFileSync(ours, `${ageRecipientString(recipient)}\n`);
      const sshRecipient = (path: string): string => readFileSync(path, 'utf8').trim();
      const file = ageEncryptCli(plain, ['-r', sshRecipient(rsaPub), '-r', sshRecipient(edPub), '-r', ageRecipientString(other), '-R', ours]);
      const header = file.subarray(0, file.indexOf('\n---')).toString('latin1');
      expect(header.indexOf('-> ssh-rsa')).toBeLessThan(header.indexOf('-> ssh-ed25519'));
      expect(header.indexOf('-> ssh-ed25519')).toBeLessThan(header.indexOf('-> X25519'));
      expect(header.split('\n').some((line) => line.length === 64)).toBe(true);
      expect((await decrypt(file, secret, [5])).equals(plain)).toBe(true);
    });

    it('stanzas after ours', async () => {
      const plain = randomBytes(1000);
      const file = ageEncryptCli(plain, ['-r', ageRecipientString(recipient), '-R', edPub, '-R', rsaPub]);
      expect((await decrypt(file)).equals(plain)).toBe(true);
    });
  });
});

describe('AgeDecryptStream refuses', () => {
  let plain: Buffer;
  let file: Buffer;
  beforeAll(async () => {
    plain = randomBytes(200000);
    file = await encrypt(plain);
  });
  const altered = (offset: number): Buffer => {
    const copy = Buffer.from(file);
    copy[offset]! ^= 0x01;
    return copy;
  };

  it('a flipped bit in any chunk, its tag, or the nonce', async () => {
    const start = AGE_X25519_HEADER_SIZE + 16;
    for (const offset of [start, start + 65535, start + 65536 + 15, start + 65552 + 100, file.length - 1]) {
      await expect(decrypt(altered(offset))).rejects.toThrow(/chunk \d+ failed authentication/);
    }
    await expect(decrypt(altered(AGE_X25519_HEADER_SIZE + 3))).rejects.toThrow(/failed authentication/);
  });

  it('a changed header: stanza body, share, or MAC', async () => {
    const text = file.subarray(0, AGE_X25519_HEADER_SIZE).toString('latin1');
    // Another base64 letter, away from the last one, keeps the encoding canonical.
    const swapped = (offset: number): Buffer => {
      const copy = Buffer.from(file);
      copy[offset] = copy[offset] === 0x41 ? 0x42 : 0x41;
      return copy;
    };
    const shareAt = text.indexOf('-> X25519 ') + 15;
    const bodyAt = text.indexOf('\n', shareAt) + 5;
    const macAt = text.indexOf('--- ') + 10;
    await expect(decrypt(swapped(shareAt))).rejects.toThrow(/not encrypted to this identity|low-order/);
    await expect(decrypt(swapped(bodyAt))).rejects.toThrow(/not encrypted to this identity/);
    await expect(decrypt(swapped(macAt))).rejects.toThrow(/header MAC does not match/);
  });

  it('a header line changed under a valid MAC', async () => {
    // Same file key, one more foreign stanza: the MAC no longer covers the header.
    const text = file.toString('latin1');
    const withStanza = Buffer.from(text.replace('\n---', '\n-> example.org/other x\nAAAA\n---'), 'latin1');
    await expect(decrypt(withStanza)).rejects.toThrow(/header MAC does not match/);
  });

  it('truncation at a chunk boundary, mid chunk, in the header, and a dropped final chunk', async () => {
    const start = AGE_X25519_HEADER_SIZE + 16;
    await expect(decrypt(file.subarray(0, start + 65552))).rejects.toThrow(/failed authentication/);
    await expect(decrypt(file.subarray(0, start + 70000))).rejects.toThrow(/failed authentication/);
    await expect(decrypt(file.subarray(0, start + 10))).rejects.toThrow(/truncated/);
    await expect(decrypt(file.subarray(0, 100))).rejects.toThrow(/ends inside its header/);
    await expect(decrypt(file.subarray(0, start))).rejects.toThrow(/failed authentication|truncated/);
  });

  it('appended bytes', async () => {
    await expect(decrypt(Buffer.concat([file, randomBytes(40)]))).rejects.toThrow(/failed authentication/);
  });

  it('a file for another identity', async () => {
    await expect(decrypt(file, randomBytes(32))).rejects.toThrow(/not encrypted to this identity/);
  });

  it('armored files, other versions and non-age data, with a reason', async () => {
    const armored = ageEncryptCli(randomBytes(10), ['-a', '-r', ageRecipientString(recipient)]);
    await expect(decrypt(armored)).rejects.toThrow(/armored/);
    await expect(decrypt(Buffer.from('age-encryption.org/v2\n-> X\n'))).rejects.toThrow(/unsupported age format version/);
    await expect(decrypt(randomBytes(300))).rejects.toThrow(/not an age file/);
  });

  it('a header that never ends', async () => {
    const endless = Buffer.from(`age-encryption.org/v1\n-> X25519 x\n${`${'A'.repeat(64)}\n`.repeat(1100)}`, 'latin1');
    await expect(decrypt(endless, secret, [4096])).rejects.toThrow(/header is larger than 65536 bytes/);
  });

  it('non-canonical base64 in the header', async () => {
    const text = file.toString('latin1');
    const padded = Buffer.from(text.replace(/^(-> X25519 [A-Za-z0-9+/]{43})\n/m, '$1=\n'), 'latin1');
    await expect(decrypt(padded)).rejects.toThrow(/canonical unpadded base64/);
  });
});

describe('empty plaintext', () => {
  it('has one empty final chunk and round-trips through the CLI both ways', async () => {
    const file = await encrypt(Buffer.alloc(0));
    expect(file.length).toBe(AGE_X25519_HEADER_SIZE + 16 + 16);
    expect(ageDecryptCli(file).length).toBe(0);
    const fromCli = ageEncryptCli(Buffer.alloc(0), ['-r', ageRecipientString(recipient)]);
    expect((await decrypt(fromCli)).length).toBe(0);
  });
});
