// An interrupted restore: SIGINT (or SIGTERM) removes the temp file under way, a
// SIGKILL's temp file is removed by the next restore into the folder, a re-run
// without flags refuses and names --skip-existing, and --skip-existing completes it,
// leaving alone the files that already match. Through a daemon, Ctrl-C on the command
// stops the daemon's restore the same way, and the daemon lives on.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, watch, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { hearth, hearthJson, hearthOk, hearthSpawn } from './helpers/cli.ts';
import { eventually, startDaemon } from './helpers/daemon.ts';
import { restoreTemps, writeFile } from './helpers/library.ts';

const SMALL = 8;
/** Big enough that its restore is under way for long after its temp file appears (its bytes are decrypted). */
const BIG = 256 * 1024 * 1024;

let work: string;
let home: string;
let photos: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-restore-interrupt-'));
  home = join(work, 'home');
  photos = join(work, 'photos');
  for (let i = 0; i < SMALL; i++) writeFile(photos, `a-${i}.jpg`, 5000 + i, i + 1);
  // Restored last (catalog order): a few data blocks, the rest a hole on the source side.
  const fd = openSync(join(photos, 'z-big.mkv'), 'w');
  for (const at of [0, BIG / 2, BIG - 7]) writeSync(fd, Buffer.from('HEARTH!'), 0, 7, at);
  closeSync(fd);
  hearthJson(home, ['init']);
  hearthOk(home, ['source', 'add', photos]);
  mkdirSync(join(work, 'disk'), { recursive: true });
  hearthOk(home, ['target', 'add', 'dir', join(work, 'disk')]);
  hearthJson(home, ['backup']);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

const sourceHashes = new Map<string, string>();

async function expectComplete(to: string): Promise<void> {
  const names = readdirSync(photos).sort();
  expect(readdirSync(join(to, 'photos')).sort()).toEqual(names);
  for (const name of names) {
    if (!sourceHashes.has(name)) sourceHashes.set(name, await sha256(join(photos, name)));
    expect(await sha256(join(to, 'photos', name)), name).toBe(sourceHashes.get(name));
  }
}

/**
 * Starts `hearth restore --to to` and sends `signal` (to it, or to `target`) once the
 * big file's temp file is there: the first temp file that appears after every small
 * file is in place.
 */
function restoreStoppedMidway(to: string, signal: NodeJS.Signals, target?: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; tempsAtKill: string[] }> {
  const folder = join(to, 'photos');
  mkdirSync(folder, { recursive: true });
  const placed = new Set<string>();
  let tempsAtKill: string[] = [];
  const child = hearthSpawn(home, ['restore', '--to', to]);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const watcher = watch(folder, (_event, name) => {
    if (!name || child.exitCode !== null || child.signalCode !== null || tempsAtKill.length) return;
    if (name.startsWith('a-')) placed.add(name);
    else if (name.startsWith('.hearth-restore-') && placed.size === SMALL) {
      tempsAtKill = restoreTemps(to);
      if (tempsAtKill.length) (target ?? child).kill(signal);
    }
  });
  return new Promise((resolve) => {
    child.on('exit', (code, sig) => {
      watcher.close();
      resolve({ code, signal: sig, stderr, tempsAtKill });
    });
  });
}

describe('an interrupted restore', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} stops it and removes the temp file under way; a re-run refuses, --skip-existing completes it`, async () => {
      const to = join(work, `to-${signal}`);
      const stopped = await restoreStoppedMidway(to, signal);
      expect(stopped.tempsAtKill).toHaveLength(1);
      expect(stopped.code, stopped.stderr).toBe(1);
      expect(stopped.stderr).toContain('restore interrupted');
      expect(stopped.stderr).toContain('--skip-existing');
      expect(restoreTemps(to)).toEqual([]);
      expect(readdirSync(join(to, 'photos'))).not.toContain('z-big.mkv');

      const again = hearth(home, ['restore', '--to', to]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already exists: .*--skip-existing/);

      const done = hearthJson(home, ['restore', '--to', to, '--skip-existing']);
      expect(done.failed).toEqual([]);
      expect(done.skipped).toBe(SMALL);
      expect(done.files).toBe(1);
      await expectComplete(to);
    }, 120_000);
  }

  it('a SIGKILL leaves its temp file, which the next restore into the folder removes', async () => {
    const to = join(work, 'to-SIGKILL');
    const killed = await restoreStoppedMidway(to, 'SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    expect(restoreTemps(to)).toEqual(killed.tempsAtKill);
    // A temp file of a restore that still runs (this test's process) is left alone.
    const running = join(to, 'photos', `.hearth-restore-${process.pid}-0123abcd`);
    writeFileSync(running, 'in use');

    const done = hearthJson(home, ['restore', '--to', to, '--skip-existing']);
    expect(done.failed).toEqual([]);
    expect(restoreTemps(to)).toEqual([running]);
    rmSync(running);
    await expectComplete(to);
  }, 120_000);

  it('--skip-existing replaces nothing that differs unless --overwrite is given too', async () => {
    const to = join(work, 'to-differs');
    hearthJson(home, ['restore', 'photos/a-0.jpg', 'photos/a-1.jpg', '--to', to]);
    // Same size, other bytes: found only by the SHA-256.
    writeFile(to, 'photos/a-1.jpg', 5001, 999);
    const kept = hearth(home, ['restore', '--to', to, '--skip-existing', '--json']);
    expect(kept.code).toBe(3);
    const report = JSON.parse(kept.stdout);
    expect(report.skipped).toBe(1);
    expect(report.failed).toEqual([{ path: 'photos/a-1.jpg', error: expect.stringContaining('--overwrite') }]);
    expect(await sha256(join(to, 'photos/a-1.jpg'))).not.toBe(await sha256(join(photos, 'a-1.jpg')));

    const replaced = hearthJson(home, ['restore', '--to', to, '--skip-existing', '--overwrite']);
    expect(replaced.failed).toEqual([]);
    // Every small file but a-1.jpg, and the big one the previous run restored.
    expect(replaced.skipped).toBe(SMALL - 1 + 1);
    await expectComplete(to);
  }, 120_000);

  it('through the daemon, Ctrl-C on the command stops the restore and removes its temp file; the daemon lives on', async () => {
    const daemon = await startDaemon(home);
    try {
      const to = join(work, 'to-daemon');
      const stopped = await restoreStoppedMidway(to, 'SIGINT');
      expect(stopped.tempsAtKill).toHaveLength(1);
      expect(stopped.signal ?? stopped.code).not.toBe(0);
      await eventually(() => restoreTemps(to).length === 0, 'the daemon to remove the temp file', 100, 100);
      expect(readdirSync(join(to, 'photos'))).not.toContain('z-big.mkv');
      expect(daemon.process.exitCode).toBeNull();

      const done = hearthJson(home, ['restore', '--to', to, '--skip-existing']);
      expect(done.failed).toEqual([]);
      expect(done.skipped).toBe(SMALL);
      await expectComplete(to);
      expect(lstatSync(join(to, 'photos/z-big.mkv')).size).toBe(BIG);
    } finally {
      await daemon.stop();
    }
  }, 120_000);

  it('SIGTERM to the daemon stops its restore at once, removing the temp file, and the command says so', async () => {
    const daemon = await startDaemon(home);
    const exited = new Promise((resolve) => daemon.process.once('exit', resolve));
    try {
      const to = join(work, 'to-daemon-stopped');
      const stopped = await restoreStoppedMidway(to, 'SIGTERM', daemon.process);
      expect(stopped.tempsAtKill).toHaveLength(1);
      expect(stopped.code).toBe(1);
      expect(stopped.stderr).toContain('restore interrupted');
      expect(await exited).toBe(0);
      expect(restoreTemps(to)).toEqual([]);
      expect(readdirSync(join(to, 'photos'))).not.toContain('z-big.mkv');
    } finally {
      await daemon.stop();
    }
  }, 120_000);
});
