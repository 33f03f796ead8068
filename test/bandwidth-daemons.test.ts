// Bandwidth caps on real transfers: two daemons as separate processes on
// 127.0.0.1, A backing up 64 MiB files to B. The duration is the one A's
// replicator logs for the put ("sent 1 objects, N bytes, to relatives in S s").
// This checks that a cap holds, not how fast the machine is: the cap (16 MiB/s)
// is far below what a put over loopback does. Settings are changed with
// `hearth config set` while the daemons run, as a user would.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hearthJson, hearthOk, madeDir } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';

const MiB = 2 ** 20;
const SIZE = 64 * MiB;
const CAP = 16 * MiB;

let work: string;
const home = (name: string) => join(work, name);
const running: RunningDaemon[] = [];
let a: RunningDaemon;
let b: RunningDaemon;
let files = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hearth-caps-'));
  for (const name of ['A', 'B']) {
    hearthJson(home(name), ['init']);
    hearthOk(home(name), ['config', 'set', 'name', name]);
  }
  hearthOk(home('A'), ['source', 'add', madeDir(join(work, 'photos'))]);
  a = await startDaemon(home('A'));
  b = await startDaemon(home('B'));
  running.push(a, b);
  const { code } = hearthJson(home('A'), ['invite', '--name', 'bea']);
  hearthJson(home('B'), ['join', code, '--name', 'ann']);
}, 60_000);

afterAll(async () => {
  // The figures, for a reader of the test log: capped, uncapped, lifted by the window, capped by B.
  console.log(`puts of 64 MiB to B: ${sentLines().map(([, , bytes, seconds]) => `${(Number(bytes) / MiB / Number(seconds)).toFixed(1)} MiB/s`).join(', ')} (cap ${CAP / MiB} MiB/s)`);
  await Promise.all(running.map((d) => d.stop()));
  rmSync(work, { recursive: true, force: true });
});

/** `hearth config set` while the daemon runs; it re-reads its settings within a second. */
async function setLive(name: string, key: string, value: string): Promise<void> {
  hearthOk(home(name), ['config', 'set', key, value]);
  await new Promise((r) => setTimeout(r, 1100));
}

const sentLines = () => [...a.stderr().matchAll(/sent (\d+) objects, (\d+) bytes, to relatives in ([\d.]+) s/g)];

/** Back up one new 64 MiB file at A; the put to B that follows, as A logged it. */
async function backUpOneFile(): Promise<{ bytes: number; seconds: number }> {
  const before = sentLines().length;
  writeFileSync(join(work, 'photos', `clip-${++files}.mov`), randomBytes(SIZE), { flag: 'w' });
  expect(hearthJson(home('A'), ['backup']).ok).toBe(true);
  await eventually(() => sentLines().length > before, 'A to log the put to B', 100, 100);
  const [, objects, bytes, seconds] = sentLines().at(-1)!;
  expect(Number(objects)).toBe(1);
  expect(Number(bytes)).toBeGreaterThanOrEqual(SIZE);
  return { bytes: Number(bytes), seconds: Number(seconds) };
}

/** A local-time window from two hours ago to two hours ahead ("21:40-01:40" wraps midnight). */
function windowAroundNow(): string {
  const hhmm = (ms: number) => {
    const d = new Date(Date.now() + ms);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  };
  return `${hhmm(-2 * 3600_000)}-${hhmm(2 * 3600_000)}`;
}

describe('bandwidth caps between two daemons', () => {
  let capped: { bytes: number; seconds: number };

  it('an upload cap holds a 64 MiB put to within 10% of it, and hearth peers shows the connection and the rate', async () => {
    await setLive('A', 'net.upload.limit', '16MiB/s');
    capped = await backUpOneFile();
    // Within 10% of the cap: at most 1.1 x the cap, so at least 0.9 x size/cap seconds.
    expect(capped.seconds).toBeGreaterThanOrEqual((capped.bytes / CAP) * 0.9);

    const peersAtA = hearthJson<any[]>(home('A'), ['peers']);
    expect(peersAtA).toHaveLength(1);
    expect(peersAtA[0]).toMatchObject({ name: 'bea', connection: 'direct', relay: null });
    const to = peersAtA[0].lastTransfer.to;
    expect(to.bytes).toBe(capped.bytes);
    expect(to.bytesPerSecond).toBeLessThanOrEqual(CAP * 1.1);
    expect(to.bytesPerSecond).toBeGreaterThan(0);
    expect(peersAtA[0].lastTransfer.from).toBeNull();
    // B measured the same put as received from A.
    const peersAtB = hearthJson<any[]>(home('B'), ['peers']);
    expect(peersAtB[0]).toMatchObject({ name: 'ann', connection: 'direct' });
    expect(peersAtB[0].lastTransfer.from.bytes).toBe(capped.bytes);
    expect(peersAtB[0].lastTransfer.from.bytesPerSecond).toBeLessThanOrEqual(CAP * 1.1);
    const table = hearthOk(home('A'), ['peers']);
    expect(table).toMatch(/CONNECTED/);
    expect(table).toMatch(/^bea\s+direct\s+.*\d+(\.\d+)? MiB\/s\/-/m);
  }, 60_000);

  it('without the cap the same put is faster', async () => {
    await setLive('A', 'net.upload.limit', 'none');
    const free = await backUpOneFile();
    expect(free.seconds).toBeLessThan(capped.seconds);
  }, 60_000);

  it('the full-speed window lifts the cap while local time is inside it', async () => {
    // A cap so low that any machine beats it once lifted: capped, this put would take 16 s.
    const low = 4 * MiB;
    await setLive('A', 'net.upload.limit', '4MiB/s');
    await setLive('A', 'net.fullSpeed', windowAroundNow());
    const lifted = await backUpOneFile();
    expect(lifted.seconds).toBeLessThan((lifted.bytes / low) * 0.9);
    await setLive('A', 'net.fullSpeed', 'off');
    await setLive('A', 'net.upload.limit', 'none');
  }, 60_000);

  it('a download cap at the receiving home holds its relative\'s put', async () => {
    await setLive('B', 'net.download.limit', '16MiB/s');
    const received = await backUpOneFile();
    expect(received.seconds).toBeGreaterThanOrEqual((received.bytes / CAP) * 0.9);
    expect(a.stderr()).not.toMatch(/failed/);
    expect(b.stderr()).not.toMatch(/failed/);
  }, 60_000);
});
