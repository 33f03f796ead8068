// What the owner is told when the trouble is at the relative, not in its copy: homes
// as separate daemon processes on 127.0.0.1. A's relative bea keeps its hosted
// objects on a 40 MiB tmpfs that is full; cal is killed in the middle of a put.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hearthAsync, hearthJson, hearthOk } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';

let work: string;
let hostedAtB: string;
let mounted = false;
const daemons: RunningDaemon[] = [];
const hooks: Array<Record<string, unknown>> = [];
let server: Server;
const home = (name: string) => join(work, name);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hearth-relative-trouble-'));
  hostedAtB = join(home('B'), 'hosted');
  mkdirSync(hostedAtB, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', hostedAtB], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    console.warn(`skipping: cannot mount a tmpfs for the relative's hosted objects (${(err as Error).message.split('\n')[0]})`);
  }
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      hooks.push(JSON.parse(body) as Record<string, unknown>);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  server?.close();
  if (mounted) execFileSync('umount', [hostedAtB]);
  rmSync(work, { recursive: true, force: true });
});

function pair(inviter: string, joiner: string, joinerCallsInviter: string, inviterCallsJoiner: string): void {
  const { code } = hearthJson(home(inviter), ['invite', '--name', inviterCallsJoiner]);
  hearthJson(home(joiner), ['join', code, '--name', joinerCallsInviter]);
}

/** The CLI's JSON answer, without blocking this process (it serves the daemons' webhook). */
async function cliJson<T = any>(name: string, args: string[]): Promise<T> {
  const r = await hearthAsync(home(name), [...args, '--json']);
  if (r.code !== 0) throw new Error(`hearth ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

async function until(check: () => Promise<boolean> | boolean, what: string, count = 120, ms = 500): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, ms));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Fill a directory's file system with 1 MiB files, then 4 KiB ones, until it refuses. */
function fill(dir: string): string[] {
  const names: string[] = [];
  for (const piece of [1024 * 1024, 4096]) {
    for (let i = 0; i < 1024; i++) {
      const name = join(dir, `filler-${piece}-${i}`);
      try {
        writeFileSync(name, Buffer.alloc(piece, 1));
      } catch {
        rmSync(name, { force: true });
        break;
      }
      names.push(name);
    }
  }
  return names;
}

describe('trouble at a relative', () => {
  let a: RunningDaemon;
  let library: string;
  let fillers: string[] = [];

  it('a full disk at bea is reported as "disk full at bea: N bytes free", alerted once, and resolved once space is free', { timeout: 180_000 }, async (ctx) => {
    if (!mounted) ctx.skip();
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    for (const name of ['A', 'B', 'C']) {
      hearthJson(home(name), ['init']);
      hearthOk(home(name), ['config', 'set', 'name', name]);
      hearthOk(home(name), ['config', 'set', 'replicate.interval', '1s']);
    }
    hearthOk(home('A'), ['config', 'set', 'alerts.webhook', url]);
    hearthOk(home('A'), ['config', 'set', 'policy.peers', '1']);
    library = join(work, 'photos');
    writeFile(library, 'one.jpg', 3 * 1024 * 1024 + 11, 5);
    hearthOk(home('A'), ['source', 'add', library]);
    a = await startDaemon(home('A'));
    daemons.push(a);
    const b = await startDaemon(home('B'));
    daemons.push(b);
    pair('A', 'B', 'ann', 'bea');

    fillers = fill(hostedAtB);
    expect((await cliJson('A', ['backup'])).ok).toBe(true);
    await until(() => (a.stderr().match(/to bea failed: disk full at bea: \d+ bytes free/g) ?? []).length >= 3, 'three passes refused by bea');
    expect(a.stderr()).not.toMatch(/no healthy copy/);
    expect(b.stderr()).toMatch(/put of \S+ from \S+ refused: disk full at the host/);
    const told = hooks.filter((h) => h.problem === 'relative-disk-full');
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ event: 'problem', relative: 'bea', key: 'relative-disk-full:bea' });
    // Nothing was left reserved or half-written at bea.
    const ownerDir = readdirSync(hostedAtB).find((name) => !name.startsWith('filler-'));
    if (ownerDir) expect(readdirSync(join(hostedAtB, ownerDir, 'partial')).length).toBe(0);

    // bea's own scrub still runs on the full disk, read-only, and says so.
    const scrub = await hearthAsync(home('B'), ['scrub']);
    expect(scrub.code).toBe(0);
    expect(scrub.stdout).toMatch(/^warning: .*ENOSPC.*scrubbed read-only, results not recorded for the owners$/m);

    for (const name of fillers) rmSync(name);
    await until(async () => (await cliJson<any[]>('A', ['objects'])).every((o) => o.placements.some((p: any) => p.target === b.peerId)), 'the objects placed at bea once it has room');
    await until(() => hooks.some((h) => h.problem === 'relative-disk-full' && h.event === 'resolved'), 'the disk-full alert to be resolved');
    expect(hooks.filter((h) => h.problem === 'relative-disk-full' && h.event === 'problem')).toHaveLength(1);
  });

  it('a relative that goes offline during a put is reported offline, not as "no healthy copy"', { timeout: 180_000 }, async (ctx) => {
    if (!mounted) ctx.skip();
    const c = await startDaemon(home('C'));
    daemons.push(c);
    pair('A', 'C', 'ann', 'cal');
    hearthOk(home('A'), ['config', 'set', 'policy.peers', '2']);
    writeFile(library, 'big.mov', 200 * 1024 * 1024, 6);
    // The backup's own replication pass is the one interrupted: watch while it runs.
    const backup = cliJson('A', ['backup']);
    // Killed once bytes arrive at cal.
    const partials = (): number => {
      let bytes = 0;
      for (const owner of readdirSync(join(home('C'), 'hosted'), { withFileTypes: true })) {
        if (!owner.isDirectory()) continue;
        const dir = join(home('C'), 'hosted', owner.name, 'partial');
        for (const name of (() => { try { return readdirSync(dir); } catch { return []; } })()) if (!name.includes('.')) bytes += statSync(join(dir, name)).size;
      }
      return bytes;
    };
    await until(() => {
      try {
        return partials() > 0;
      } catch {
        return false;
      }
    }, 'a put under way at cal', 1000, 20);
    c.process.kill('SIGKILL');
    daemons.splice(daemons.indexOf(c), 1);
    await backup;
    await until(() => /to cal failed: cal went offline during the transfer/.test(a.stderr()), 'the put to cal to fail as offline').catch((err) => {
      console.log(a.stderr());
      throw err;
    });
    expect(a.stderr()).not.toMatch(/to cal failed: no healthy copy/);
  });
});
