// The image's scripts, run on this machine without Docker: docker/entrypoint.sh and
// docker/healthcheck.sh find `hearth` on PATH as a symlink to cli/hearth.mjs, the
// way docker/Dockerfile installs it, with the environment the image sets. The image
// itself cannot be built here (no Docker daemon); its Dockerfile is checked statically.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const DOCKER = join(REPO, 'docker');
const ENTRYPOINT = join(DOCKER, 'entrypoint.sh');
const HEALTHCHECK = join(DOCKER, 'healthcheck.sh');
const START_ATTEMPTS = 120;
const ATTEMPT_GAP_MS = 500;
const STOP_BOUND_MS = 30_000;

let work: string;
let env: NodeJS.ProcessEnv;
let daemon: ChildProcess | undefined;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-docker-'));
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(join(REPO, 'cli', 'hearth.mjs'), join(bin, 'hearth'));
  env = {
    PATH: [bin, dirname(process.execPath), '/usr/bin', '/bin'].join(':'),
    HOME: work,
    HEARTH_HOME: join(work, 'home'),
    NODE_COMPILE_CACHE: join(work, 'node-compile-cache'),
    // The image listens on 4001 on every interface; a test stays on loopback, any port.
    HEARTH_LISTEN: '/ip4/127.0.0.1/tcp/0',
    // What a published port on Docker's bridge needs; never dialled here.
    HEARTH_ANNOUNCE: '/ip4/127.0.0.1/tcp/4001',
  };
});

afterAll(async () => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const exited = new Promise((resolve) => daemon!.once('exit', resolve));
    // The whole group: were the daemon a child of sh rather than exec'd, it would outlive sh.
    process.kill(-daemon.pid!, 'SIGKILL');
    await exited;
  }
  rmSync(work, { recursive: true, force: true });
});

function run(script: string, args: string[] = []) {
  const r = spawnSync(script, args, { env, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('docker/entrypoint.sh', () => {
  it('refuses an uninitialized home with one line telling how to init, for the daemon and for commands', () => {
    for (const args of [[], ['status']]) {
      const r = run(ENTRYPOINT, args);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('docker compose run --rm hearth init');
      expect(lines[0]).toContain(env.HEARTH_HOME);
    }
    expect(existsSync(env.HEARTH_HOME!)).toBe(false);
  });

  it('runs hearth init with its arguments', () => {
    const r = run(ENTRYPOINT, ['init', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { home: string; peerId: string; phrase: string };
    expect(result.home).toBe(env.HEARTH_HOME);
    expect(result.phrase.split(' ')).toHaveLength(24);
    expect(existsSync(join(env.HEARTH_HOME!, 'identity.json'))).toBe(true);
  });

  it('passes other commands to hearth once the home exists', () => {
    const photos = join(work, 'photos');
    mkdirSync(photos);
    const added = run(ENTRYPOINT, ['source', 'add', photos]);
    expect(added.code, added.stderr).toBe(0);
    const status = run(ENTRYPOINT, ['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const doc = JSON.parse(status.stdout) as { daemon: boolean; sources: Array<{ path: string }> };
    expect(doc.sources.map((s) => s.path)).toEqual([photos]);
    expect(doc.daemon).toBe(false);
  });

  it('the healthcheck fails while no daemon runs', () => {
    expect(run(HEALTHCHECK).code).not.toBe(0);
  });

  it('with no arguments execs the daemon: healthy, it is the entrypoint process itself, and SIGTERM stops it with exit 0', async () => {
    daemon = spawn(ENTRYPOINT, [], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    daemon.stderr!.on('data', (d) => (stderr += d));
    const firstLine = new Promise<string>((resolve) => createInterface({ input: daemon!.stdout! }).once('line', resolve));

    let healthy = false;
    for (let i = 0; i < START_ATTEMPTS && !healthy && daemon.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, ATTEMPT_GAP_MS));
      healthy = run(HEALTHCHECK).code === 0;
    }
    expect(healthy, `daemon never became healthy: ${stderr}`).toBe(true);

    const { peerId, addrs } = JSON.parse(await firstLine) as { peerId: string; addrs: string[] };
    expect(addrs).toEqual([`${env.HEARTH_ANNOUNCE}/p2p/${peerId}`]);
    // The home's lock holds its owner's pid: the daemon kept the entrypoint's pid, so sh exec'd it.
    expect(Number(readFileSync(join(env.HEARTH_HOME!, 'lock'), 'utf8').trim())).toBe(daemon.pid);

    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      daemon!.once('exit', (code, signal) => resolve({ code, signal })),
    );
    daemon.kill('SIGTERM');
    let bound: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([exit, new Promise<'still running'>((resolve) => (bound = setTimeout(() => resolve('still running'), STOP_BOUND_MS)))]);
    clearTimeout(bound);
    expect(outcome, stderr).toEqual({ code: 0, signal: null });
    expect(stderr).toContain('hearth daemon stopped');
    expect(run(HEALTHCHECK).code).not.toBe(0);
  });
});

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Array<{ op: string; rest: string }> {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [op, ...rest] = line.split(/\s+/);
      return { op: op!.toUpperCase(), rest: rest.join(' ') };
    });
}

describe('docker/Dockerfile', () => {
  const steps = instructions(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8'));
  const workdir = steps.filter((s) => s.op === 'WORKDIR').at(-1)!.rest;
  const copies = steps
    .filter((s) => s.op === 'COPY')
    .map((s) => {
      const parts = s.rest.split(/\s+/).filter((p) => !p.startsWith('--'));
      const target = parts.pop()!;
      return { sources: parts, dest: posix.resolve(workdir, target), intoDir: target.endsWith('/') || parts.length > 1 };
    });

  /** Where an image path under a COPY destination comes from in this repository. */
  function repoPathOf(imagePath: string): string | undefined {
    for (const { sources, dest, intoDir } of copies) {
      for (const source of sources) {
        // A directory's contents land in dest; a file lands at dest, or inside it when dest is a directory.
        const isDir = source.endsWith('/');
        const landed = intoDir && !isDir ? posix.join(dest, posix.basename(source)) : dest;
        if (imagePath === landed) return join(REPO, source);
        if (isDir && imagePath.startsWith(landed + '/')) return join(REPO, source, posix.relative(landed, imagePath));
      }
    }
    return undefined;
  }

  function expectRunnable(imagePath: string): void {
    const file = repoPathOf(imagePath);
    expect(file, `${imagePath} is not copied into the image`).toBeDefined();
    expect(() => accessSync(file!, constants.X_OK), `${file} must exist and be executable`).not.toThrow();
  }

  it('copies only paths that exist, and the build context sends each of them', () => {
    const allowed = readFileSync(join(DOCKER, 'Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1));
    const sources = copies.flatMap((c) => c.sources);
    expect(sources).toContain('package-lock.json');
    for (const source of sources) {
      expect(existsSync(join(REPO, source)), `COPY ${source}`).toBe(true);
      if (source.endsWith('/')) expect(statSync(join(REPO, source)).isDirectory()).toBe(true);
      expect(allowed, `docker/Dockerfile.dockerignore must let ${source} through`).toContain(source);
    }
  });

  it('its ENTRYPOINT, HEALTHCHECK and hearth command are scripts the image holds', () => {
    const entrypoint = JSON.parse(steps.find((s) => s.op === 'ENTRYPOINT')!.rest) as string[];
    expectRunnable(entrypoint[0]!);
    expect(repoPathOf(entrypoint[0]!)).toBe(ENTRYPOINT);

    const health = steps.find((s) => s.op === 'HEALTHCHECK')!.rest;
    const command = JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[];
    expectRunnable(command[0]!);
    expect(repoPathOf(command[0]!)).toBe(HEALTHCHECK);

    const link = steps.map((s) => /ln -s (\S+) \/usr\/local\/bin\/hearth\b/.exec(s.rest)).find(Boolean);
    expect(link, 'the Dockerfile puts hearth on PATH').toBeTruthy();
    expectRunnable(link![1]!);
    expect(repoPathOf(link![1]!)).toBe(join(REPO, 'cli', 'hearth.mjs'));
  });

  it('runs as a non-root user with the home in a volume and a writable compile cache', () => {
    const user = steps.filter((s) => s.op === 'USER').at(-1)?.rest;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    const envs = steps.filter((s) => s.op === 'ENV').map((s) => s.rest).join(' ');
    expect(envs).toMatch(/HEARTH_HOME=\/var\/lib\/hearth\b/);
    expect(steps.find((s) => s.op === 'VOLUME')!.rest).toContain('/var/lib/hearth');
    const cache = /NODE_COMPILE_CACHE=(\S+)/.exec(envs)![1]!;
    const chowned = steps.flatMap((s) => (s.op === 'RUN' ? [...s.rest.matchAll(new RegExp(`chown ${user}:${user} ([^&]+)`, 'g'))].flatMap((m) => m[1]!.trim().split(/\s+/)) : []));
    expect(chowned.some((dir) => cache.startsWith(dir + '/'))).toBe(true);
    expect(chowned).toContain('/var/lib/hearth');
  });
});
