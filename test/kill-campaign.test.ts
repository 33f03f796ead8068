// Seeded kill campaigns: 20 SIGKILLs of the owner at random points of a backup,
// with the library changing between runs (new, modified and deleted files, and a
// file rewritten while a run reads it), then `catalog verify`, a backup, a restore
// byte-exact with the library's final state, and for every moment between runs an
// `ls --at` whose every version restores. (a) the owner is the CLI (no daemon);
// (b) the owner is a daemon replicating to a relative's daemon on its own (timer,
// connect, start-up) while it backs up, killed and started again each round.
//
// Replay a failure: HEARTH_CAMPAIGN_SEED=<the seed printed in the test name> npx vitest run test/kill-campaign.test.ts
// The seed replays every choice (library changes, --pack, the delay of each kill after
// the run's first progress); where in the run a kill lands still depends on the machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearthAsync, hearthJson, hearthOk, hearthSpawn, madeDir } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { pseudoRandom, snapshotTree, writeFile } from './helpers/library.ts';

const SEED = Number(process.env.HEARTH_CAMPAIGN_SEED ?? Math.floor(Math.random() * 2 ** 31));
const KILLS = 20;

/** mulberry32: a small seeded generator, so a campaign's choices replay from its seed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let work: string;
const running: RunningDaemon[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-campaign-'));
});

afterAll(async () => {
  await Promise.all(running.map((d) => d.stop()));
  rmSync(work, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The library and the changes a family makes to it between runs, all drawn from `random`. */
class ChangingLibrary {
  readonly root: string;
  private readonly random: () => number;
  private files: string[] = [];
  private next = 0;

  constructor(root: string, random: () => number) {
    this.root = root;
    this.random = random;
    for (let i = 0; i < 12; i++) this.add();
  }

  private size(): number {
    // Mostly photo-like sizes under the 1 MiB volume, now and then one past it.
    return this.random() < 0.1 ? 1_100_000 + Math.floor(this.random() * 200_000) : 500 + Math.floor(this.random() * 300_000);
  }

  private pick(): string | undefined {
    return this.files[Math.floor(this.random() * this.files.length)];
  }

  private add(): void {
    const path = `${2020 + (this.next % 4)}/img-${this.next++}.jpg`;
    writeFile(this.root, path, this.size(), Math.floor(this.random() * 1e9));
    this.files.push(path);
  }

  change(): void {
    const adds = 1 + Math.floor(this.random() * 3);
    for (let i = 0; i < adds; i++) this.add();
    const modified = this.pick();
    if (modified) writeFile(this.root, modified, this.size(), Math.floor(this.random() * 1e9));
    if (this.files.length > 8 && this.random() < 0.5) {
      const gone = this.pick()!;
      rmSync(join(this.root, gone));
      this.files = this.files.filter((f) => f !== gone);
    }
  }

  /** Rewrites one file again and again while a run may be reading it; returns the stop. */
  keepRewriting(): () => void {
    const path = join(this.root, 'changing.bin');
    let n = 0;
    const timer = setInterval(() => writeFileSync(path, pseudoRandom(200_000 + (n % 7) * 1000, n++)), 15);
    return () => clearInterval(timer);
  }
}

/**
 * Kill once the run reports its first progress (so the kill lands in the backup,
 * not in Node's start-up), after a further random 0-800 ms; a run that ends first
 * is simply not killed. Bounded: at most 30 s for the first progress line.
 */
async function killDuringRun(client: ChildProcess, random: () => number, kill: () => void): Promise<void> {
  const delay = random() * 800;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 30_000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    client.stderr!.once('data', done);
    client.once('exit', done);
  });
  await sleep(delay);
  kill();
}

/** Restore everything as of `at` (or now) into a fresh folder; the report. */
async function restoreAll(homeDir: string, to: string, at?: number): Promise<{ files: number; failed: Array<{ path: string; error: string }> }> {
  const r = await hearthAsync(homeDir, ['restore', '--to', to, '--json', ...(at === undefined ? [] : ['--at', new Date(at).toISOString()])]);
  expect(r.stderr, r.stderr).not.toMatch(/TypeError|ReferenceError|Cannot read properties/);
  return JSON.parse(r.stdout);
}

/**
 * What every campaign ends with: the log verifies, a backup completes, a restore
 * is byte-exact with the library, and every version `ls --at` lists restores.
 */
async function checkAfterCampaign(homeDir: string, library: ChangingLibrary, moments: number[]): Promise<void> {
  expect(hearthJson(homeDir, ['catalog', 'verify']).ok).toBe(true);
  const final = hearthJson(homeDir, ['backup', '--json']);
  expect(final.errors).toEqual([]);
  expect(final.ok).toBe(true);

  const to = join(work, `restore-${homeDir.split('/').pop()}`);
  const restored = await restoreAll(homeDir, to);
  expect(restored.failed).toEqual([]);
  const source = readdirSync(to)[0]!;
  expect(snapshotTree(join(to, source))).toEqual(snapshotTree(library.root));

  // Issue 9 item 3 (another helper's fix: "a version becomes visible only once its
  // bytes are stored"): until it lands, a run killed between recording a version and
  // storing its bytes makes this fail with "no reachable place holds its bytes".
  const unrestorable: string[] = [];
  const proven = new Set<string>();
  for (const [i, at] of moments.entries()) {
    const when = new Date(at).toISOString();
    const listed = hearthJson<any[]>(homeDir, ['ls', '--at', when]).filter((e) => e.type === 'file');
    // A moment listing exactly the versions of one already restored needs no second restore.
    const versions = JSON.stringify(listed.map((e) => [e.path, e.hash]).sort());
    if (proven.has(versions)) continue;
    proven.add(versions);
    const back = await restoreAll(homeDir, join(to + '-at', String(i)), at);
    for (const f of back.failed) unrestorable.push(`${when} ${f.path}: ${f.error}`);
    if (back.files + back.failed.length !== listed.length) unrestorable.push(`${when}: ls lists ${listed.length} files, restore gave ${back.files} and failed ${back.failed.length}`);
  }
  expect(unrestorable, 'versions listed that cannot be restored (issue 9 item 3 while it is open)').toEqual([]);
}

describe(`kill campaigns (HEARTH_CAMPAIGN_SEED=${SEED})`, () => {
  it(`(a) ${KILLS} SIGKILLs of a CLI backup, no daemon`, async () => {
    const random = generator(SEED);
    const homeDir = join(work, 'a');
    const library = new ChangingLibrary(join(work, 'photos-a'), random);
    hearthJson(homeDir, ['init']);
    hearthOk(homeDir, ['source', 'add', library.root, '--name', 'photos']);
    hearthOk(homeDir, ['target', 'add', 'dir', madeDir(join(work, 'disk-a'))]);
    hearthOk(homeDir, ['config', 'set', 'volume.size', '1MiB']);
    const moments: number[] = [];
    let killedMidRun = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      library.change();
      const stopRewriting = kill % 4 === 3 ? library.keepRewriting() : () => {};
      const child = hearthSpawn(homeDir, ['backup', '--json', ...(random() < 0.2 ? ['--pack'] : [])]);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await killDuringRun(child, random, () => child.kill('SIGKILL'));
      await exited;
      if (child.signalCode === 'SIGKILL') killedMidRun++;
      stopRewriting();
      moments.push(Date.now());
      await sleep(5);
    }
    // Most kills land in a run; a run that finished first is only a smaller kill.
    expect(killedMidRun).toBeGreaterThan(0);
    await checkAfterCampaign(homeDir, library, moments);
  }, 300_000);

  it(`(b) ${KILLS} SIGKILLs of a daemon backing up while it replicates to a relative on its own`, async () => {
    const random = generator(SEED + 1);
    const owner = join(work, 'b');
    const relative = join(work, 'b-relative');
    const library = new ChangingLibrary(join(work, 'photos-b'), random);
    for (const h of [owner, relative]) {
      hearthJson(h, ['init']);
      hearthOk(h, ['config', 'set', 'replicate.interval', '1s']);
    }
    hearthOk(owner, ['source', 'add', library.root, '--name', 'photos']);
    hearthOk(owner, ['target', 'add', 'dir', madeDir(join(work, 'disk-b'))]);
    hearthOk(owner, ['config', 'set', 'volume.size', '1MiB']);
    hearthOk(owner, ['config', 'set', 'policy.peers', '1']);
    const b = await startDaemon(relative);
    running.push(b);
    let a = await startDaemon(owner);
    const { code } = hearthJson(owner, ['invite', '--name', 'bea']);
    hearthJson(relative, ['join', code, '--name', 'ann']);
    const moments: number[] = [];
    let killedMidRun = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      library.change();
      const stopRewriting = kill % 4 === 3 ? library.keepRewriting() : () => {};
      const client = hearthSpawn(owner, ['backup', '--json', ...(random() < 0.2 ? ['--pack'] : [])]);
      const clientExited = new Promise((resolve) => client.once('exit', resolve));
      const daemonExited = new Promise((resolve) => a.process.once('exit', resolve));
      await killDuringRun(client, random, () => a.process.kill('SIGKILL'));
      await daemonExited;
      await clientExited;
      if (client.exitCode !== 0) killedMidRun++;
      stopRewriting();
      moments.push(Date.now());
      expect(a.stderr()).not.toMatch(/Cannot read properties|failed: TypeError/);
      // Started again, it replicates at once (start-up, connect) and on its timer.
      a = await startDaemon(owner);
    }
    running.push(a);
    expect(killedMidRun).toBeGreaterThan(0);
    await checkAfterCampaign(owner, library, moments);
    expect(a.stderr()).not.toMatch(/Cannot read properties|failed: TypeError/);
  }, 300_000);
});
