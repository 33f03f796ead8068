// The recovery phrase rebuilds the same identity; a damaged catalog record is
// found and named; a backup killed with SIGKILL leaves a catalog that verifies
// and the next run completes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { hearth, hearthJson, hearthOk, hearthSpawn } from './helpers/cli.ts';
import { makeLibrary, snapshotTree, writeFile } from './helpers/library.ts';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-recover-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('recovery phrase', () => {
  it('init --recover in a new home yields the same PeerId and age key', () => {
    const a = join(work, 'a');
    const init = hearthJson(a, ['init']);
    const phraseFile = join(work, 'phrase.txt');
    writeFileSync(phraseFile, init.phrase + '\n');
    const b = join(work, 'b');
    const rec = hearthJson(b, ['init', '--recover', '--phrase-file', phraseFile]);
    expect(rec.peerId).toBe(init.peerId);
    expect(rec.ageRecipient).toBe(init.ageRecipient);
    expect(hearthOk(b, ['key', 'export-age'])).toBe(hearthOk(a, ['key', 'export-age']));
  });

  it('the phrase can come on stdin, and a wrong phrase is refused with one line', () => {
    const a = join(work, 'a');
    const phrase = readFileSync(join(work, 'phrase.txt'), 'utf8');
    const d = join(work, 'd');
    const out = JSON.parse(hearthOk(d, ['init', '--recover', '--json'], phrase));
    expect(out.peerId).toBe(JSON.parse(hearthOk(a, ['status', '--json'])).peerId);
    const words = phrase.trim().split(' ');
    [words[0], words[1]] = [words[1]!, words[0]!];
    const bad = hearth(join(work, 'e'), ['init', '--recover'], words.join(' '));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/^hearth: error: recovery phrase/);
    const again = hearth(a, ['init']);
    expect(again.stderr).toMatch(/already holds a Hearth identity/);
  });
});

describe('catalog integrity', () => {
  it('flipping one byte of a stored record makes catalog verify fail and name it', async () => {
    const home = join(work, 'flip');
    const photos = join(work, 'flip-photos');
    makeLibrary(photos);
    hearthOk(home, ['init', '--json']);
    hearthOk(home, ['source', 'add', photos]);
    hearthOk(home, ['target', 'add', 'dir', join(work, 'flip-disk')]);
    hearthJson(home, ['backup']);
    expect(hearthOk(home, ['catalog', 'verify'])).toMatch(/catalog ok: \d+ records/);

    const db = new Level<Buffer, Buffer>(join(home, 'catalog'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const logKeys: Array<[Buffer, Buffer]> = [];
    for await (const [k, v] of db.iterator()) logKeys.push([k, v]);
    const { decodeEnvelope } = await import('../storage/catalog/envelope.ts');
    const records = logKeys.filter(([, v]) => {
      try {
        decodeEnvelope(v);
        return true;
      } catch {
        return false;
      }
    });
    expect(records.length).toBeGreaterThan(3);
    const [key, value] = records[2]!;
    const victimSeq = decodeEnvelope(value).seq;
    const damaged = Buffer.from(value);
    damaged[damaged.length - 80]! ^= 0x01;
    await db.put(key, damaged);
    await db.close();

    const r = hearth(home, ['catalog', 'verify']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`record ${victimSeq}`);
  });

  it('a backup killed with SIGKILL leaves a catalog that verifies, and the next run completes', async () => {
    const home = join(work, 'kill');
    const photos = join(work, 'kill-photos');
    for (let i = 0; i < 300; i++) writeFile(photos, `batch/${String(i).padStart(3, '0')}.jpg`, 40_000 + i, 1000 + i);
    hearthOk(home, ['init', '--json']);
    hearthOk(home, ['source', 'add', photos]);
    hearthOk(home, ['target', 'add', 'dir', join(work, 'kill-disk')]);
    hearthOk(home, ['config', 'set', 'volume.size', '4MiB']);

    // Kill at several points of the run: while scanning, staging and packing.
    let killed = 0;
    for (const delayMs of [400, 900, 1600]) {
      const child = hearthSpawn(home, ['backup', '--json']);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), delayMs);
        child.on('exit', (_code, signal) => {
          clearTimeout(t);
          if (signal === 'SIGKILL') killed++;
          resolve();
        });
      });
      const verify = hearth(home, ['catalog', 'verify']);
      expect(verify.code, verify.stderr).toBe(0);
    }
    expect(killed).toBeGreaterThan(0);
    const done = hearthJson(home, ['backup']);
    expect(done.ok).toBe(true);
    const out = join(work, 'kill-restore');
    hearthJson(home, ['restore', '--to', out]);
    const got = snapshotTree(join(out, 'kill-photos'));
    const want = snapshotTree(photos);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, v] of want) expect(got.get(k), k).toEqual(v);
  });
});
