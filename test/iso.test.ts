// IsoVolumeWriter checked by the Debian tools that will read its images: isoinfo,
// xorriso/osirrox (Rock Ridge via libisofs), bsdtar (Rock Ridge via libarchive) and
// 7z (Joliet).
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sectionCount, sectionLength } from '../storage/iso/hierarchy.ts';
import { ISO_SYMLINK_TARGET_MAX, IsoVolumeWriter, type IsoEntry, type IsoFileEntry } from '../storage/iso/writer.ts';
import { decodeFsName, encodeFsName } from '../storage/paths.ts';

const execFileAsync = promisify(execFile);

async function run(command: string, args: string[]): Promise<Buffer> {
  const { stdout } = await execFileAsync(command, args, { encoding: 'buffer', maxBuffer: 256 << 20 });
  return stdout;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A path under `root` as the exact bytes the Hearth path string stands for. */
const fsPath = (root: string, hearthPath: string) => Buffer.concat([Buffer.from(`${root}/`), encodeFsName(hearthPath)]);

async function hashFile(file: string | Buffer, start = 0, length?: number): Promise<string> {
  const hash = createHash('sha256');
  const end = length === undefined ? undefined : start + length - 1;
  if (length !== 0) await pipeline(fs.createReadStream(file, { start, end, highWaterMark: 1 << 20 }), hash);
  return hash.digest('hex');
}

async function writeImage(writer: IsoVolumeWriter, file: string): Promise<void> {
  await pipeline(writer.stream(), fs.createWriteStream(file));
}

interface ExpectedFile { kind: 'file'; content: Buffer; mode: number; mtimeMs: number }
interface ExpectedLink { kind: 'symlink'; target: string; mode: number; mtimeMs: number }
interface ExpectedDir { kind: 'dir'; mode: number; mtimeMs: number }
type Expected = ExpectedFile | ExpectedLink | ExpectedDir;

interface Found { kind: 'file' | 'symlink' | 'dir'; sha256?: string; target?: string; mode: number; mtimeSec: number }

/** Everything under `root`, keyed by Hearth path (names read as bytes). */
function walk(root: string): Map<string, Found> {
  const found = new Map<string, Found>();
  const visit = (relative: string) => {
    const dir = relative ? fsPath(root, relative) : Buffer.from(root);
    for (const nameBytes of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const rel = relative ? `${relative}/${decodeFsName(nameBytes)}` : decodeFsName(nameBytes);
      const full = fsPath(root, rel);
      const stat = fs.lstatSync(full);
      const common = { mode: stat.mode & 0o7777, mtimeSec: Math.floor(stat.mtimeMs / 1000) };
      if (stat.isSymbolicLink()) {
        found.set(rel, { kind: 'symlink', target: decodeFsName(fs.readlinkSync(full, { encoding: 'buffer' })), ...common });
      } else if (stat.isDirectory()) {
        found.set(rel, { kind: 'dir', ...common });
        visit(rel);
      } else {
        found.set(rel, { kind: 'file', sha256: sha256(fs.readFileSync(full)), ...common });
      }
    }
  };
  visit('');
  return found;
}

/** What `expected` should look like once extracted, for comparison with walk(). */
function expectedFound(expected: Map<string, Expected>, options: { symlinkMtimes: boolean }): Map<string, Found> {
  const out = new Map<string, Found>();
  for (const [p, e] of expected) {
    const mtimeSec = Math.floor(e.mtimeMs / 1000);
    if (e.kind === 'file') out.set(p, { kind: 'file', sha256: sha256(e.content), mode: e.mode, mtimeSec });
    else if (e.kind === 'dir') out.set(p, { kind: 'dir', mode: e.mode, mtimeSec });
    else out.set(p, { kind: 'symlink', target: e.target, mode: 0o777, mtimeSec: options.symlinkMtimes ? mtimeSec : -1 });
  }
  return out;
}

function withoutSymlinkMtimes(found: Map<string, Found>): Map<string, Found> {
  return new Map([...found].map(([p, f]) => [p, f.kind === 'symlink' ? { ...f, mtimeSec: -1 } : f]));
}

/** Lines of `xorriso -find ... -exec lsdl`: Rock Ridge path (as Hearth string) and size. */
function parseLsdl(stdout: Buffer): Map<string, number> {
  const listed = new Map<string, number>();
  let start = 0;
  for (let i = 0; i <= stdout.length; i++) {
    if (i < stdout.length && stdout[i] !== 0x0a) continue;
    const line = stdout.subarray(start, i);
    start = i + 1;
    const quote = line.indexOf(" '/");
    if (quote < 0 || line[line.length - 1] !== 0x27) continue;
    const fields = line.subarray(0, quote).toString('latin1').trim().split(/\s+/);
    listed.set(decodeFsName(line.subarray(quote + 3, line.length - 1)), Number(fields[4]));
  }
  return listed;
}

/**
 * Walks the primary hierarchy's records and Rock Ridge continuation chains, checking
 * the two placement rules the bsdtar/xorriso checks cannot see but Linux enforces:
 * no directory record crosses a sector, no Continuation Area crosses a sector.
 */
function primaryLayoutProblems(image: string): { problems: string[]; continuationSectors: Set<number> } {
  const fd = fs.openSync(image, 'r');
  const readAt = (offset: number, length: number) => {
    const bytes = Buffer.alloc(length);
    fs.readSync(fd, bytes, 0, length, offset);
    return bytes;
  };
  const problems: string[] = [];
  const continuationSectors = new Set<number>();
  const checkSusp = (area: Buffer, where: string) => {
    for (let at = 0; at + 4 <= area.length && area[at + 2]! >= 4; at += area[at + 2]!) {
      if (area.toString('latin1', at, at + 2) !== 'CE') continue;
      const [lba, offset, length] = [area.readUInt32LE(at + 4), area.readUInt32LE(at + 12), area.readUInt32LE(at + 20)];
      if (offset + length > 2048) problems.push(`continuation area of ${where} crosses a sector`);
      continuationSectors.add(lba);
      checkSusp(readAt(lba * 2048 + offset, length), where);
    }
  };
  const root = readAt(16 * 2048 + 156, 34);
  const queue = [{ lba: root.readUInt32LE(2), size: root.readUInt32LE(10) }];
  for (let next = queue.shift(); next; next = queue.shift()) {
    const extent = readAt(next.lba * 2048, next.size);
    for (let sector = 0; sector < extent.length; sector += 2048) {
      for (let at = sector; at < sector + 2048 && extent[at] !== 0; at += extent[at]!) {
        const record = extent.subarray(at, at + extent[at]!);
        const idLength = record[32]!;
        const where = `record at sector ${next.lba + sector / 2048} offset ${at - sector}`;
        if (at + record.length > sector + 2048) problems.push(`${where} crosses a sector`);
        const isSelfOrParent = idLength === 1 && record[33]! <= 1;
        if (record[25]! & 2 && !isSelfOrParent) queue.push({ lba: record.readUInt32LE(2), size: record.readUInt32LE(10) });
        checkSusp(record.subarray(33 + idLength + (idLength % 2 === 0 ? 1 : 0)), where);
      }
    }
  }
  fs.closeSync(fd);
  return { problems, continuationSectors };
}

/** Joliet name rule from docs/iso-volume.md, for names with no collision. */
function jolietName(name: string): string {
  const clean = [...name].map((ch) => (/[\udc80-\udcff*/:;?\\]/.test(ch) || ch < ' ' ? '_' : ch)).join('');
  if (clean.length <= 64) return clean;
  const dot = clean.lastIndexOf('.');
  const ext = clean.slice(dot + 1);
  return dot > 0 && ext.length <= 15 ? `${clean.slice(0, 64 - ext.length - 1)}.${ext}` : clean.slice(0, 64);
}

describe('IsoVolumeWriter on a varied tree', () => {
  let work: string;
  let src: string;
  let image: string;
  let writer: IsoVolumeWriter;
  const expected = new Map<string, Expected>();
  const entries: IsoEntry[] = [];
  const base = Date.UTC(2023, 4, 17, 9, 30, 0);
  const collideOne = `collide-${'x'.repeat(70)}-one.txt`;
  const collideTwo = `collide-${'x'.repeat(70)}-two.txt`;
  const deepDir = Array.from({ length: 12 }, (_, i) => `level${i + 1}`).join('/');
  const longTarget = `../${Array.from({ length: 12 }, (_, i) => `segment-number-${i}-of-a-long-link-target`).join('/')}/end.txt`;

  const addFile = (p: string, content: Buffer, mode = 0o644) => {
    const mtimeMs = base + expected.size * 61_000;
    expected.set(p, { kind: 'file', content, mode, mtimeMs });
  };
  const addLink = (p: string, target: string) => {
    expected.set(p, { kind: 'symlink', target, mode: 0o777, mtimeMs: base - expected.size * 3_600_000 });
  };

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-iso-'));
    src = path.join(work, 'src');
    image = path.join(work, 'tree.iso');

    addFile('hello.txt', Buffer.from('hello, iso!\n'));
    for (const size of [0, 1, 2047, 2048, 2049]) addFile(`sizes/s${size}.bin`, randomBytes(size), 0o600);
    addFile('sizes/multi-mb.bin', randomBytes(3 * 1024 * 1024 + 17), 0o640);
    addFile('Fotos/Été 2024/Strand – Bild ü.jpeg', randomBytes(5000));
    addFile('Fotos/🎉 Party.jpg', randomBytes(300));
    addFile('日本語/写真.png', randomBytes(77));
    addFile(`long/${'a'.repeat(100)}.jpg`, randomBytes(10));
    addFile(`long/${'ö'.repeat(110)}.png`, randomBytes(11));
    addFile(`long/${'n'.repeat(251)}.bin`, randomBytes(12));
    addFile(`long/${collideOne}`, randomBytes(13));
    addFile(`long/${collideTwo}`, randomBytes(14));
    addFile('raw/caf\udce9.txt', Buffer.from('latin-1 name\n'));
    addFile('raw/\udcff\udcfe.bin', randomBytes(3), 0o755);
    for (let i = 0; i < 20; i++) addFile(`longnames/photo-${String(i).padStart(2, '0')}-${'ü'.repeat(95)}.jpg`, randomBytes(i));
    for (let i = 0; i < 300; i++) addFile(`many/IMG_2024-06-${String(i).padStart(4, '0')}_holiday.jpg`, randomBytes(i % 7));
    addFile(`deep/${deepDir}/leaf.txt`, Buffer.from('deep\n'));
    addLink('links/rel', '../hello.txt');
    addLink('links/abs', '/etc/hostname');
    addLink('links/long', longTarget);
    addLink('links/raw', '../raw/caf\udce9.txt');
    // The most Rock Ridge bytes one record can need: a 255-byte name and a target of
    // the longest length libisofs reads, made of one-letter components.
    addLink(`links/${'w'.repeat(255)}`, `${'a/'.repeat(511)}a`);
    expected.set('Fotos', { kind: 'dir', mode: 0o750, mtimeMs: Date.UTC(2020, 0, 2, 3, 4, 5) });

    for (const [p, e] of expected) {
      fs.mkdirSync(fsPath(src, p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : ''), { recursive: true });
      if (e.kind === 'file') {
        const full = fsPath(src, p);
        fs.writeFileSync(full, e.content);
        entries.push({
          type: 'file', path: p, size: e.content.length, mtimeMs: e.mtimeMs, mode: e.mode,
          expectedSha256: sha256(e.content), open: () => fs.createReadStream(full),
        });
      } else if (e.kind === 'symlink') {
        entries.push({ type: 'symlink', path: p, target: e.target, mtimeMs: e.mtimeMs, mode: e.mode });
      } else {
        entries.push({ type: 'dir', path: p, mtimeMs: e.mtimeMs, mode: e.mode });
      }
    }
    // Directories no entry names get the volume time and 0755.
    const createdMs = Date.UTC(2024, 11, 24, 18, 0, 0);
    for (const p of [...expected.keys()]) {
      for (let slash = p.indexOf('/'); slash >= 0; slash = p.indexOf('/', slash + 1)) {
        const dir = p.slice(0, slash);
        if (!expected.has(dir)) expected.set(dir, { kind: 'dir', mode: 0o755, mtimeMs: createdMs });
      }
    }
    writer = new IsoVolumeWriter(entries, { volumeId: 'Family Photos 2024', createdMs });
    await writeImage(writer, image);
  });

  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('announces its size before streaming, and writes exactly that many bytes', async () => {
    expect(fs.statSync(image).size).toBe(writer.size);
    expect(writer.size % 2048).toBe(0);
    const result = await writer.result;
    expect(result.mismatched).toEqual([]);
    for (const entry of entries) {
      if (entry.type === 'file') expect(result.fileSha256.get(entry.path)).toBe(entry.expectedSha256);
    }
  });

  it('is reported by isoinfo as ISO 9660 with Rock Ridge and Joliet', async () => {
    const info = (await run('isoinfo', ['-d', '-i', image])).toString();
    expect(info).toMatch(/Volume id: FAMILY_PHOTOS_2024/);
    expect(info).toMatch(/Joliet with UCS level 3 found/);
    expect(info).toMatch(/Rock Ridge signatures version 1 found/);
  });

  it('has primary names that are unique ISO 9660 d-character identifiers', async () => {
    const primary = (await run('isoinfo', ['-f', '-i', image])).toString('latin1').trim().split('\n');
    expect(new Set(primary).size).toBe(primary.length);
    expect(primary.length).toBe(expected.size);
    for (const p of primary) {
      for (const component of p.slice(1).split('/')) {
        if (component.endsWith(';1')) {
          expect(component).toMatch(/^[A-Z0-9_]+\.[A-Z0-9_]*;1$/);
          expect(component.length - 3).toBeLessThanOrEqual(30);
        } else {
          expect(component).toMatch(/^[A-Z0-9_]{1,31}$/);
        }
      }
    }
  });

  it('lists every file with its Rock Ridge name and size in xorriso', async () => {
    const listed = parseLsdl(await run('xorriso', ['-indev', image, '-find', '/', '-type', 'f', '-exec', 'lsdl', '--']));
    const files = [...expected].filter(([, e]) => e.kind === 'file') as Array<[string, ExpectedFile]>;
    expect(listed).toEqual(new Map(files.map(([p, e]) => [p, e.content.length])));
  });

  it('extracts byte-exact with names, modes, mtimes and symlinks through bsdtar', async () => {
    const out = path.join(work, 'bsdtar');
    fs.mkdirSync(out);
    await run('bsdtar', ['-xpf', image, '-C', out]);
    expect(walk(out)).toEqual(expectedFound(expected, { symlinkMtimes: true }));
    fs.rmSync(out, { recursive: true });
  });

  it('extracts byte-exact with names, modes, mtimes and symlinks through osirrox', async () => {
    const out = path.join(work, 'osirrox');
    await run('osirrox', ['-indev', image, '-extract', '/', out]);
    // osirrox does not set the mtime of symlinks it creates.
    expect(withoutSymlinkMtimes(walk(out))).toEqual(expectedFound(expected, { symlinkMtimes: false }));
    fs.rmSync(out, { recursive: true });
  });

  it('extracts the Joliet tree through 7z with names cut to 64 characters', async () => {
    const out = path.join(work, '7z');
    await run('7z', ['x', `-o${out}`, image]);
    const want = new Map<string, { sha256: string; mtimeSec: number }>();
    for (const [p, e] of expected) {
      if (e.kind !== 'file') continue;
      const parts = p.split('/').map(jolietName);
      if (p.endsWith(collideTwo)) parts[parts.length - 1] = `collide-${'x'.repeat(50)}~1.txt`;
      want.set(parts.join('/'), { sha256: sha256(e.content), mtimeSec: Math.floor(e.mtimeMs / 1000) });
    }
    const got = new Map(
      [...walk(out)].filter(([, f]) => f.kind === 'file').map(([p, f]) => [p, { sha256: f.sha256!, mtimeSec: f.mtimeSec }]),
    );
    expect(got).toEqual(want);
    expect([...walk(out).values()].some((f) => f.kind === 'symlink')).toBe(false);
    fs.rmSync(out, { recursive: true });
  });

  it('lays directories out over several sectors when they need it', async () => {
    const listing = (await run('bsdtar', ['-tvf', image])).toString();
    const many = listing.split('\n').find((line) => line.startsWith('d') && line.endsWith(' many'));
    expect(Number(many!.trim().split(/\s+/)[4])).toBeGreaterThan(2048 * 4);
  });

  it('keeps directory records and Rock Ridge continuation areas within sectors', () => {
    const { problems, continuationSectors } = primaryLayoutProblems(image);
    expect(problems).toEqual([]);
    expect(continuationSectors.size).toBeGreaterThan(1);
  });

  it('passes xorriso -check_media', async () => {
    const report = (await run('xorriso', ['-indev', image, '-check_media', '--'])).toString();
    expect(report).toMatch(/Media region :\s+0 ,\s+\d+ , \+ good/);
    expect(report).not.toMatch(/Media region :.* - /);
  });

  it("gives each file's bytes as one range of the image", async () => {
    for (const entry of entries) {
      if (entry.type !== 'file') continue;
      const extent = writer.extent(entry.path)!;
      expect(extent.length).toBe(entry.size);
      expect(await hashFile(image, extent.offset, extent.length)).toBe(entry.expectedSha256);
    }
    expect(writer.extent('links/rel')).toBeUndefined();
    expect(writer.extent('Fotos')).toBeUndefined();
    expect(writer.extent('no/such/file')).toBeUndefined();
  });

  it('writes the same bytes again for the same entries and options', async () => {
    const again = new IsoVolumeWriter(entries, { volumeId: 'Family Photos 2024', createdMs: Date.UTC(2024, 11, 24, 18, 0, 0) });
    const hash = createHash('sha256');
    await pipeline(again.stream(), hash);
    expect(hash.digest('hex')).toBe(await hashFile(image));
  });
});

describe('IsoVolumeWriter when files change during the pack', () => {
  let work: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-iso-change-'));
  });
  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it.each(['stream', 'file'] as const)('pads or cuts changed files, reports them, and keeps every other file exact (read by %s)', async (how) => {
    const dir = path.join(work, how);
    const scanned = new Map<string, Buffer>([
      ['ok/a.txt', Buffer.from('alpha\n')],
      ['grow.txt', randomBytes(1000)],
      ['ok/b.bin', randomBytes(100_000)],
      ['shrink.bin', randomBytes(5000)],
      ['vanish.txt', randomBytes(10)],
      ['changed.txt', randomBytes(64)],
      ['ok/c.txt', randomBytes(4096)],
    ]);
    const mtimeMs = Date.UTC(2022, 2, 3);
    const entries: IsoFileEntry[] = [...scanned].map(([p, content]) => {
      const full = path.join(dir, p);
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.writeFileSync(full, content);
      const entry = { type: 'file' as const, path: p, size: content.length, mtimeMs, mode: 0o644, expectedSha256: sha256(content) };
      return how === 'stream' ? { ...entry, open: () => fs.createReadStream(full) } : { ...entry, file: full };
    });
    // Unreadable: a stream that fails to open, or a path that became a symlink (never followed).
    fs.symlinkSync('ok/a.txt', path.join(dir, 'denied.txt'));
    entries.push(how === 'stream'
      ? { type: 'file', path: 'denied.txt', size: 7, mtimeMs, mode: 0o644, open: () => { throw new Error('EACCES: permission denied'); } }
      : { type: 'file', path: 'denied.txt', size: 7, mtimeMs, mode: 0o644, file: path.join(dir, 'denied.txt') });
    const writer = new IsoVolumeWriter(entries, { volumeId: 'changes' });

    // The files change after the scan, before the pack reads them.
    fs.appendFileSync(path.join(dir, 'grow.txt'), randomBytes(500));
    const shrunk = randomBytes(1200);
    fs.writeFileSync(path.join(dir, 'shrink.bin'), shrunk);
    fs.unlinkSync(path.join(dir, 'vanish.txt'));
    fs.writeFileSync(path.join(dir, 'changed.txt'), randomBytes(64));

    const image = path.join(dir, 'changes.iso');
    await writeImage(writer, image);
    const result = await writer.result;
    const reasons = new Map(result.mismatched.map((m) => [m.path, m.reason]));
    expect([...reasons.keys()].sort()).toEqual(['changed.txt', 'denied.txt', 'grow.txt', 'shrink.bin', 'vanish.txt']);
    expect(reasons.get('grow.txt')).toMatch(/^grew/);
    expect(reasons.get('shrink.bin')).toMatch(/^shrank: 1200 of 5000/);
    expect(reasons.get('vanish.txt')).toMatch(/^unreadable after 0 of 10 bytes \(ENOENT/);
    expect(reasons.get('denied.txt')).toMatch(how === 'stream' ? /^unreadable after 0 of 7 bytes \(EACCES/ : /^unreadable after 0 of 7 bytes \(ELOOP/);
    expect(reasons.get('changed.txt')).toMatch(/^changed: SHA-256/);
    expect(fs.statSync(image).size).toBe(writer.size);

    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    await run('bsdtar', ['-xf', image, '-C', out]);
    const read = (p: string) => fs.readFileSync(path.join(out, p));
    for (const p of ['ok/a.txt', 'ok/b.bin', 'ok/c.txt']) {
      expect(read(p).equals(scanned.get(p)!)).toBe(true);
      expect(result.fileSha256.get(p)).toBe(sha256(scanned.get(p)!));
    }
    expect(read('grow.txt').equals(fs.readFileSync(path.join(dir, 'grow.txt')).subarray(0, 1000))).toBe(true);
    expect(read('shrink.bin').equals(Buffer.concat([shrunk, Buffer.alloc(3800)]))).toBe(true);
    expect(read('vanish.txt').equals(Buffer.alloc(10))).toBe(true);
    expect(read('denied.txt').equals(Buffer.alloc(7))).toBe(true);
    expect(result.fileSha256.get('shrink.bin')).toBe(sha256(read('shrink.bin')));

    const listed = parseLsdl(await run('xorriso', ['-indev', image, '-find', '/', '-type', 'f', '-exec', 'lsdl', '--']));
    expect(new Map([...listed].sort())).toEqual(new Map(entries.map((e) => [e.path, e.size] as [string, number]).sort()));
  });

  it('reports a file read by path whose times or inode changed, with no hash to compare', async () => {
    const dir = path.join(work, 'scanned');
    fs.mkdirSync(dir);
    const entries: IsoFileEntry[] = ['same.bin', 'touched.bin', 'replaced.bin'].map((p) => {
      const full = path.join(dir, p);
      fs.writeFileSync(full, randomBytes(3000));
      const st = fs.statSync(full);
      return { type: 'file', path: p, size: st.size, mtimeMs: st.mtimeMs, mode: 0o644, file: full, scanned: { mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino } };
    });
    fs.utimesSync(path.join(dir, 'touched.bin'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    fs.writeFileSync(path.join(dir, 'new.bin'), randomBytes(3000));
    fs.renameSync(path.join(dir, 'new.bin'), path.join(dir, 'replaced.bin'));
    const writer = new IsoVolumeWriter(entries, { volumeId: 'scanned' });
    const hash = createHash('sha256');
    await pipeline(writer.stream(), hash);
    const result = await writer.result;
    expect(result.mismatched.map((m) => [m.path, m.reason]).sort()).toEqual([
      ['replaced.bin', 'changed while it was being packed'],
      ['touched.bin', 'changed while it was being packed'],
    ]);
    expect(result.fileSha256.get('same.bin')).toBe(sha256(fs.readFileSync(path.join(dir, 'same.bin'))));
  });
});

describe('IsoVolumeWriter streaming', () => {
  it('reads a file only as fast as the image is consumed', async () => {
    const size = 64 * 1024 * 1024;
    let pulled = 0;
    const source = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        const chunk = Buffer.alloc(Math.min(64 * 1024, size - pulled), 7);
        pulled += chunk.length;
        this.push(chunk.length > 0 ? chunk : null);
      },
    });
    const writer = new IsoVolumeWriter(
      [{ type: 'file', path: 'big.bin', size, mtimeMs: 0, mode: 0o644, open: () => source }],
      { volumeId: 'pressure' },
    );
    const image = writer.stream();
    const dataStart = writer.extent('big.bin')!.offset;
    let received = 0;
    await new Promise<void>((resolve) => {
      image.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > dataStart + 1024 * 1024) {
          image.pause();
          resolve();
        }
      });
    });
    // Nothing reads the image now; give the writer every chance to run ahead.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(pulled).toBeGreaterThan(1024 * 1024);
    expect(pulled).toBeLessThan(4 * 1024 * 1024);
    image.destroy();
    await expect(writer.result).rejects.toThrow(/closed before the image was complete/);
  });

  it('fills a caller\'s buffers with the same bytes it streams', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-iso-fill-'));
    try {
      const sizes = [0, 1, 2047, 2048, 2049, 70_000, 1_500_000];
      const entries: IsoFileEntry[] = sizes.map((size, i) => {
        const full = path.join(dir, `f${i}`);
        fs.writeFileSync(full, randomBytes(size));
        return { type: 'file', path: `d/f${i}`, size, mtimeMs: 0, mode: 0o644, file: full };
      });
      const streamed = createHash('sha256');
      await pipeline(new IsoVolumeWriter(entries, { volumeId: 'fill' }).stream(), streamed);
      const writer = new IsoVolumeWriter(entries, { volumeId: 'fill' });
      const image = writer.stream();
      const filled = createHash('sha256');
      // Odd buffer sizes, so files and sectors straddle fills.
      let total = 0;
      for (let n = 1, size = 1000; n > 0; size = size * 3 + 1) {
        const target = new Uint8Array(Math.min(size, 300_000));
        n = await image.fill(target);
        filled.update(target.subarray(0, n));
        total += n;
        if (n < target.length) break;
      }
      expect(total).toBe(writer.size);
      expect(filled.digest('hex')).toBe(streamed.digest('hex'));
      expect((await writer.result).mismatched).toEqual([]);
      expect(await image.fill(new Uint8Array(10))).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is named by a digest of its metadata and its files\' hashes, which any changed byte changes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-iso-digest-'));
    try {
      const contents = [randomBytes(5000), randomBytes(1), randomBytes(70_000)];
      const entries: IsoFileEntry[] = contents.map((content, i) => {
        const full = path.join(dir, `f${i}`);
        fs.writeFileSync(full, content);
        return { type: 'file', path: `d/f${i}`, size: content.length, mtimeMs: 0, mode: 0o644, file: full };
      });
      const imageDigest = async (): Promise<{ image: Buffer; digest: string; result: string }> => {
        const writer = new IsoVolumeWriter(entries, { volumeId: 'digest', createdMs: 0 });
        const stream = writer.stream();
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        return { image: Buffer.concat(chunks), digest: stream.digest(), result: (await writer.result).imageDigest };
      };
      const first = await imageDigest();
      expect(first.result).toBe(first.digest);
      // Recomputed from the image alone: the metadata (everything before the first
      // file), then each file's SHA-256 in the order the files lie in the image.
      const writer = new IsoVolumeWriter(entries, { volumeId: 'digest', createdMs: 0 });
      const extents = entries.map((e) => writer.extent(e.path)!).sort((a, b) => a.offset - b.offset);
      const expected = createHash('sha256').update('hearth iso image digest v1\n').update(first.image.subarray(0, extents[0]!.offset));
      for (const { offset, length } of extents) expected.update(createHash('sha256').update(first.image.subarray(offset, offset + length)).digest());
      expect(first.digest).toBe(expected.digest('hex'));

      expect((await imageDigest()).digest).toBe(first.digest);
      const changed = Buffer.from(contents[2]!);
      changed[69_999]! ^= 1;
      fs.writeFileSync(path.join(dir, 'f2'), changed);
      expect((await imageDigest()).digest).not.toBe(first.digest);
      expect(() => new IsoVolumeWriter(entries, { volumeId: 'digest' }).stream().digest()).toThrow(/only once the whole image was read/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('can be streamed only once', () => {
    const writer = new IsoVolumeWriter([], { volumeId: 'once' });
    writer.stream().destroy();
    expect(() => writer.stream()).toThrow(/already called/);
  });

  it('refuses entries that cannot form one tree', () => {
    const file = (p: string): IsoEntry => ({ type: 'file', path: p, size: 0, mtimeMs: 0, mode: 0o644, open: () => Readable.from([]) });
    expect(() => new IsoVolumeWriter([file('a'), file('a')], { volumeId: 'x' })).toThrow(/listed twice/);
    expect(() => new IsoVolumeWriter([file('a'), file('a/b')], { volumeId: 'x' })).toThrow(/both as a file and as a directory/);
    expect(() => new IsoVolumeWriter([file('a/../b')], { volumeId: 'x' })).toThrow(/not a plain relative path/);
    expect(() => new IsoVolumeWriter([file('/abs')], { volumeId: 'x' })).toThrow(/not a plain relative path/);
    expect(() => new IsoVolumeWriter([file('n'.repeat(256))], { volumeId: 'x' })).toThrow(/longer than 255 bytes/);
    const link = (target: string): IsoEntry => ({ type: 'symlink', path: 'l', target, mtimeMs: 0, mode: 0o777 });
    expect(() => new IsoVolumeWriter([link('t'.repeat(ISO_SYMLINK_TARGET_MAX + 1))], { volumeId: 'x' })).toThrow(/over-long/);
    expect(() => new IsoVolumeWriter([{ type: 'file', path: 'f', size: 0, mtimeMs: 0, mode: 0o644 }], { volumeId: 'x' })).toThrow(/exactly one of file/);
  });
});

describe('IsoVolumeWriter with a file over 4 GiB', () => {
  const size = 4.5 * 2 ** 30 + 123;
  const marks: Array<[number, string]> = [[0, 'HEAD'], [2 ** 32 - 3, 'NEAR-4-GIB'], [2 ** 32 + 2048, 'PAST-4-GIB'], [size - 5, 'TAIL!']];
  let work: string;
  let source: string;
  let sourceSha256: string;
  let entries: IsoEntry[];

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-iso-big-'));
    source = path.join(work, 'big.src');
    fs.writeFileSync(source, '');
    fs.truncateSync(source, size);
    const fd = fs.openSync(source, 'r+');
    for (const [at, text] of marks) fs.writeSync(fd, Buffer.from(text), 0, text.length, at);
    fs.closeSync(fd);
    sourceSha256 = await hashFile(source);
    const small = (p: string, content: string): IsoEntry => ({
      type: 'file', path: p, size: content.length, mtimeMs: Date.UTC(2021, 0, 1), mode: 0o644, open: () => Readable.from([Buffer.from(content)]),
    });
    entries = [
      small('before.txt', 'before\n'),
      { type: 'file', path: 'videos/big.bin', size, mtimeMs: Date.UTC(2022, 5, 6), mode: 0o644, open: () => fs.createReadStream(source, { highWaterMark: 1 << 20 }) },
      small('after.txt', 'after\n'),
    ];
  });
  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('splits the extent at 4 GiB - 2048 byte multiples', () => {
    expect(sectionCount(2 ** 32 - 1)).toBe(1);
    expect([sectionCount(2 ** 32), sectionLength(2 ** 32, 0), sectionLength(2 ** 32, 1)]).toEqual([2, 0xfffff800, 2048]);
    expect([sectionCount(size), sectionLength(size, 0), sectionLength(size, 1)]).toEqual([2, 0xfffff800, size - 0xfffff800]);
  });

  it('is read whole from a pipe by bsdtar', async () => {
    const writer = new IsoVolumeWriter(entries, { volumeId: 'big' });
    const bsdtar = spawn('bsdtar', ['-xOf', '-', 'videos/big.bin'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const extracted = createHash('sha256');
    const exited = new Promise<number | null>((resolve) => bsdtar.on('close', resolve));
    const hashed = pipeline(bsdtar.stdout, extracted);
    // bsdtar may stop reading once it has what it asked for.
    await pipeline(writer.stream(), bsdtar.stdin).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
    await hashed;
    expect(await exited).toBe(0);
    expect(extracted.digest('hex')).toBe(sourceSha256);
  }, 600_000);

  it('is listed, checked and extracted by xorriso and 7z from a sparse image file', async () => {
    const writer = new IsoVolumeWriter(entries, { volumeId: 'big' });
    const image = path.join(work, 'big.iso');
    // Zero chunks are skipped, so the image file is as sparse as the source.
    const fd = fs.openSync(image, 'w');
    const zeros = Buffer.alloc(4 << 20);
    let position = 0;
    await pipeline(writer.stream(), new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (!(chunk.length <= zeros.length && chunk.equals(zeros.subarray(0, chunk.length)))) fs.writeSync(fd, chunk, 0, chunk.length, position);
        position += chunk.length;
        done();
      },
    }));
    fs.ftruncateSync(fd, position);
    fs.closeSync(fd);
    expect(position).toBe(writer.size);
    const result = await writer.result;
    expect(result.mismatched).toEqual([]);
    expect(result.fileSha256.get('videos/big.bin')).toBe(sourceSha256);

    const extent = writer.extent('videos/big.bin')!;
    expect(extent.length).toBe(size);
    expect(await hashFile(image, extent.offset, extent.length)).toBe(sourceSha256);
    const imageFd = fs.openSync(image, 'r');
    for (const [at, text] of marks) {
      const got = Buffer.alloc(text.length);
      fs.readSync(imageFd, got, 0, text.length, extent.offset + at);
      expect(got.toString()).toBe(text);
    }
    fs.closeSync(imageFd);

    const listed = parseLsdl(await run('xorriso', ['-indev', image, '-find', '/', '-type', 'f', '-exec', 'lsdl', '--']));
    expect(listed).toEqual(new Map([['after.txt', 6], ['before.txt', 7], ['videos/big.bin', size]]));
    const report = (await run('xorriso', ['-indev', image, '-check_media', '--'])).toString();
    expect(report).toMatch(/Media region :\s+0 ,\s+\d+ , \+ good/);

    const out = path.join(work, 'out');
    await run('xorriso', ['-osirrox', 'on:sparse=1m', '-indev', image, '-extract', '/', out]);
    expect(await hashFile(path.join(out, 'videos/big.bin'))).toBe(sourceSha256);
    expect(fs.readFileSync(path.join(out, 'after.txt'), 'utf8')).toBe('after\n');
    expect(fs.statSync(path.join(out, 'videos/big.bin')).mtimeMs).toBe(Date.UTC(2022, 5, 6));
    fs.rmSync(out, { recursive: true });

    const sevenZip = spawn('7z', ['e', '-so', image, 'videos/big.bin'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const viaJoliet = createHash('sha256');
    await pipeline(sevenZip.stdout, viaJoliet);
    expect(viaJoliet.digest('hex')).toBe(sourceSha256);
    fs.rmSync(image);
  }, 600_000);
});
