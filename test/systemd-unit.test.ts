// contrib/systemd's units, run as systemd would run them, without systemd (none runs
// here): each unit's Environment= lines become the environment, its ExecStart line is
// expanded ($VAR split at whitespace, as systemd does) and started with `hearth` on
// PATH as a symlink to cli/hearth.mjs. The daemon it starts answers `status`, and
// SIGTERM (the unit's KillSignal) stops it with exit 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const STOP_BOUND_MS = 30_000;
let work: string;
let bin: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-systemd-'));
  bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(join(REPO, 'cli', 'hearth.mjs'), join(bin, 'hearth'));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The [Service] section's settings; Environment= may repeat and may be quoted. */
function service(unit: string): { env: Record<string, string>; execStart: string; values: Map<string, string> } {
  const text = readFileSync(join(REPO, 'contrib', 'systemd', unit), 'utf8');
  const section = text.split(/^\[/m).find((s) => s.startsWith('Service]'))!;
  const env: Record<string, string> = {};
  const values = new Map<string, string>();
  for (const line of section.split('\n').slice(1)) {
    const m = /^(\w+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'Environment') {
      const assignment = m[2]!.replace(/^"(.*)"$/, '$1');
      const eq = assignment.indexOf('=');
      env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
    } else values.set(m[1]!, m[2]!);
  }
  return { env, execStart: values.get('ExecStart')!, values };
}

/** systemd's expansion: $VAR becomes the variable's words, ${VAR} one word. */
function expand(execStart: string, env: Record<string, string>): string[] {
  return execStart.split(/\s+/).flatMap((word) => {
    const m = /^\$(\w+)$/.exec(word);
    return m ? (env[m[1]!] ?? '').split(/\s+/).filter(Boolean) : [word.replace(/\$\{(\w+)\}/g, (_, v: string) => env[v] ?? '')];
  });
}

describe.each(['hearth.service', 'hearth-user.service'])('contrib/systemd/%s', (unit) => {
  it('its ExecStart starts a daemon that answers and stops cleanly on its KillSignal', async () => {
    const { env: unitEnv, execStart, values } = service(unit);
    expect(execStart).toMatch(/\bhearth daemon\b/);
    expect(values.get('KillSignal')).toBe('SIGTERM');
    const home = join(work, unit);
    // The unit's environment, with the home and listen address a test may use (loopback, any port).
    const env: Record<string, string> = {
      ...unitEnv,
      PATH: [bin, dirname(process.execPath), '/usr/bin', '/bin'].join(':'),
      HOME: join(work, `${unit}-user`),
      HEARTH_HOME: home,
      HEARTH_DAEMON_ARGS: unitEnv.HEARTH_DAEMON_ARGS!.replace('/ip4/0.0.0.0/tcp/4001', '/ip4/127.0.0.1/tcp/0'),
    };
    expect(unitEnv.HEARTH_DAEMON_ARGS).toContain('--listen');
    if (unit === 'hearth.service') expect(unitEnv.HEARTH_HOME).toBe('/var/lib/hearth');
    const init = spawnSync(join(bin, 'hearth'), ['init', '--json'], { env, encoding: 'utf8' });
    expect(init.status, init.stderr).toBe(0);

    const [command, ...args] = expand(execStart, env);
    const child = spawn(command!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    expect(JSON.parse(first).addrs.every((a: string) => a.startsWith('/ip4/127.0.0.1/'))).toBe(true);
    const status = spawnSync(join(bin, 'hearth'), ['status', '--json'], { env, encoding: 'utf8' });
    expect(status.status, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).daemon).toBe(true);
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_BOUND_MS);
    expect(await exited).toBe(0);
    clearTimeout(kill);
  });
});
