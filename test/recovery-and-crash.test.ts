// The recovery phrase rebuilds the same identity; a damaged catalog record is
// found and named; a backup killed with SIGKILL leaves a catalog that verifies
// and the next run completes, sweeping what the killed runs left in the spool.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, watch, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { Level } from 'level';
import { HomePaths } from '../node/home.ts';
import { ObjectStore, sweepSpoolLeftovers } from '../node/object-store.ts';
import { Catalog } from '../storage/catalog/catalog.ts';
import { deriveKeys } from '../storage/keys.ts';
import { ObjectEncoderPool } from '../storage/objects/encode.ts';
import { hearth, hearthJson, hearthOk, hearthSpawn } from './helpers/cli.ts';
import { makeLibrary, snapshotTree, writeFile } from './helpers/library.ts';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-recover-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const KILL_FILES = 48;
const KILL_FILE_SIZE = 100_000;
const FILES_PER_VOLUME = 4;

/** How far a backup has got with its objects, as its spool shows it. */
interface SpoolSteps {
  /** Objects whose encoding began (a `.tmp-` file appeared). */
  started: number;
  /** Objects encoded (renamed to their id); each is placed and recorded next. */
  encoded: number;
  /** Objects placed and recorded (their spool copy discarded). */
  recorded: number;
}

/**
 * Run a backup and SIGKILL it at the first of its steps that `when` picks, so a kill
 * lands at a point of the run on a machine of any speed. Resolves to the signal that
 * ended it: null if the run ended before the kill.
 */
function backupKilledWhen(home: string, when: (steps: SpoolSteps) => boolean): Promise<NodeJS.Signals | null> {
  const spool = new HomePaths(home).spool;
  // The run would create it too late to be watched from its start.
  mkdirSync(spool, { recursive: true });
  // Counted by sightings: an object's temp file comes and goes, its id comes (encoded)
  // and goes (discarded once recorded). A killed run's leftovers are swept first, a
  // sighting of their own; a volume packed again under a swept id is a new one.
  const leftovers = new Set(readdirSync(spool));
  const sightings = new Map<string, number>();
  const steps: SpoolSteps = { started: 0, encoded: 0, recorded: 0 };
  const child = hearthSpawn(home, ['backup']);
  // Watching starts in the same tick as the spawn, long before the child can reach the spool.
  const watcher = watch(spool, (event, name) => {
    if (event !== 'rename' || !name) return;
    const seen = (sightings.get(name) ?? (leftovers.has(name) ? -1 : 0)) + 1;
    sightings.set(name, seen);
    if (seen === 0) return;
    if (name.startsWith('.tmp-')) {
      if (seen === 1) steps.started++;
    } else if (seen === 1) steps.encoded++;
    else steps.recorded++;
    if (when(steps)) child.kill('SIGKILL');
  });
  return new Promise((resolve) => {
    child.on('exit', (_code, signal) => {
      watcher.close();
      resolve(signal);
    });
  });
}

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
    mkdirSync(join(work, 'flip-disk'), { recursive: true });
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

  it('a sweep of the spool removes what earlier processes left, never a file written since this one started', () => {
    const spool = join(work, 'sweep-spool');
    mkdirSync(join(spool, 'outbox'), { recursive: true });
    for (const name of ['.tmp-0a1b2c', 'f'.repeat(64), 'outbox/kept', 'fresh']) writeFileSync(join(spool, name), 'x');
    const before = new Date(performance.timeOrigin - 60_000);
    for (const name of ['.tmp-0a1b2c', 'f'.repeat(64), 'outbox/kept']) utimesSync(join(spool, name), before, before);
    expect(sweepSpoolLeftovers(spool)).toBe(2);
    expect(readdirSync(spool).sort()).toEqual(['fresh', 'outbox']);
    expect(readdirSync(join(spool, 'outbox'))).toEqual(['kept']);
  });

  it('an encode whose plaintext fails leaves nothing in the spool', async () => {
    const spool = join(work, 'failed-encode-spool');
    const catalog = await Catalog.open(join(work, 'failed-encode-catalog'), deriveKeys(randomBytes(32)));
    const encoder = new ObjectEncoderPool();
    try {
      const store = new ObjectStore({ spoolDir: spool, keys: deriveKeys(randomBytes(32)), catalog, tiers: [], encoder });
      for (const failAfter of [0, 3 * 1024 * 1024]) {
        const plaintext = Readable.from(
          (async function* () {
            if (failAfter > 0) yield randomBytes(failAfter);
            throw new Error('the file vanished while read');
          })(),
        );
        await expect(store.encode(plaintext)).rejects.toThrow('the file vanished while read');
        expect(readdirSync(spool)).toEqual([]);
      }
    } finally {
      await encoder.close();
      await catalog.close();
    }
  });

  it('a backup killed with SIGKILL leaves a catalog that verifies, and the next run completes', async () => {
    const home = join(work, 'kill');
    const photos = join(work, 'kill-photos');
    // Equal files, FILES_PER_VOLUME to a volume whatever order the walk takes.
    for (let i = 0; i < KILL_FILES; i++) writeFile(photos, `batch/${String(i).padStart(3, '0')}.jpg`, KILL_FILE_SIZE, 1000 + i);
    hearthOk(home, ['init', '--json']);
    hearthOk(home, ['source', 'add', photos]);
    mkdirSync(join(work, 'kill-disk'), { recursive: true });
    hearthOk(home, ['target', 'add', 'dir', join(work, 'kill-disk')]);
    hearthOk(home, ['config', 'set', 'volume.size', String(KILL_FILE_SIZE * FILES_PER_VOLUME)]);

    // Each killed run resumes the source's first backup, which packs volumes as the scan goes.
    const signals: Array<NodeJS.Signals | null> = [];
    const killed = async (when: (steps: SpoolSteps) => boolean) => {
      signals.push(await backupKilledWhen(home, when));
      const verify = hearth(home, ['catalog', 'verify']);
      expect(verify.code, verify.stderr).toBe(0);
    };
    // Early in the scan: its first volume is being encoded.
    await killed((s) => s.started === 1);
    // Mid-packing: between volumes, the run's second just recorded.
    await killed((s) => s.recorded === 2);
    // Near the end: the run's last volume but one encoded, not yet placed.
    const recorded = hearthJson<Array<{ type: string }>>(home, ['ls']).filter((e) => e.type === 'file').length;
    const volumesLeft = Math.ceil((KILL_FILES - recorded) / FILES_PER_VOLUME);
    expect(volumesLeft).toBeGreaterThanOrEqual(3);
    await killed((s) => s.encoded === volumesLeft - 1);
    expect(signals).toEqual(['SIGKILL', 'SIGKILL', 'SIGKILL']);

    const done = hearthJson(home, ['backup']);
    expect(done.ok).toBe(true);
    // The last kill left work for this run: it landed before the end.
    expect(done.files.new).toBeGreaterThan(0);
    // What the killed runs left in the spool went with the run that completed.
    expect(readdirSync(new HomePaths(home).spool, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name)).toEqual([]);
    const out = join(work, 'kill-restore');
    hearthJson(home, ['restore', '--to', out]);
    const got = snapshotTree(join(out, 'kill-photos'));
    const want = snapshotTree(photos);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, v] of want) expect(got.get(k), k).toEqual(v);
  });
});
