// A backup killed after it put objects on the directory target but before the
// catalog recorded them leaves orphans; the next run removes them, and temp files
// of its own, and never touches what is outside its namespace or older than the
// unfinished run (a recovered home's previous life). Real CLI processes, real
// SIGKILLs, a real directory target.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearthJson, hearthOk, hearthSpawn, madeDir } from './helpers/cli.ts';
import { writeFile } from './helpers/library.ts';

let work: string;
const home = () => join(work, 'home');
const disk = () => join(work, 'disk');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-orphans-'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function objectFiles(peerId: string): string[] {
  const root = join(disk(), 'hearth', peerId, 'objects');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((shard) => readdirSync(join(root, shard)).filter((name) => !name.startsWith('.tmp-')).map((name) => join(shard, name)));
}

/** Kill a backup as soon as it has put a new object on the target (it records them in batches afterwards). */
async function killAfterFirstPut(peerId: string): Promise<void> {
  const before = objectFiles(peerId).length;
  const child = hearthSpawn(home(), ['backup']);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  for (let i = 0; i < 2000 && child.exitCode === null && objectFiles(peerId).length === before; i++) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  await exited;
}

describe('orphans of killed runs', () => {
  it('the next run removes unrecorded objects and temp files in its own namespace, and nothing else', async () => {
    const library = join(work, 'photos');
    writeFile(library, 'first.jpg', 20_000, 1);
    const { peerId } = hearthJson(home(), ['init']);
    hearthOk(home(), ['source', 'add', library]);
    hearthOk(home(), ['target', 'add', 'dir', madeDir(disk())]);
    expect(hearthJson(home(), ['backup']).ok).toBe(true);

    const known = () => new Set(hearthJson<any[]>(home(), ['objects']).map((o) => o.id as string));
    const unknown = () => objectFiles(peerId).filter((f) => !known().has(f.slice(3)));
    for (let attempt = 0; attempt < 5 && unknown().length === 0; attempt++) {
      for (let i = 0; i < 150; i++) writeFile(library, `day${attempt}/${i}.jpg`, 3000 + i, 1000 * attempt + i);
      await killAfterFirstPut(peerId);
    }
    const orphans = unknown();
    expect(orphans.length).toBeGreaterThan(0);
    // The files change before the next run, so it never stores (and records) those bytes again.
    rmSync(library, { recursive: true });
    writeFile(library, 'first.jpg', 20_000, 1);
    writeFile(library, 'later.jpg', 5000, 2);

    // What the sweep must leave: another home's namespace on the same disk, and an
    // unknown object older than the unfinished run (as a recovered home's previous life left them).
    const ownObjects = join(disk(), 'hearth', peerId, 'objects');
    const foreign = join(disk(), 'hearth', '12D3KooWOtherHomeOtherHomeOtherHome', 'objects', 'ab', 'ab'.padEnd(64, '0'));
    mkdirSync(join(foreign, '..'), { recursive: true });
    writeFileSync(foreign, 'another home');
    const oldLife = join(ownObjects, 'cd', 'cd'.padEnd(64, '1'));
    mkdirSync(join(oldLife, '..'), { recursive: true });
    writeFileSync(oldLife, 'a previous life');
    const twoDaysAgo = new Date(Date.now() - 2 * 86400_000);
    utimesSync(oldLife, twoDaysAgo, twoDaysAgo);
    // A put and an encode that died half-way.
    const partial = join(ownObjects, orphans[0]!.slice(0, 2), '.tmp-0123456789abcdef');
    writeFileSync(partial, 'half');
    const spooled = join(home(), 'spool', '.tmp-abcdef012345');
    writeFileSync(spooled, 'half');

    const next = hearthJson(home(), ['backup']);
    expect(next.ok).toBe(true);
    expect(unknown().map((f) => f.slice(3))).toEqual([oldLife.slice(-64)]);
    expect(existsSync(foreign)).toBe(true);
    expect(existsSync(partial)).toBe(false);
    expect(existsSync(spooled)).toBe(false);
    expect(hearthJson(home(), ['catalog', 'verify']).ok).toBe(true);

    // A clean run leaves the old unknown object alone too.
    expect(hearthJson(home(), ['backup']).ok).toBe(true);
    expect(existsSync(oldLife)).toBe(true);
  }, 120_000);
});
