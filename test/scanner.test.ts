import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import diagnosticsChannel from 'node:diagnostics_channel';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { comparePaths, decodeFsName, encodeFsName } from '../storage/paths.ts';
import { DEFAULT_IGNORES, scanSource } from '../storage/scanner/scanner.ts';
import type { PreviousFile, ScanEvent, ScannedFile, ScanOptions } from '../storage/scanner/scanner.ts';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'hearth-scanner-'));
});

afterEach(() => {
  chmodSync(root, 0o700);
  rmSync(root, { recursive: true, force: true });
});

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function write(rel: string, content: string | Buffer): void {
  const full = join(root, rel);
  mkdirSync(join(full, '..'), { recursive: true });
  writeFileSync(full, content);
}

async function* listed(previous: PreviousFile[]): AsyncGenerator<PreviousFile> {
  yield* previous;
}

async function scan(previous: PreviousFile[] = [], options: Partial<ScanOptions> = {}): Promise<ScanEvent[]> {
  const events: ScanEvent[] = [];
  for await (const event of scanSource({ root, previous: listed(previous), ...options })) events.push(event);
  return events;
}

function entries(events: ScanEvent[]): ScannedFile[] {
  return events.flatMap((e) => (e.kind === 'new' || e.kind === 'changed' || e.kind === 'unchanged' ? [e.entry] : []));
}

/** What the catalog would hand back after recording a scan: its entries, sorted by pathSortKey. */
function asPrevious(events: ScanEvent[]): PreviousFile[] {
  return entries(events)
    .map(({ path, type, size, mtimeMs, ctimeMs, ino, mode, hash, target }) => ({ path, type, size, mtimeMs, ctimeMs, ino, mode, hash, target }))
    .sort((a, b) => comparePaths(a.path, b.path));
}

function eventPath(e: ScanEvent): string {
  return e.kind === 'deleted' || e.kind === 'error' ? e.path : e.entry.path;
}

function byPath(events: ScanEvent[]): Map<string, ScanEvent> {
  return new Map(events.map((e) => [eventPath(e), e]));
}

function kinds(events: ScanEvent[]): Record<string, string> {
  return Object.fromEntries(events.map((e) => [eventPath(e), e.kind]));
}

describe('change detection', () => {
  it('reports new, changed, unchanged and deleted entries across two scans, hashing only what changed', async () => {
    write('keep.jpg', 'keep');
    write('grow.jpg', 'small');
    write('touched.jpg', 'same bytes');
    write('gone.jpg', 'bye');
    write('album/chmod.jpg', 'mode');
    write('album/inner/keep2.jpg', 'keep2');
    mkdirSync(join(root, 'empty-dir'));

    const first = await scan();
    expect(first.every((e) => e.kind === 'new')).toBe(true);
    expect(entries(first).map((e) => e.path)).toEqual([
      'album',
      'album/chmod.jpg',
      'album/inner',
      'album/inner/keep2.jpg',
      'empty-dir',
      'gone.jpg',
      'grow.jpg',
      'keep.jpg',
      'touched.jpg',
    ]);
    for (const e of entries(first)) {
      if (e.type === 'file') expect(e.hash).toBe(sha256(readFileSync(join(root, e.path))));
      else expect(e.hash).toBeUndefined();
    }
    expect(entries(first).find((e) => e.path === 'empty-dir')!.type).toBe('dir');

    appendFileSync(join(root, 'grow.jpg'), ' and more');
    utimesSync(join(root, 'touched.jpg'), new Date('2020-01-01'), new Date('2020-01-01'));
    unlinkSync(join(root, 'gone.jpg'));
    chmodSync(join(root, 'album/chmod.jpg'), 0o600);
    write('album/added.jpg', 'added');

    // A hash the scanner could never compute: if an unchanged file were re-read, it would be replaced.
    const previous = asPrevious(first).map((p) => (p.path === 'keep.jpg' ? { ...p, hash: 'f'.repeat(64) } : p));
    const hashed: string[] = [];
    const second = await scan(previous, { onHashStart: (path) => void hashed.push(path) });

    expect(kinds(second)).toEqual({
      album: 'unchanged', // a file was added inside it: that entry is reported, not the folder
      'album/added.jpg': 'new',
      'album/chmod.jpg': 'changed',
      'album/inner': 'unchanged',
      'album/inner/keep2.jpg': 'unchanged',
      'empty-dir': 'unchanged',
      'gone.jpg': 'deleted',
      'grow.jpg': 'changed',
      'keep.jpg': 'unchanged',
      'touched.jpg': 'changed',
    });
    expect(hashed.sort()).toEqual(['album/added.jpg', 'album/chmod.jpg', 'grow.jpg', 'touched.jpg']);
    const found = byPath(second);
    const entryOf = (path: string) => (found.get(path) as { entry: ScannedFile }).entry;
    expect(entryOf('keep.jpg').hash).toBe('f'.repeat(64));
    expect(entryOf('grow.jpg').hash).toBe(sha256('small and more'));
    expect(entryOf('touched.jpg').hash).toBe(sha256('same bytes'));
    expect(entryOf('album/chmod.jpg').mode & 0o777).toBe(0o600);

    const third = await scan(asPrevious(second));
    expect(third.every((e) => e.kind === 'unchanged')).toBe(true);
    expect(third).toHaveLength(entries(second).length);
  });

  it('hashes a previous entry without a hash even if its metadata matches', async () => {
    write('a.jpg', 'content');
    const previous = asPrevious(await scan()).map((p) => ({ ...p, hash: undefined }));
    const [event] = await scan(previous);
    expect(event).toMatchObject({ kind: 'changed', entry: { path: 'a.jpg', hash: sha256('content') } });
  });

  it('hashes many files of mixed sizes on several workers and keeps path order', async () => {
    const expected = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const content = Buffer.alloc((i * 7919) % 50_000, i % 251);
      const rel = `d${i % 7}/f${String(i).padStart(3, '0')}`;
      write(rel, content);
      expected.set(rel, sha256(content));
    }
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0xab);
    write('d3/big.bin', big);
    expected.set('d3/big.bin', sha256(big));

    const events = await scan([], { hashConcurrency: 2 });
    const files = entries(events).filter((e) => e.type === 'file');
    expect(new Map(files.map((f) => [f.path, f.hash]))).toEqual(expected);
    const paths = events.map(eventPath);
    expect(paths).toEqual([...paths].sort(comparePaths));
  });

  it('reads the previous state as a stream, a batch of entries ahead of the walk at most', async () => {
    write('keep.txt', 'x');
    const previous: PreviousFile[] = [];
    for (let i = 0; i < 5000; i++) previous.push({ path: `gone/${String(i).padStart(5, '0')}`, type: 'file', size: 1, mtimeMs: 1, ctimeMs: 1, ino: i + 1, mode: 0o100644, hash: EMPTY_SHA256 });
    let pulled = 0;
    let emitted = 0;
    let maxAhead = 0;
    const counting = (async function* () {
      for (const p of previous) {
        pulled++;
        yield p;
      }
    })();
    for await (const event of scanSource({ root, previous: counting })) {
      emitted++;
      maxAhead = Math.max(maxAhead, pulled - emitted);
      expect(event.kind).toBe(eventPath(event) === 'keep.txt' ? 'new' : 'deleted');
    }
    expect(emitted).toBe(5001);
    // Events travel in batches of at most 512, so the previous state is never read far ahead.
    expect(maxAhead).toBeLessThanOrEqual(514);
  });
});

describe('order', () => {
  it('emits entries and deletions in comparePaths order, including "a/b" before "a.b" and raw byte names', async () => {
    const rawNames = [Buffer.from([0x66, 0xff]), Buffer.from([0x66, 0x80, 0x41]), Buffer.from('f\u00e9', 'utf8')];
    write('a/b', '1');
    write('a.b', '2');
    write('a-', '3');
    write('a0', '4');
    write('B', '5');
    write('a/b.c/d', '6');
    write('\u65e5\u672c/\u5199\u771f.jpg', '7');
    for (const raw of rawNames) writeFileSync(Buffer.concat([encodeFsName(root), Buffer.from('/'), raw]), raw);

    const first = await scan();
    const paths = first.map(eventPath);
    expect(paths).toEqual([...paths].sort(comparePaths));
    expect(paths.indexOf('a/b')).toBeLessThan(paths.indexOf('a.b'));
    expect(paths.indexOf('a/b.c/d')).toBeLessThan(paths.indexOf('a-'));
    for (const raw of rawNames) expect(paths).toContain(decodeFsName(raw));

    // Deletions interleave with live entries in the same order.
    rmSync(join(root, 'a/b'));
    rmSync(join(root, 'a0'));
    rmSync(Buffer.concat([encodeFsName(root), Buffer.from('/'), rawNames[0]!]));
    const second = await scan(asPrevious(first));
    const secondPaths = second.map(eventPath);
    expect(secondPaths).toEqual([...secondPaths].sort(comparePaths));
    expect(second.filter((e) => e.kind === 'deleted').map(eventPath)).toEqual(['a/b', 'a0', decodeFsName(rawNames[0]!)].sort(comparePaths));
  });

  it('refuses a previous state that is out of order, naming the entries', async () => {
    write('x', '1');
    const entry = { type: 'file' as const, size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1, mode: 0o100644, hash: EMPTY_SHA256 };
    await expect(scan([{ ...entry, path: 'a.b' }, { ...entry, path: 'a/b' }])).rejects.toThrow(/lists "a\/b" after "a\.b".*sorted by pathSortKey/);
  });
});

describe('walk on the calling thread', () => {
  it('gives the same events as the walk thread, across walk batches, and starts no thread', async () => {
    // More entries than one walk batch (BATCH_ENTRIES = 512) holds, in nested folders.
    for (let i = 0; i < 700; i++) write(`d${i % 3}/sub${i % 7}/f${i}`, String(i));
    symlinkSync('d0', join(root, 'link'));
    const first = await scan();
    rmSync(join(root, 'd1'), { recursive: true });
    write('d2/sub2/f2', 'changed');
    write('new', 'new');
    const previous = asPrevious(first);

    const onThread = await scan(previous, { hash: false });
    const threads: unknown[] = [];
    const onCreate = (message: unknown) => threads.push(message);
    diagnosticsChannel.subscribe('worker_threads', onCreate);
    let inline: ScanEvent[];
    try {
      inline = await scan(previous, { hash: false, walkThread: false });
    } finally {
      diagnosticsChannel.unsubscribe('worker_threads', onCreate);
    }
    expect(threads).toEqual([]);
    expect(inline).toEqual(onThread);
    const counts = (events: ScanEvent[]) => Object.groupBy(events, (e) => e.kind);
    expect(counts(inline).deleted).toHaveLength(233 + 7 + 1);
    expect(counts(inline).changed?.map(eventPath)).toEqual(['d2/sub2/f2']);
    expect(counts(inline).new?.map(eventPath)).toEqual(['new']);
  });

  it('throws when the source folder itself cannot be read', async () => {
    const missing = join(root, 'not-mounted');
    await expect(scan([], { walkThread: false, root: missing })).rejects.toThrow(/cannot read source folder .*not-mounted.*check that it exists and is mounted/);
  });
});

describe('names and paths', () => {
  it('carries non-UTF-8 names as lone surrogates and reads them through byte paths', async () => {
    const rootBytes = encodeFsName(root);
    const dirName = Buffer.from([0x64, 0xe9, 0x6a, 0xe0]); // "déjà" in Latin-1
    const fileName = Buffer.from([0x70, 0x68, 0x6f, 0x74, 0x6f, 0xff, 0xfe, 0x2e, 0x6a, 0x70, 0x67]);
    mkdirSync(Buffer.concat([rootBytes, Buffer.from('/'), dirName]));
    writeFileSync(Buffer.concat([rootBytes, Buffer.from('/'), dirName, Buffer.from('/'), fileName]), 'latin');
    symlinkSync(Buffer.concat([dirName, Buffer.from('/'), fileName]), Buffer.concat([rootBytes, Buffer.from('/link')]));

    const first = await scan();
    const filePath = `${decodeFsName(dirName)}/${decodeFsName(fileName)}`;
    expect(filePath).toMatch(/[\udc80-\udcff]/);
    const file = entries(first).find((e) => e.path === filePath)!;
    expect(file.hash).toBe(sha256('latin'));
    expect(encodeFsName(file.path)).toEqual(Buffer.concat([dirName, Buffer.from('/'), fileName]));
    expect(entries(first).find((e) => e.path === 'link')!.target).toBe(filePath);

    const second = await scan(asPrevious(first));
    expect(second.every((e) => e.kind === 'unchanged')).toBe(true);
  });

  it('walks paths longer than 255 bytes through deep nesting', async () => {
    const segments = Array.from({ length: 25 }, (_, i) => `${String(i).padStart(2, '0')}-${'n'.repeat(60)}`);
    const rel = [...segments, 'deep.txt'].join('/');
    write(rel, 'deep');
    expect(Buffer.byteLength(rel)).toBeGreaterThan(1500);
    const events = await scan();
    expect(entries(events).find((e) => e.path === rel)?.hash).toBe(sha256('deep'));
    expect(entries(events).filter((e) => e.type === 'dir')).toHaveLength(25);
  });

  it('records empty files and empty folders', async () => {
    write('empty.txt', '');
    mkdirSync(join(root, 'nothing/here'), { recursive: true });
    const found = entries(await scan());
    expect(found.find((e) => e.path === 'empty.txt')).toMatchObject({ type: 'file', size: 0, hash: EMPTY_SHA256 });
    expect(found.filter((e) => e.type === 'dir').map((e) => e.path)).toEqual(['nothing', 'nothing/here']);
  });
});

describe('ignore patterns', () => {
  it('skips matching names, folders with everything inside, and relative-path patterns', async () => {
    write('.DS_Store', 'x');
    write('photos/._IMG_1.jpg', 'x');
    write('photos/IMG_1.jpg', 'keep');
    write('photos/@eaDir/IMG_1.jpg/SYNOPHOTO_THUMB_XL.jpg', 'thumb');
    write('photos/.git/config', 'x');
    write('photos/cache/a.bin', 'x');
    write('photos/2024/cache/b.bin', 'kept: the path pattern is anchored at the root');
    write('photos/2024/IMG_2.xmp', 'x');
    write('photos/2024/deep/IMG_3.xmp', 'x');
    write('photos/2024/IMG_2.jpg', 'keep');
    write('scratch.tmp', 'x');
    write('build/out.o', 'x');
    write('docs/build', 'a file named build stays: the pattern is for folders');
    write('log-a.txt', 'x');
    write('log-d.txt', 'keep');
    write('top.txt', 'x');
    write('docs/top.txt', 'keep');

    const ignore = [...DEFAULT_IGNORES, '*.tmp', 'photos/cache', 'photos/**/*.xmp', 'build/', 'log-[a-c].txt', '/top.txt'];
    const paths = entries(await scan([], { ignore })).map((e) => e.path);
    expect(paths).toEqual([
      'docs',
      'docs/build',
      'docs/top.txt',
      'log-d.txt',
      'photos',
      'photos/2024',
      'photos/2024/IMG_2.jpg',
      'photos/2024/cache',
      'photos/2024/cache/b.bin',
      'photos/2024/deep',
      'photos/IMG_1.jpg',
    ]);
  });

  it('supports "?", negated classes, and escaped characters', async () => {
    for (const name of ['a1.log', 'ab.log', 'abc.log', 'x.txt', 'y.txt', '*.dat', 'z.dat']) write(name, name);
    const paths = entries(await scan([], { ignore: ['a?.log', '[!x].txt', '\\*.dat'] })).map((e) => e.path);
    expect(paths).toEqual(['abc.log', 'x.txt', 'z.dat']);
  });

  it('reports entries that became ignored as deleted', async () => {
    write('keep.jpg', 'k');
    write('cache/a', 'a');
    write('cache/b', 'b');
    const previous = asPrevious(await scan());
    expect(kinds(await scan(previous, { ignore: ['cache'] }))).toEqual({ 'cache': 'deleted', 'cache/a': 'deleted', 'cache/b': 'deleted', 'keep.jpg': 'unchanged' });
  });
});

describe('symlinks, hard links and special files', () => {
  it('records symlinks with their targets and never follows them, loops included', async () => {
    write('real/photo.jpg', 'photo');
    symlinkSync('real/photo.jpg', join(root, 'to-file'));
    symlinkSync('real', join(root, 'to-dir'));
    symlinkSync(root, join(root, 'real/to-root'));
    symlinkSync('loop-b', join(root, 'loop-a'));
    symlinkSync('loop-a', join(root, 'loop-b'));
    symlinkSync('self', join(root, 'self'));
    symlinkSync('missing', join(root, 'dangling'));

    const first = await scan();
    expect(entries(first).map((e) => [e.path, e.type, e.target])).toEqual([
      ['dangling', 'symlink', 'missing'],
      ['loop-a', 'symlink', 'loop-b'],
      ['loop-b', 'symlink', 'loop-a'],
      ['real', 'dir', undefined],
      ['real/photo.jpg', 'file', undefined],
      ['real/to-root', 'symlink', root],
      ['self', 'symlink', 'self'],
      ['to-dir', 'symlink', 'real'],
      ['to-file', 'symlink', 'real/photo.jpg'],
    ]);
    expect(entries(first).find((e) => e.path === 'to-file')!.hash).toBeUndefined();

    unlinkSync(join(root, 'to-dir'));
    symlinkSync('real/photo.jpg', join(root, 'to-dir'));
    const second = byPath(await scan(asPrevious(first)));
    expect(second.get('to-dir')).toMatchObject({ kind: 'changed', entry: { target: 'real/photo.jpg' } });
    expect(second.get('self')).toMatchObject({ kind: 'unchanged', entry: { target: 'self' } });
  });

  it('marks later paths of a hard-linked file with linkOf and hashes the content once', async () => {
    write('b/original.jpg', 'linked content');
    mkdirSync(join(root, 'a'));
    mkdirSync(join(root, 'c'));
    linkSync(join(root, 'b/original.jpg'), join(root, 'a/first-in-order.jpg'));
    linkSync(join(root, 'b/original.jpg'), join(root, 'c/third.jpg'));
    write('c/other.jpg', 'not linked');

    const hashed: string[] = [];
    const first = await scan([], { onHashStart: (path) => void hashed.push(path) });
    expect(hashed.sort()).toEqual(['a/first-in-order.jpg', 'c/other.jpg']);
    const files = entries(first).filter((e) => e.type === 'file');
    expect(files.map((f) => [f.path, f.linkOf, f.hash])).toEqual([
      ['a/first-in-order.jpg', undefined, sha256('linked content')],
      ['b/original.jpg', 'a/first-in-order.jpg', sha256('linked content')],
      ['c/other.jpg', undefined, sha256('not linked')],
      ['c/third.jpg', 'a/first-in-order.jpg', sha256('linked content')],
    ]);
    expect(files[0]!.nlink).toBe(3);

    const second = await scan(asPrevious(first));
    expect(entries(second).filter((e) => e.linkOf).map((e) => e.path)).toEqual(['b/original.jpg', 'c/third.jpg']);
    expect(second.every((e) => e.kind === 'unchanged')).toBe(true);
  });

  it('skips sockets and FIFOs silently without blocking on them', async () => {
    write('photo.jpg', 'p');
    execFileSync('mkfifo', [join(root, 'pipe')]);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(root, 'sock'), resolve));
    try {
      const events = await scan();
      expect(events.map(eventPath)).toEqual(['photo.jpg']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('errors', () => {
  it('reports a file that changes while it is being read, and picks it up on the next run', async () => {
    write('big.mov', Buffer.alloc(8 * 1024 * 1024, 1));
    write('small.jpg', 'fine');
    const first = await scan([], {
      onHashStart: (path) => {
        if (path === 'big.mov') appendFileSync(join(root, 'big.mov'), 'still recording');
      },
    });
    expect(first).toHaveLength(2);
    expect(first[0]).toEqual({ kind: 'error', path: 'big.mov', error: expect.stringMatching(/changed while being read/) });
    expect(first[1]).toMatchObject({ kind: 'new', entry: { path: 'small.jpg', hash: sha256('fine') } });

    const second = byPath(await scan(asPrevious(first)));
    expect(second.get('big.mov')).toMatchObject({ kind: 'new', entry: { size: 8 * 1024 * 1024 + 15 } });
  });

  it('reports a file that vanishes before it is read, without deleting it', async () => {
    write('a.jpg', 'a');
    write('b.jpg', 'b');
    const first = await scan();
    appendFileSync(join(root, 'a.jpg'), 'changed');
    const second = await scan(asPrevious(first), {
      onHashStart: (path) => unlinkSync(join(root, path)),
    });
    expect(second).toEqual([
      { kind: 'error', path: 'a.jpg', error: expect.stringMatching(/vanished during the scan/) },
      { kind: 'unchanged', entry: expect.objectContaining({ path: 'b.jpg' }) },
    ]);
  });

  it('reports unreadable files and folders and keeps going, leaving their previous state alone', async () => {
    write('open.jpg', 'open');
    write('locked.jpg', 'locked');
    write('private/a.jpg', 'a');
    write('private/b.jpg', 'b');
    write('zz-after.jpg', 'after');
    const previous = asPrevious(await scan());
    chmodSync(join(root, 'locked.jpg'), 0o000);
    chmodSync(join(root, 'private'), 0o000);
    chmodSync(root, 0o755);

    // Root reads everything, so the scan runs in a child process as an unprivileged user.
    const previousFile = join(tmpdir(), `hearth-scanner-previous-${process.pid}-${Date.now()}.json`);
    writeFileSync(previousFile, JSON.stringify(previous));
    const scannerUrl = pathToFileURL(join(import.meta.dirname, '../storage/scanner/scanner.ts')).href;
    const program = `
      import { readFileSync } from 'node:fs';
      import { scanSource } from ${JSON.stringify(scannerUrl)};
      const previous = JSON.parse(readFileSync(process.argv[1], 'utf8'));
      async function* listed() { yield* previous; }
      for await (const e of scanSource({ root: process.argv[2], previous: listed() })) console.log(JSON.stringify(e));`;
    const asRoot = process.getuid?.() === 0;
    try {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', program, previousFile, root], {
        encoding: 'utf8',
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      });
      expect(child.stderr).toBe('');
      expect(child.status).toBe(0);
      const events = child.stdout.trim().split('\n').map((line) => JSON.parse(line) as ScanEvent);
      expect(events).toEqual([
        { kind: 'error', path: 'locked.jpg', error: expect.stringMatching(/^cannot read file: permission denied/) },
        { kind: 'unchanged', entry: expect.objectContaining({ path: 'open.jpg' }) },
        { kind: 'error', path: 'private', error: expect.stringMatching(/^cannot read folder: permission denied/) },
        { kind: 'unchanged', entry: expect.objectContaining({ path: 'zz-after.jpg' }) },
      ]);
    } finally {
      rmSync(previousFile, { force: true });
      chmodSync(join(root, 'private'), 0o755);
    }
  });

  it('throws when the source folder itself cannot be read', async () => {
    const missing = join(root, 'not-mounted');
    await expect(async () => {
      for await (const _ of scanSource({ root: missing, previous: listed([]) }));
    }).rejects.toThrow(/cannot read source folder .*not-mounted.*check that it exists and is mounted/);
  });

  it('stops when aborted', async () => {
    for (let i = 0; i < 50; i++) write(`f${i}`, String(i));
    const controller = new AbortController();
    const seen: ScanEvent[] = [];
    await expect(async () => {
      for await (const event of scanSource({ root, previous: listed([]), signal: controller.signal })) {
        seen.push(event);
        controller.abort();
      }
    }).rejects.toThrow(/abort/i);
    expect(seen.length).toBeLessThan(50);
  });
});
