// A replication pass the daemon starts by itself (here: when a relative connects)
// retires staged blobs while a backup lists them. Both change the catalog from
// what they read of it a moment before, so the daemon runs them one at a time.
// Two daemons as separate processes on 127.0.0.1; A backs up to a directory
// target and to B.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearth, hearthAsync, hearthJson, hearthOk, type CliResult, madeDir } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';
import { Catalog } from '../storage/catalog/catalog.ts';
import { decodeEnvelope, decryptEnvelope } from '../storage/catalog/envelope.ts';
import { recordEntries } from '../storage/catalog/payloads.ts';
import { HomePaths, loadIdentity } from '../node/home.ts';

/** Enough blobs that retiring them (a delete at B and an append each) takes far longer than a backup's look at them. */
const BLOBS = 400;

let work: string;
const home = (name: string) => join(work, name);
const running: RunningDaemon[] = [];

async function daemon(name: string): Promise<RunningDaemon> {
  const d = await startDaemon(home(name));
  running.push(d);
  return d;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-race-'));
});

afterAll(async () => {
  await Promise.all(running.map((d) => d.stop()));
  rmSync(work, { recursive: true, force: true });
});

/** Every payload of a home's catalog log, in log order (the daemon must be stopped: LevelDB is locked while open). */
async function catalogLog(dir: string): Promise<any[]> {
  const keys = loadIdentity(new HomePaths(dir));
  const catalog = await Catalog.open(new HomePaths(dir).catalog, keys);
  try {
    const out: any[] = [];
    for await (const { bytes } of catalog.envelopes()) {
      for (const { payload } of recordEntries(decryptEnvelope(keys.catalogKey, decodeEnvelope(bytes)))) out.push(payload);
    }
    return out;
  } finally {
    await catalog.close();
  }
}

describe('operations that change the catalog in the daemon', () => {
  it('a backup during a self-started replication pass that retires blobs neither fails nor races it', async () => {
    const library = join(work, 'photos');
    writeFile(library, 'first.jpg', 10_000, 1);
    for (const name of ['A', 'B']) {
      hearthJson(home(name), ['init']);
      hearthOk(home(name), ['config', 'set', 'name', name]);
    }
    hearthOk(home('A'), ['source', 'add', library]);
    hearthOk(home('A'), ['target', 'add', 'dir', madeDir(join(work, 'disk'))]);
    hearthOk(home('A'), ['config', 'set', 'volume.size', '64MiB']);
    hearthOk(home('A'), ['config', 'set', 'policy.peers', '1']);
    const a = await daemon('A');
    let b = await daemon('B');
    const { code } = hearthJson(home('A'), ['invite', '--name', 'bea']);
    hearthJson(home('B'), ['join', code, '--name', 'ann']);

    expect(hearthJson(home('A'), ['backup']).ok).toBe(true);
    for (let i = 0; i < BLOBS; i++) writeFile(library, `day/${i}.jpg`, 1000 + i, 100 + i);
    const staged = hearthJson(home('A'), ['backup']);
    expect(staged.blobs.stored).toBe(BLOBS);

    // With B away, the volume that now holds the blobs' content cannot reach it, so no blob is retired yet.
    await b.stop();
    const packed = hearthJson(home('A'), ['backup', '--pack']);
    expect(packed.volumes).toHaveLength(1);
    expect(hearthJson<any[]>(home('A'), ['objects']).filter((o) => o.kind === 'blob')).toHaveLength(BLOBS);

    // B comes back and dials A: A's pass on connect sends the volume, then retires
    // the blobs, while backups run back to back.
    const sent = () => (a.stderr().match(/sent \d+ objects/g) ?? []).length;
    const sentBefore = sent();
    b = await daemon('B');
    await eventually(() => sent() > sentBefore, 'A to send the volume to B', 400, 10);
    const backups: CliResult[] = [];
    const blobsLeft = () => hearthJson<any[]>(home('A'), ['objects']).filter((o) => o.kind === 'blob').length;
    for (let i = 0; i < 20 && (backups.length < 3 || blobsLeft() > 0); i++) backups.push(await hearthAsync(home('A'), ['backup', '--json']));
    for (const r of backups) {
      expect(r.stderr).not.toMatch(/Cannot read properties/);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).ok).toBe(true);
    }
    await eventually(() => blobsLeft() === 0, 'every blob to be retired');
    expect(hearthJson(home('A'), ['catalog', 'verify']).ok).toBe(true);
    expect(a.stderr()).not.toMatch(/failed/);

    // The log shows the order: no pass retired a blob while a backup ran (from its
    // start record to its end record), whatever the timing of this machine.
    await a.stop();
    const log = await catalogLog(home('A'));
    const interleaved: string[] = [];
    let inRun: string | undefined;
    for (const p of log) {
      if (p.k === 'run') inRun = p.phase === 'start' ? p.run : undefined;
      else if (inRun && (p.k === 'retire' || p.k === 'unplace')) interleaved.push(`${p.k} ${p.id} during backup ${inRun}`);
    }
    expect(interleaved).toEqual([]);
    expect(log.filter((p) => p.k === 'retire')).toHaveLength(BLOBS);
  }, 180_000);

  it('logs every failed operation with its stack', async () => {
    const a = await daemon('A');
    const r = hearth(home('A'), ['verify', '--peer', 'nobody']);
    expect(r.code).not.toBe(0);
    await eventually(() => /verify failed: Error: no relative named "nobody"[^\n]*\n\s+at /.test(a.stderr()), 'the failure and its stack in the daemon log', 20, 100);
  });
});
