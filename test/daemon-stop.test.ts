// SIGTERM while the daemon runs a long backup or replication: the daemon stops at
// the next safe point instead of finishing (a first backup of a big library, or its
// first copy to a relative, can take hours; Docker and systemd kill a daemon that
// does not stop), exits 0, and leaves a valid catalog; the next run finishes the job.
import { existsSync, mkdtempSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hearthJson, hearthOk, hearthSpawn } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { snapshotTree, writeFile } from './helpers/library.ts';

const FILES = 300;
const FILE_BYTES = 64 * 1024;
const BOUND_MS = 60_000;

let work: string;
const daemons = new Set<RunningDaemon>();

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-daemon-stop-'));
});
afterAll(async () => {
  await Promise.all([...daemons].map((d) => d.stop()));
  rmSync(work, { recursive: true, force: true });
});

type StoredObject = { kind: string; placements: Array<{ tier: string; target: string }> };

const volumes = (home: string): StoredObject[] => hearthJson<StoredObject[]>(home, ['objects']).filter((o) => o.kind === 'volume');

async function start(home: string): Promise<RunningDaemon> {
  const d = await startDaemon(home);
  daemons.add(d);
  return d;
}

/** SIGTERM, and the daemon's exit within BOUND_MS. */
async function stopBySignal(d: RunningDaemon): Promise<void> {
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => d.process.once('exit', (code, signal) => resolve({ code, signal })));
  d.process.kill('SIGTERM');
  let bound: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([exit, new Promise<'still running'>((resolve) => (bound = setTimeout(() => resolve('still running'), BOUND_MS)))]);
  clearTimeout(bound);
  expect(outcome, d.stderr()).toEqual({ code: 0, signal: null });
  expect(d.stderr()).toContain('hearth daemon stopped');
  daemons.delete(d);
}

/** Resolves with `what` once `line` matches a line of `input`, or rejects after BOUND_MS. */
function lineMatching(input: NodeJS.ReadableStream, matches: (line: string) => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${BOUND_MS} ms`)), BOUND_MS);
    createInterface({ input }).on('line', (line) => {
      if (!matches(line)) return;
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('hearth daemon stopped mid-work', () => {
  const home = (name: string) => join(work, name);

  it('during a backup: stops at a safe point, exits 0, and the next backup finishes the job', async () => {
    const a = home('a');
    const photos = join(work, 'photos');
    // One volume per file: hundreds of safe points, far more work than a stop waits for.
    for (let i = 0; i < FILES; i++) writeFile(photos, `${String(i).padStart(3, '0')}.jpg`, FILE_BYTES, i + 1);
    hearthJson(a, ['init']);
    hearthOk(a, ['source', 'add', photos]);
    mkdirSync(join(work, 'target'), { recursive: true });
    hearthOk(a, ['target', 'add', 'dir', join(work, 'target')]);
    hearthOk(a, ['config', 'set', 'volume.size', `${FILE_BYTES}`]);
    const daemon = await start(a);

    const backup = hearthSpawn(a, ['backup', '--json']);
    let backupErr = '';
    backup.stderr.on('data', (d) => (backupErr += d));
    const backupExit = new Promise<number | null>((resolve) => backup.once('exit', resolve));
    await lineMatching(backup.stderr, (line) => line.includes('"phase":"packing'), 'packing progress');

    await stopBySignal(daemon);
    // The client is told, in one line, that the backup stopped and why.
    expect(await backupExit).not.toBe(0);
    expect(backupErr).toMatch(/hearth: error: .*daemon is stopping/);

    expect(hearthJson(a, ['catalog', 'verify']).ok).toBe(true);
    const atStop = volumes(a).length;
    expect(atStop).toBeGreaterThan(0);
    expect(atStop).toBeLessThan(FILES);

    // Without the daemon, the next backup packs the rest, and everything comes back.
    hearthJson(a, ['backup']);
    expect(volumes(a)).toHaveLength(FILES);
    const restored = join(work, 'restored');
    hearthJson(a, ['restore', '--to', restored]);
    expect(snapshotTree(join(restored, 'photos'))).toEqual(snapshotTree(photos));
  });

  it('during replication to a relative: records what it placed, and the next daemon reaches the relative and sends the rest', async () => {
    const a = home('a');
    const b = home('b');
    hearthJson(b, ['init']);
    const daemonA = await start(a);
    const daemonB = await start(b);
    // Joining starts A's replication of its volumes to B at once.
    const { code } = hearthJson<{ code: string }>(a, ['invite', '--name', 'b']);
    hearthJson(b, ['join', code, '--name', 'a']);
    const hosted = join(b, 'hosted', daemonA.peerId, 'objects');
    const arrived = (): number => (existsSync(hosted) ? readdirSync(hosted).reduce((n, shard) => n + readdirSync(join(hosted, shard)).length, 0) : 0);
    await eventually(() => arrived() > 0, 'the first object at B', 3000, 20);
    await stopBySignal(daemonA);

    expect(hearthJson(a, ['catalog', 'verify']).ok).toBe(true);
    const placedAtB = (): number => volumes(a).filter((o) => o.placements.some((p) => p.target === daemonB.peerId)).length;
    const atStop = placedAtB();
    expect(atStop).toBeLessThan(FILES);
    // Every placement recorded is true: B holds at least those objects.
    expect(arrived()).toBeGreaterThanOrEqual(atStop);

    // A is the inviter: it reaches B again only if it kept the address B listens on.
    await start(a);
    await eventually(() => placedAtB() === FILES, 'every volume placed at B', 120, 500);
  });
});
