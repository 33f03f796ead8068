// What Hearth writes opens with standard tools and nothing else: `age` decrypts
// every object with the key `hearth key export-age` prints, and the decrypted
// volumes list and extract byte-exact with xorriso, bsdtar and 7z.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearthJson, hearthOk } from './helpers/cli.ts';
import { pseudoRandom, writeFile } from './helpers/library.ts';

let work: string;
let home: string;
let photos: string;
let keyFile: string;
let objects: any[];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const files: Record<string, number> = {
  'a.jpg': 100_000,
  'sub/b.jpg': 65_536,
  'sub/deeper/c.png': 1,
  'Ünïcødé/日本 写真.jpg': 3000,
  [`long/${'x'.repeat(100)}.jpg`]: 2000,
};

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-interop-'));
  home = join(work, 'home');
  photos = join(work, 'photos');
  // The first backup packs a volume; files added after it are staged as blobs.
  writeFile(photos, 'seed.jpg', 1000, 99);
  hearthOk(home, ['init', '--json']);
  hearthOk(home, ['source', 'add', photos]);
  mkdirSync(join(work, 'disk'), { recursive: true });
  hearthOk(home, ['target', 'add', 'dir', join(work, 'disk')]);
  hearthJson(home, ['backup']);
  let seed = 100;
  for (const [rel, size] of Object.entries(files)) writeFile(photos, rel, size, seed++);
  hearthJson(home, ['backup']);
  objects = hearthJson<any[]>(home, ['objects']);
  keyFile = join(work, 'key.txt');
  writeFileSync(keyFile, hearthOk(home, ['key', 'export-age']));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

function ageDecrypt(file: string, out: string): void {
  execFileSync('age', ['-d', '-i', keyFile, '-o', out, file]);
}

describe('standard tools read Hearth objects', () => {
  it('exports an age identity', () => {
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}\n$/);
  });

  it('blobs decrypt with the age CLI to the original file bytes', () => {
    const blobs = objects.filter((o) => o.kind === 'blob');
    expect(blobs).toHaveLength(Object.keys(files).length);
    for (const b of blobs) {
      const out = join(work, `blob-${b.id}`);
      ageDecrypt(b.placements[0].location, out);
      const rel = b.name.replace(/^photos\//, '');
      expect(sha(readFileSync(out)), rel).toBe(sha(readFileSync(join(photos, rel))));
    }
  });

  describe('a packed volume', () => {
    let iso: string;
    beforeAll(() => {
      hearthJson(home, ['backup', '--pack']);
      const volume = hearthJson<any[]>(home, ['objects']).find((o) => o.kind === 'volume' && o.files === Object.keys(files).length);
      iso = join(work, 'volume.iso');
      ageDecrypt(volume.placements[0].location, iso);
    });

    it('isoinfo reports Rock Ridge and Joliet', () => {
      const info = execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' });
      expect(info).toMatch(/Rock Ridge signatures version \d+ found/);
      expect(info).toMatch(/Joliet with UCS level 3 found/);
    });

    const expectExtracted = (dir: string, joliet = false) => {
      for (const rel of Object.keys(files)) {
        if (joliet && rel.split('/').some((c) => c.length > 64)) continue;
        expect(sha(readFileSync(join(dir, 'photos', rel))), rel).toBe(sha(readFileSync(join(photos, rel))));
      }
    };

    it('xorriso lists and extracts every file byte-exact', () => {
      const list = execFileSync('xorriso', ['-indev', iso, '-find', '/', '-type', 'f', '-exec', 'lsdl', '--'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const rel of Object.keys(files)) expect(list).toContain(rel.split('/').pop());
      const out = join(work, 'xorriso-out');
      execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/', out], { stdio: 'ignore' });
      expectExtracted(out);
    });

    it('bsdtar extracts every file byte-exact', () => {
      const out = join(work, 'bsdtar-out');
      mkdirSync(out);
      execFileSync('bsdtar', ['-xf', iso, '-C', out]);
      expectExtracted(out);
    });

    it('7z extracts every file byte-exact (Joliet names)', () => {
      const out = join(work, '7z-out');
      execFileSync('7z', ['x', `-o${out}`, iso], { stdio: 'ignore' });
      expectExtracted(out, true);
    });
  });

  it('a file encrypted by the age CLI decrypts with Hearth\'s decryption', async () => {
    const { AgeDecryptStream } = await import('../storage/age/decrypt.ts');
    const { parseAgeSecretKey, ageRecipientString, x25519PublicFromSecret } = await import('../storage/keys.ts');
    const secret = parseAgeSecretKey(readFileSync(keyFile, 'utf8'));
    const plain = pseudoRandom(200_000, 7);
    const enc = execFileSync('age', ['-r', ageRecipientString(x25519PublicFromSecret(secret))], { input: plain });
    const chunks: Buffer[] = [];
    const d = new AgeDecryptStream(secret);
    d.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve, reject) => {
      d.on('end', resolve).on('error', reject);
      d.end(enc);
    });
    expect(Buffer.concat(chunks).equals(plain)).toBe(true);
  });
});
