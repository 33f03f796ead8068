import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Level } from 'level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deriveKeys, type HomeKeys } from '../storage/keys.ts';
import { comparePaths, decodeFsName, encodeFsName } from '../storage/paths.ts';
import {
  Catalog, MAX_PAYLOAD_BYTES, decodeEnvelope, decryptEnvelope, encodeEnvelope,
  type CatalogPayload, type ContentRange, type FilePayload, type ObjectPayload,
} from '../storage/catalog/catalog.ts';
import { logKey } from '../storage/catalog/layout.ts';

const hashOf = (s: string) => createHash('sha256').update(s).digest('hex');

function file(path: string, time: number, content: string | null, extra: Partial<FilePayload> = {}): FilePayload {
  return {
    k: 'file', source: 'home', path, type: content === null ? 'dir' : 'file', size: content?.length ?? 0,
    mtimeMs: time - 0.5, ctimeMs: time - 0.25, ino: time, mode: content === null ? 0o40755 : 0o100644, uid: 1000, gid: 1000,
    ...(content === null ? {} : { hash: hashOf(content) }), time, ...extra,
  };
}

function object(id: string, kind: 'blob' | 'volume', contents: ContentRange[], time = 1000): ObjectPayload {
  return { k: 'object', id, kind, name: `${id}.age`, size: 5000, plainSize: 4000, merkleRoot: hashOf(`root ${id}`), leafSize: 1024, contents, time };
}

/** A volume holding these contents, so versions with them are restorable (snapshot() shows only those). */
function holding(id: string, contents: string[], time = 0): ObjectPayload {
  return object(id, 'volume', contents.map((c, i) => ({ hash: hashOf(c), offset: 2048 * (i + 1), length: c.length })), time);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const paths = (records: Array<{ path: string }>) => records.map((r) => r.path);

let tmp: string;
let keys: HomeKeys;
let catalog: Catalog;
const dbDir = () => join(tmp, 'catalog');

beforeEach(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'hearth-catalog-'));
  keys = deriveKeys(randomBytes(32));
  catalog = await Catalog.open(dbDir(), keys);
});

afterEach(async () => {
  await catalog.close().catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
});

/** A catalog with versions, deletions, re-creations, objects, placements and a retirement. */
async function populate(c: Catalog): Promise<void> {
  await c.append([
    { k: 'run', run: 'r1', phase: 'start', time: 100 },
    holding('vol-0', ['alpha 2', 'beta 3', 'y-photo', 'other'], 100),
    file('docs', 100, null),
    file('docs/a.txt', 100, 'alpha'),
    file('docs/b.txt', 100, 'beta'),
    file('photos/2024/x.jpg', 100, 'x-photo'),
    file('photos/20245/y.jpg', 100, 'y-photo'),
    { ...file('link', 100, null), type: 'symlink', target: 'docs/a.txt', mode: 0o120777 },
    { ...file('other.txt', 100, 'other'), source: 'work' },
  ]);
  await c.append([file('docs/a.txt', 200, 'alpha 2'), { k: 'delete', source: 'home', path: 'docs/b.txt', time: 200 }]);
  await c.append([
    object('blob-x', 'blob', [{ hash: hashOf('x-photo'), offset: 0, length: 7 }]),
    { k: 'place', id: 'blob-x', tier: 'drive', target: 'gdrive', location: 'drive:blob-x', time: 1000 },
    object('vol-1', 'volume', [
      { hash: hashOf('alpha'), offset: 2048, length: 5 },
      { hash: hashOf('beta'), offset: 4096, length: 4 },
      { hash: hashOf('x-photo'), offset: 6144, length: 7 },
    ]),
    { k: 'place', id: 'vol-1', tier: 'peer', target: 'grandma', location: 'peer:grandma', time: 1000 },
    { k: 'place', id: 'vol-1', tier: 'dir', target: 'nas', location: '/mnt/nas/vol-1', time: 1000 },
    { k: 'retire', id: 'blob-x', time: 1001 },
    { k: 'unplace', id: 'blob-x', target: 'gdrive', time: 1001 },
  ]);
  await c.append([file('docs/b.txt', 300, 'beta 3'), { k: 'run', run: 'r1', phase: 'end', time: 300, ok: true }]);
}

/** Everything the queries answer, to compare two catalogs or one before and after a rebuild. */
async function answers(c: Catalog, times = [50, 100, 150, 200, 250, 300]) {
  const sources = await c.sources();
  const snapshots = await Promise.all([...times, undefined].map((t) => collect(c.snapshot(t))));
  const seen = [...new Set(snapshots.flat().map((r) => JSON.stringify([r.source, r.path])))].sort();
  const objects = await collect(c.objects());
  const objectRecords = await Promise.all(objects.map((o) => c.object(o.id)));
  const hashes = [...new Set([
    ...snapshots.flat().flatMap((r) => (r.hash ? [r.hash] : [])),
    ...objectRecords.flatMap((o) => o!.contents.map((range) => range.hash)),
  ])].sort();
  return {
    sources,
    snapshots,
    latest: await Promise.all(sources.map((s) => collect(c.latest(s)))),
    history: await Promise.all(seen.map((entry) => c.history(...(JSON.parse(entry) as [string, string])))),
    objects,
    objectRecords,
    locate: await Promise.all(hashes.map((h) => c.locate(h))),
    unpacked: await collect(c.unpacked()),
    stats: c.stats(),
    head: c.head(),
  };
}

describe('catalog queries', () => {
  it('keeps the current version of each path, with history and deletions', async () => {
    await populate(catalog);
    expect(await catalog.sources()).toEqual(['home', 'work']);
    const latest = await collect(catalog.latest('home'));
    expect(paths(latest)).toEqual(['docs', 'docs/a.txt', 'docs/b.txt', 'link', 'photos/2024/x.jpg', 'photos/20245/y.jpg']);
    expect(latest.find((r) => r.path === 'docs/a.txt')).toEqual(file('docs/a.txt', 200, 'alpha 2'));
    expect(latest.find((r) => r.path === 'link')).toMatchObject({ type: 'symlink', target: 'docs/a.txt' });
    expect(paths(await collect(catalog.latest('work')))).toEqual(['other.txt']);
    expect(await collect(catalog.latest('none'))).toEqual([]);
    expect([await catalog.hasCurrent('home'), await catalog.hasCurrent('work'), await catalog.hasCurrent('none')]).toEqual([true, true, false]);
    await catalog.append([{ k: 'delete', source: 'work', path: 'other.txt', time: 400 }]);
    expect(await catalog.hasCurrent('work')).toBe(false);
    expect(await catalog.current('home', 'docs/b.txt')).toEqual(file('docs/b.txt', 300, 'beta 3'));
    expect(await catalog.current('home', 'docs/missing')).toBeUndefined();

    const history = await catalog.history('home', 'docs/b.txt');
    expect(history.map((h) => [h.k, h.time])).toEqual([['file', 100], ['delete', 200], ['file', 300]]);
    expect(await catalog.history('home', 'docs')).toHaveLength(1);
  });

  it('gives back current versions exactly, raw-byte symlink targets and fields it does not know included', async () => {
    const raw = decodeFsName(Buffer.from([0x74, 0xff, 0x2f, 0x61]));
    const versions: FilePayload[] = [
      file('big', 10, 'content', { size: 2 ** 40 + 3, mtimeMs: 1.7e12 + 0.123456, ino: 2 ** 60, uid: 2 ** 33, mode: 0o100600 }),
      { ...file('link', 10, null), type: 'symlink', target: raw, mode: 0o120777 },
      file('dir', 10, null),
      { ...file('newer', 10, 'x'), xattrs: { 'user.tag': 'holiday' } } as FilePayload,
    ];
    await catalog.append(versions);
    const latest = await collect(catalog.latest('home'));
    expect(latest).toEqual([...versions].sort((a, b) => comparePaths(a.path, b.path)));
    expect(JSON.stringify(await catalog.current('home', 'big'))).toBe(JSON.stringify(versions[0]));
    expect(await catalog.current('home', 'newer')).toEqual(versions[3]);
    await catalog.rebuild();
    expect(await collect(catalog.latest('home'))).toEqual(latest);
  });

  it('answers snapshot --at: the last version at or before the time, unless deleted since', async () => {
    const a = 'a.txt';
    await catalog.append([holding('store', ['v1', 'v2', 'v3', 'k', 'first', 'second'])]);
    await catalog.append([file(a, 100, 'v1'), file('keep', 100, 'k')]);
    await catalog.append([file(a, 200, 'v2')]);
    await catalog.append([{ k: 'delete', source: 'home', path: a, time: 300 }]);
    await catalog.append([file(a, 400, 'v3')]);
    const at = async (t?: number) => (await collect(catalog.snapshot(t))).filter((r) => r.path === a).map((r) => r.hash);
    expect(await at(99)).toEqual([]);
    expect(await at(100)).toEqual([hashOf('v1')]);
    expect(await at(199)).toEqual([hashOf('v1')]);
    expect(await at(200)).toEqual([hashOf('v2')]);
    expect(await at(299)).toEqual([hashOf('v2')]);
    expect(await at(300)).toEqual([]);
    expect(await at(399)).toEqual([]);
    expect(await at(400)).toEqual([hashOf('v3')]);
    expect(await at()).toEqual([hashOf('v3')]);
    expect(paths(await collect(catalog.snapshot(350)))).toEqual(['keep']);

    // Same time: the record appended later wins, a deletion included.
    await catalog.append([file('tie', 500, 'first'), file('tie', 500, 'second')]);
    expect((await catalog.history('home', 'tie')).map((r) => r.k === 'file' && r.hash)).toEqual([hashOf('first'), hashOf('second')]);
    expect((await collect(catalog.snapshot(500))).find((r) => r.path === 'tie')?.hash).toBe(hashOf('second'));
    await catalog.append([{ k: 'delete', source: 'home', path: 'tie', time: 500 }]);
    expect(paths(await collect(catalog.snapshot(500)))).not.toContain('tie');
  });

  it('filters a snapshot by source and by path or folder prefix', async () => {
    await populate(catalog);
    const snap = (filter: { source?: string; prefix?: string }) => collect(catalog.snapshot(undefined, filter)).then(paths);
    expect(await snap({ source: 'home', prefix: 'photos/2024' })).toEqual(['photos/2024/x.jpg']);
    expect(await snap({ source: 'home', prefix: 'photos/2024/' })).toEqual(['photos/2024/x.jpg']);
    expect(await snap({ source: 'home', prefix: 'photos' })).toEqual(['photos/2024/x.jpg', 'photos/20245/y.jpg']);
    expect(await snap({ source: 'home', prefix: 'docs/a.txt' })).toEqual(['docs/a.txt']);
    expect(await snap({ source: 'home', prefix: 'docs' })).toEqual(['docs', 'docs/a.txt', 'docs/b.txt']);
    expect(await snap({ source: 'home', prefix: 'doc' })).toEqual([]);
    expect(await snap({ prefix: 'other.txt' })).toEqual(['other.txt']);
    expect(await snap({ source: 'work' })).toEqual(['other.txt']);
    const everything = await collect(catalog.snapshot());
    expect(everything.map((r) => `${r.source}:${r.path}`)).toEqual([
      'home:docs', 'home:docs/a.txt', 'home:docs/b.txt', 'home:link', 'home:photos/2024/x.jpg', 'home:photos/20245/y.jpg', 'work:other.txt',
    ]);
  });

  it('orders latest() and snapshot() exactly as comparePaths, raw bytes and Unicode included', async () => {
    const raw = (...bytes: number[]) => decodeFsName(Buffer.from(bytes));
    const names = [
      'a', 'a/b', 'a.b', 'a b', 'a/b/c', 'a0', 'A', 'Z', 'z', 'é', 'e\u0301', '日本', '😀', 'ab', 'a\u0001b', 'a/\u0001',
      raw(0x66, 0xff), raw(0x66, 0xff, 0x2f, 0x67), raw(0xc3), raw(0xc3, 0x28), raw(0xed, 0xa0, 0x80), `x${raw(0x80)}y`, 'b/c', 'b.c',
    ];
    expect(names.filter((n) => /[\udc80-\udcff]/.test(n))).toHaveLength(6);
    expect(new Set(names).size).toBe(names.length);
    const shuffled = [...names].sort(() => Math.random() - 0.5);
    await catalog.append([holding('store', names.map((_, i) => `content ${i}`))]);
    await catalog.append(shuffled.map((n, i) => file(n, 100 + i, `content ${i}`)));
    const expected = [...names].sort(comparePaths);
    const latest = paths(await collect(catalog.latest('home')));
    expect(latest).toEqual(expected);
    expect(paths(await collect(catalog.snapshot()))).toEqual(expected);
    // Raw bytes come back as the same bytes, not replacement characters.
    expect(latest.map((n) => encodeFsName(n).toString('hex'))).toEqual(expected.map((n) => encodeFsName(n).toString('hex')));
    expect(await catalog.current('home', raw(0x66, 0xff))).toMatchObject({ path: raw(0x66, 0xff) });
    expect(paths(await collect(catalog.snapshot(undefined, { prefix: raw(0x66, 0xff) })))).toEqual([raw(0x66, 0xff), raw(0x66, 0xff, 0x2f, 0x67)]);
  });

  it('orders versions by the log, not by their times: a record dated ahead never wins, and is flagged', async () => {
    const day = 86_400_000;
    const t0 = 1.7e12;
    const a = 'a.jpg';
    const hashesAt = async (t?: number) => (await collect(catalog.snapshot(t))).map((r) => `${r.path}:${r.size}`);
    await catalog.append([holding('store', ['v1', 'v2', 'b'], t0)]);
    // The clock ran three days ahead, then was corrected.
    await catalog.append([{ k: 'run', run: 'r1', phase: 'start', time: t0 + 3 * day }, file(a, t0 + 3 * day, 'v1')]);
    await catalog.append([{ k: 'run', run: 'r2', phase: 'start', time: t0 + 1000 }, file(a, t0 + 1000, 'v2 ')]);
    await catalog.append([holding('store2', ['v2 '], t0 + 1500)]);
    expect(await hashesAt()).toEqual([`${a}:3`]);
    expect(await hashesAt(t0 + 4 * day)).toEqual([`${a}:3`]);
    expect(await hashesAt(t0 + 3 * day)).toEqual([`${a}:3`]);
    expect(await hashesAt(t0 + 1000)).toEqual([`${a}:3`]);
    expect(await hashesAt(t0 + 999)).toEqual([]);
    await catalog.append([{ k: 'run', run: 'r3', phase: 'start', time: t0 + 2000 }, file('b', t0 + 2000, 'b')]);
    expect(await hashesAt(t0 + 1999)).toEqual([`${a}:3`]);
    expect(await hashesAt(t0 + 2000)).toEqual([`${a}:3`, 'b:1']);
    const clock = catalog.clock(t0 + 3000);
    expect(clock.stepsBack).toBe(1);
    expect(clock.flagged).toEqual([
      { seq: 2, time: t0 + 3 * day, reason: 'after-next', next: { seq: 4, time: t0 + 1000 } },
      { seq: 2, time: t0 + 3 * day, reason: 'after-now' },
    ]);
    expect(catalog.clock(t0 + 4 * day).flagged.map((f) => f.reason)).toEqual(['after-next']);
    const before = await Promise.all([undefined, t0 + 999, t0 + 1999, t0 + 2000, t0 + 4 * day].map(hashesAt));
    await catalog.rebuild();
    expect(await Promise.all([undefined, t0 + 999, t0 + 1999, t0 + 2000, t0 + 4 * day].map(hashesAt))).toEqual(before);
    expect(catalog.clock(t0 + 3000)).toEqual(clock);
  });

  it('lists a version only once an object holds its bytes; until then the previous version stands in', async () => {
    await catalog.append([holding('one', ['v1']), file('a', 100, 'v1'), file('d', 100, null)]);
    await catalog.append([file('a', 200, 'v2'), { ...file('l', 200, null), type: 'symlink', target: 'a', mode: 0o120777 }]);
    const at = async (t?: number) => (await collect(catalog.snapshot(t))).map((r) => `${r.path}:${r.hash ?? r.type}`);
    expect(await at()).toEqual([`a:${hashOf('v1')}`, 'd:dir', 'l:symlink']);
    expect(await at(250)).toEqual([`a:${hashOf('v1')}`, 'd:dir', 'l:symlink']);
    expect((await catalog.current('home', 'a'))?.hash).toBe(hashOf('v2'));
    await catalog.append([object('blob-v2', 'blob', [{ hash: hashOf('v2'), offset: 0, length: 2 }], 300)]);
    expect(await at()).toEqual([`a:${hashOf('v2')}`, 'd:dir', 'l:symlink']);
    expect(await at(250)).toEqual([`a:${hashOf('v2')}`, 'd:dir', 'l:symlink']);
    await catalog.append([{ k: 'retire', id: 'blob-v2', time: 400 }]);
    expect(await at()).toEqual([`a:${hashOf('v1')}`, 'd:dir', 'l:symlink']);
    await catalog.append([{ k: 'delete', source: 'home', path: 'a', time: 500 }]);
    expect(await at()).toEqual(['d:dir', 'l:symlink']);
    expect(await at(450)).toEqual([`a:${hashOf('v1')}`, 'd:dir', 'l:symlink']);
  });

  it('tracks objects, placements, retirement, content locations and unpacked content', async () => {
    await catalog.append([file('a', 100, 'alpha'), file('b', 100, 'beta'), file('a-copy', 100, 'alpha'), file('dir', 100, null)]);
    const unpacked = async () => (await collect(catalog.unpacked())).map((u) => [u.hash, u.size]).sort();
    expect(await unpacked()).toEqual([[hashOf('alpha'), 5], [hashOf('beta'), 4]].sort());
    const beta = (await collect(catalog.unpacked())).find((u) => u.hash === hashOf('beta'));
    expect(beta).toEqual({ hash: hashOf('beta'), size: 4, source: 'home', path: 'b', file: file('b', 100, 'beta') });

    // A staged blob is not a volume: its content stays on the packer's list.
    await catalog.append([
      object('blob-a', 'blob', [{ hash: hashOf('alpha'), offset: 0, length: 5 }]),
      { k: 'place', id: 'blob-a', tier: 'drive', target: 'gdrive', location: 'drive:1', time: 1000 },
    ]);
    expect(await unpacked()).toHaveLength(2);
    const { contents: _, ...blobA } = object('blob-a', 'blob', [{ hash: hashOf('alpha'), offset: 0, length: 5 }]);
    expect(await catalog.locate(hashOf('alpha'))).toEqual([{
      object: { ...blobA, entries: 1 }, offset: 0, length: 5,
      placements: [{ k: 'place', id: 'blob-a', tier: 'drive', target: 'gdrive', location: 'drive:1', time: 1000 }],
    }]);

    await catalog.append([
      object('vol-1', 'volume', [{ hash: hashOf('alpha'), offset: 2048, length: 5 }, { hash: hashOf('beta'), offset: 4096, length: 4 }]),
      { k: 'place', id: 'vol-1', tier: 'peer', target: 'grandma', location: 'peer:grandma', time: 1000 },
    ]);
    expect(await unpacked()).toEqual([]);
    expect((await catalog.locate(hashOf('alpha'))).map((l) => [l.object.id, l.offset, l.length, l.placements.map((p) => p.target)]).sort())
      .toEqual([['blob-a', 0, 5, ['gdrive']], ['vol-1', 2048, 5, ['grandma']]]);
    expect(await catalog.object('vol-1')).toEqual(object('vol-1', 'volume', [{ hash: hashOf('alpha'), offset: 2048, length: 5 }, { hash: hashOf('beta'), offset: 4096, length: 4 }]));
    expect((await collect(catalog.objects())).map((o) => [o.id, o.kind, o.entries, o.placements.map((p) => p.target)]).sort())
      .toEqual([['blob-a', 'blob', 1, ['gdrive']], ['vol-1', 'volume', 2, ['grandma']]]);

    await catalog.append([{ k: 'retire', id: 'blob-a', time: 1001 }]);
    expect(await catalog.object('blob-a')).toBeUndefined();
    expect((await catalog.locate(hashOf('alpha'))).map((l) => l.object.id)).toEqual(['vol-1']);
    expect((await collect(catalog.objects())).map((o) => o.id)).toEqual(['vol-1']);
    // Its placements stay until they are removed, so the blob can still be deleted there.
    expect((await catalog.placements('blob-a')).map((p) => p.target)).toEqual(['gdrive']);
    await catalog.append([{ k: 'unplace', id: 'blob-a', target: 'gdrive', time: 1002 }]);
    expect(await catalog.placements('blob-a')).toEqual([]);

    // New and changed content goes on the list; deleted content comes off it.
    await catalog.append([file('c', 200, 'gamma'), file('a', 200, 'alpha 2')]);
    expect(await unpacked()).toEqual([[hashOf('alpha 2'), 7], [hashOf('gamma'), 5]].sort());
    await catalog.append([{ k: 'delete', source: 'home', path: 'c', time: 300 }]);
    expect(await unpacked()).toEqual([[hashOf('alpha 2'), 7]]);
    // Retiring a volume puts its still-live content back on the list.
    await catalog.append([{ k: 'retire', id: 'vol-1', time: 1003 }]);
    expect(await unpacked()).toEqual([[hashOf('alpha'), 5], [hashOf('alpha 2'), 7], [hashOf('beta'), 4]].sort());
    expect((await collect(catalog.unpacked())).find((u) => u.hash === hashOf('alpha'))).toMatchObject({ path: 'a-copy' });

    const stats = catalog.stats();
    expect(stats).toMatchObject({
      records: catalog.head().seq,
      sources: 1,
      // Folders are counted apart from files (and links).
      files: { count: 3, bytes: 5 + 4 + 7 },
      folders: 1,
      versions: { count: 6, bytes: 5 + 4 + 5 + 5 + 7 },
      deletes: 1,
      objects: { blob: { count: 0, bytes: 0, plainBytes: 0 }, volume: { count: 0, bytes: 0, plainBytes: 0 } },
      placements: [{ target: 'grandma', count: 1, bytes: 5000 }],
      unpacked: { count: 3, bytes: 16 },
    });
  });

  it('counts objects and placements per target, and replaces an object appended again', async () => {
    await catalog.append([
      object('b1', 'blob', [{ hash: hashOf('one'), offset: 0, length: 3 }]),
      object('v1', 'volume', [{ hash: hashOf('one'), offset: 0, length: 3 }]),
      { k: 'place', id: 'b1', tier: 'dir', target: 'nas', location: '/nas/b1', time: 1 },
      { k: 'place', id: 'v1', tier: 'dir', target: 'nas', location: '/nas/v1', time: 1 },
      { k: 'place', id: 'v1', tier: 's3', target: 'glacier', location: 's3://b/v1', time: 1 },
      { k: 'place', id: 'v1', tier: 's3', target: 'glacier', location: 's3://b/v1-again', time: 2 },
      { k: 'unplace', id: 'v1', target: 'not-there', time: 2 },
    ]);
    expect(catalog.stats()).toMatchObject({
      objects: { blob: { count: 1, bytes: 5000, plainBytes: 4000 }, volume: { count: 1, bytes: 5000, plainBytes: 4000 } },
      placements: [{ target: 'glacier', count: 1, bytes: 5000 }, { target: 'nas', count: 2, bytes: 10000 }],
    });
    // Placed again on the same target: the newer location replaces the older.
    expect((await catalog.placements('v1')).map((p) => p.location).sort()).toEqual(['/nas/v1', 's3://b/v1-again']);
    await catalog.append([object('v1', 'volume', [{ hash: hashOf('two'), offset: 0, length: 3 }])]);
    expect((await catalog.locate(hashOf('one'))).map((l) => l.object.id)).toEqual(['b1']);
    expect((await catalog.locate(hashOf('two'))).map((l) => l.object.id)).toEqual(['v1']);
    expect(catalog.stats().objects.volume.count).toBe(1);
  });

  it('splits an object with more ranges than fit in one record, and retires it whole', async () => {
    const ranges = Array.from({ length: 30_000 }, (_, i) => ({ hash: hashOf(`piece ${i}`), offset: i * 2048, length: 1000 + i }));
    await catalog.append([file('p0', 10, 'piece 0'), file('p29999', 10, 'piece 29999')]);
    const before = catalog.head().seq;
    await catalog.append([object('big', 'volume', ranges)]);
    const records = catalog.head().seq - before;
    expect(records).toBeGreaterThan(2);
    for await (const { seq, bytes } of catalog.envelopes(before + 1)) {
      const payload = JSON.parse(decryptEnvelope(keys.catalogKey, decodeEnvelope(bytes)).toString('utf8'));
      expect(Buffer.byteLength(JSON.stringify(payload))).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
      expect(payload.k).toBe(seq === before + 1 ? 'object' : 'contents');
    }
    expect(await catalog.object('big')).toEqual(object('big', 'volume', ranges));
    expect(await catalog.locate(hashOf('piece 29999'))).toMatchObject([{ object: { id: 'big', entries: 30_000 }, offset: 29_999 * 2048, length: 31_000 - 1 }]);
    expect(await collect(catalog.unpacked())).toEqual([]);
    await catalog.append([{ k: 'retire', id: 'big', time: 20 }]);
    expect(await catalog.locate(hashOf('piece 12345'))).toEqual([]);
    expect((await collect(catalog.unpacked())).map((u) => u.path).sort()).toEqual(['p0', 'p29999']);
    expect((await catalog.verify()).ok).toBe(true);
  });

  it('refuses malformed payloads whole, writing nothing', async () => {
    await catalog.append([file('a', 1, 'a')]);
    const bad: Array<[unknown, RegExp]> = [
      [{ ...file('b', 1, 'b'), hash: 'ABC' }, /invalid hash/],
      [{ ...file('b', 1, 'b'), time: -1 }, /invalid time/],
      [{ ...file('b', 1, 'b'), path: 'x\0y' }, /invalid path/],
      [{ k: 'retention', keep: 3 }, /unknown kind 'retention'/],
      [{ ...object('o', 'blob', []), contents: [{ hash: hashOf('x'), offset: -1, length: 1 }] }, /invalid contents/],
      [{ k: 'place', id: 'o', tier: 'floppy', target: 't', location: 'l', time: 1 }, /invalid tier/],
      [{ k: 'run', run: 'r', phase: 'start', time: 1, note: 'x'.repeat(MAX_PAYLOAD_BYTES) }, /over the 1048576-byte record limit/],
    ];
    for (const [payload, message] of bad) {
      await expect(catalog.append([file('good', 2, 'g'), payload as CatalogPayload])).rejects.toThrow(message);
    }
    expect(catalog.head().seq).toBe(1);
    expect(await catalog.current('home', 'good')).toBeUndefined();
    expect((await catalog.verify()).ok).toBe(true);
  });

  it('keeps records of kinds it does not know in the log and skips them in the indexes', async () => {
    await populate(catalog);
    const expected = await answers(catalog);
    // A newer Hearth's record, signed and chained like any other.
    const head = catalog.head();
    const future = encodeEnvelope(head.seq + 1, head.hash, Buffer.from(JSON.stringify({ k: 'retention', keepDays: 30, time: 400 })), keys);
    await catalog.importEnvelopes([future]);
    expect(catalog.head().seq).toBe(head.seq + 1);
    expect((await catalog.verify()).ok).toBe(true);
    const after = await answers(catalog);
    expect({ ...after, head: expected.head, stats: { ...after.stats, records: expected.stats.records } }).toEqual(expected);
    await catalog.rebuild();
    expect((await answers(catalog)).latest).toEqual(expected.latest);
  });
});

describe('catalog integrity', () => {
  /** Close the catalog, change its LevelDB with plain `level`, reopen it. */
  async function tamper(change: (db: Level<Buffer, Buffer>) => Promise<void>): Promise<void> {
    await catalog.close();
    const db = new Level<Buffer, Buffer>(dbDir(), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    await change(db);
    await db.close();
    catalog = await Catalog.open(dbDir(), keys);
  }

  async function tenRecords(): Promise<void> {
    for (let i = 1; i <= 10; i++) await catalog.append([file(`f${i}`, i, `content ${i}`)]);
    expect(await catalog.verify()).toEqual({ ok: true, records: 10 });
  }

  it.each([0, 20, 45, 60, 100, -1])('names the record whose byte %i was flipped on disk', async (at) => {
    await tenRecords();
    await tamper(async (db) => {
      const value = (await db.get(logKey(5)))!;
      const i = at < 0 ? value.length + at : at;
      value[i]! ^= 0x01;
      await db.put(logKey(5), value);
    });
    const result = await catalog.verify();
    expect(result.ok).toBe(false);
    expect(result.error?.seq).toBe(5);
    expect(result.records).toBe(4);
  });

  it('detects a removed record, reordered records, and a truncated log', async () => {
    await tenRecords();
    const original = new Map<number, Buffer>();
    await tamper(async (db) => {
      for (const seq of [5, 6, 10]) original.set(seq, (await db.get(logKey(seq)))!);
      await db.del(logKey(5));
    });
    expect(await catalog.verify()).toMatchObject({ ok: false, records: 4, error: { seq: 5, reason: expect.stringMatching(/missing/) } });

    await tamper(async (db) => {
      await db.put(logKey(5), original.get(6)!);
      await db.put(logKey(6), original.get(5)!);
    });
    expect(await catalog.verify()).toMatchObject({ ok: false, error: { seq: 5, reason: expect.stringMatching(/moved/) } });

    await tamper(async (db) => {
      await db.put(logKey(5), original.get(5)!);
      await db.put(logKey(6), original.get(6)!);
      await db.del(logKey(10));
    });
    expect(await catalog.verify()).toMatchObject({ ok: false, records: 9, error: { seq: 10, reason: expect.stringMatching(/missing/) } });

    await tamper(async (db) => db.put(logKey(10), original.get(10)!));
    expect(await catalog.verify()).toEqual({ ok: true, records: 10 });
  });

  it('detects a record re-signed by the owner but encrypted under another key', async () => {
    await tenRecords();
    const other = deriveKeys(randomBytes(32));
    await tamper(async (db) => {
      const prev = decodeEnvelope((await db.get(logKey(7)))!).prev;
      await db.put(logKey(7), encodeEnvelope(7, prev, Buffer.from('{"k":"run"}'), { catalogKey: other.catalogKey, signingKey: keys.signingKey }));
    });
    const result = await catalog.verify();
    expect(result.error?.seq).toBe(7);
  });

  it('keeps many payloads in one record, and names the record and entry of a bad payload', async () => {
    const payloads = Array.from({ length: 600 }, (_, i) => file(`many/f${i}`, 10, `content ${i}`));
    await catalog.append(payloads.slice(0, 2));
    expect(catalog.head().seq).toBe(2);
    await catalog.append(payloads.slice(2), { group: true });
    const records = catalog.head().seq;
    expect(records).toBeGreaterThan(1);
    expect(records).toBeLessThan(20);
    expect(catalog.stats().files.count).toBe(600);
    expect(await catalog.verify()).toEqual({ ok: true, records });
    // Two versions of one path in one record keep their order in the history.
    await catalog.append([file('twice', 20, 'one'), file('twice', 20, 'two')], { group: true });
    expect((await catalog.history('home', 'twice')).map((r) => r.k === 'file' && r.hash)).toEqual([hashOf('one'), hashOf('two')]);

    await tamper(async (db) => {
      const head = decodeEnvelope((await db.get(logKey(records + 1)))!);
      const bad = JSON.stringify([file('ok', 30, 'ok'), { ...file('bad', 30, 'bad'), size: -1 }]);
      await db.put(logKey(records + 1), encodeEnvelope(records + 1, head.prev, Buffer.from(bad), keys));
    });
    expect(await catalog.verify()).toMatchObject({
      ok: false, records, error: { seq: records + 1, reason: expect.stringMatching(/record \d+ holds a bad payload in entry 2 of 2: file record has an invalid size/) },
    });
  });

  it('refuses to open with another identity', async () => {
    await tenRecords();
    await catalog.close();
    await expect(Catalog.open(dbDir(), deriveKeys(randomBytes(32)))).rejects.toThrow(/belongs to another identity/);
    catalog = await Catalog.open(dbDir(), keys);
    expect(catalog.head().seq).toBe(10);
  });

  it('refuses a second opener while one holds the catalog', async () => {
    await expect(Catalog.open(dbDir(), keys)).rejects.toThrow(/in use by another Hearth process/);
  });

  it('rebuilds every index from the log to the same answers', async () => {
    await populate(catalog);
    const expected = await answers(catalog);
    await catalog.rebuild();
    expect(await answers(catalog)).toEqual(expected);
    // Damaged indexes are repaired by a rebuild, and an interrupted rebuild resumes on open.
    await tamper(async (db) => {
      await db.clear({ gte: Buffer.of(0x6c), lt: Buffer.of(0x6d) });
      await db.put(Buffer.from('mrebuilding', 'latin1'), Buffer.alloc(0));
    });
    expect(await answers(catalog)).toEqual(expected);
  });

  it('imports a pulled log into an empty catalog with the same answers, and resumes', async () => {
    await populate(catalog);
    const expected = await answers(catalog);
    const log = await collect(catalog.envelopes());
    const recovered = await Catalog.open(join(tmp, 'recovered'), keys);
    try {
      await recovered.importEnvelopes(log.slice(0, 3));
      expect(recovered.head().seq).toBe(3);
      // A resumed pull sends records the catalog already has; identical ones are skipped.
      expect(await recovered.importEnvelopes((async function* () { yield* log; })())).toEqual(expected.head);
      expect(await answers(recovered)).toEqual(expected);
      expect(await recovered.verify()).toEqual({ ok: true, records: log.length });

      const forked = encodeEnvelope(2, decodeEnvelope(log[1]!.bytes).prev, Buffer.from('{"k":"run","run":"x","phase":"start","time":1}'), keys);
      await expect(recovered.importEnvelopes([forked])).rejects.toMatchObject({ code: 'fork' });
      const stranger = deriveKeys(randomBytes(32));
      const head = recovered.head();
      const foreign = encodeEnvelope(head.seq + 1, head.hash, Buffer.from('{"k":"run","run":"x","phase":"start","time":1}'), stranger);
      await expect(recovered.importEnvelopes([foreign])).rejects.toMatchObject({ code: 'signature' });
      expect(recovered.head()).toEqual(expected.head);
    } finally {
      await recovered.close();
    }
  });

  it('streams envelopes from a given seq', async () => {
    await tenRecords();
    expect((await collect(catalog.envelopes(8))).map((e) => e.seq)).toEqual([8, 9, 10]);
    expect((await collect(catalog.envelopes())).map((e) => e.seq)).toHaveLength(10);
  });
});

describe('catalog crash safety', () => {
  // The child appends rounds of PER_ROUND payloads that touch every index, 150 file
  // versions and 20 deletions each, every other round grouped into shared records;
  // each round is one append(), so after any kill the counters must show whole rounds.
  const PER_ROUND = 176;
  const childSource = (seedHex: string) => `
    import { createHash } from 'node:crypto';
    import { deriveKeys } from ${JSON.stringify(pathToFileURL(resolve('storage/keys.ts')).href)};
    import { Catalog } from ${JSON.stringify(pathToFileURL(resolve('storage/catalog/catalog.ts')).href)};
    const hashOf = (s) => createHash('sha256').update(s).digest('hex');
    const catalog = await Catalog.open(process.argv[2], deriveKeys(Buffer.from(${JSON.stringify(seedHex)}, 'hex')));
    const file = (path, content, time) => ({ k: 'file', source: 'home', path, type: 'file', size: content.length, mtimeMs: time,
      ctimeMs: time, ino: time, mode: 0o100644, uid: 1, gid: 1, hash: hashOf(content), time });
    for (let round = catalog.stats().deletes / 20; round < 10000; round++) {
      const time = round * 10 + 10;
      const payloads = [];
      for (let i = 0; i < 150; i++) payloads.push(file('d' + (i % 10) + '/f' + ((round * 37 + i) % 400), 'c' + ((round * 150 + i) % 500), time));
      for (let i = 0; i < 20; i++) payloads.push({ k: 'delete', source: 'home', path: 'd' + (i % 10) + '/f' + ((round * 53 + i * 7) % 400), time });
      const object = (id, kind, contents) => ({ k: 'object', id, kind, name: id, size: 100 + round, plainSize: 90, merkleRoot: hashOf(id), leafSize: 64, contents, time });
      payloads.push(object('blob-' + round, 'blob', [{ hash: hashOf('c' + ((round * 150) % 500)), offset: 0, length: 4 }]));
      payloads.push({ k: 'place', id: 'blob-' + round, tier: 'dir', target: 'nas', location: '/nas/' + round, time });
      const ranges = Array.from({ length: 50 }, (_, j) => ({ hash: hashOf('c' + ((round * 150 + j) % 500)), offset: j * 4096, length: 4 }));
      payloads.push(object('vol-' + round, 'volume', ranges));
      payloads.push({ k: 'place', id: 'vol-' + round, tier: 'peer', target: 'grandma', location: 'peer', time });
      payloads.push({ k: 'retire', id: 'blob-' + (round - 1), time });
      payloads.push({ k: 'unplace', id: 'blob-' + (round - 1), target: 'nas', time });
      if (payloads.length !== ${PER_ROUND}) throw new Error('round size changed');
      await catalog.append(payloads, { group: round % 2 === 0 });
      process.stdout.write(catalog.head().seq + '\\n');
    }
  `;

  /** Run the child until it has committed `rounds` more rounds, then SIGKILL it mid-append. */
  async function appendAndKill(script: string, dir: string, rounds: number): Promise<number> {
    const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let committed = 0;
    let lines = 0;
    let buffered = '';
    const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const complete = buffered.split('\n');
      buffered = complete.pop()!;
      for (const line of complete) {
        committed = Number(line);
        if (++lines === rounds) setTimeout(() => child.kill('SIGKILL'), Math.random() * 30);
      }
    });
    expect(await exited).toBe('SIGKILL');
    return committed;
  }

  it('survives SIGKILL at any moment: the log verifies and the indexes agree with a rebuild', async () => {
    await catalog.close();
    const seed = randomBytes(32);
    keys = deriveKeys(seed);
    const dir = join(tmp, 'killed');
    const script = join(tmp, 'append-forever.mjs');
    writeFileSync(script, childSource(seed.toString('hex')));
    let seen = 0;
    for (let kill = 0; kill < 6; kill++) {
      const committed = await appendAndKill(script, dir, 1 + Math.floor(Math.random() * 4));
      expect(committed).toBeGreaterThan(seen);
      catalog = await Catalog.open(dir, keys);
      const head = catalog.head();
      expect(head.seq).toBeGreaterThanOrEqual(committed);
      const rounds = catalog.stats().deletes / 20;
      expect(Number.isInteger(rounds)).toBe(true);
      expect(catalog.stats().versions.count).toBe(rounds * 150);
      expect(await catalog.verify()).toEqual({ ok: true, records: head.seq });
      const times = Array.from({ length: 6 }, (_, i) => Math.round(rounds * 10 * (i / 5)) + 5);
      const before = await answers(catalog, times);
      expect(before.stats.files.count).toBeGreaterThan(0);
      await catalog.rebuild();
      expect(await answers(catalog, times)).toEqual(before);
      await catalog.close();
      seen = head.seq;
    }
  });
});
