// Runs the real `hearth` CLI as a separate process, as a user would.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const HEARTH = fileURLToPath(new URL('../../cli/hearth.mjs', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function hearth(home: string, args: string[], input?: string): CliResult {
  const r = spawnSync(process.execPath, [HEARTH, '--home', home, ...args], { encoding: 'utf8', input, maxBuffer: 256 << 20, env: { ...process.env, HEARTH_HOME: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Run and insist on success; returns stdout. */
export function hearthOk(home: string, args: string[], input?: string): string {
  const r = hearth(home, args, input);
  if (r.code !== 0) throw new Error(`hearth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

export function hearthJson<T = any>(home: string, args: string[]): T {
  return JSON.parse(hearthOk(home, [...args, '--json'])) as T;
}

/** Start hearth in the background (for killing it mid-run). */
export function hearthSpawn(home: string, args: string[]) {
  return spawn(process.execPath, [HEARTH, '--home', home, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Like hearth(), but leaves this process's event loop running (for servers the test itself runs). */
export function hearthAsync(home: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = hearthSpawn(home, args);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** A target folder that exists, as `hearth target add dir` requires (a USB disk that is plugged in). */
export function madeDir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

/** hearthAsync, insisting on success; returns stdout. */
export async function hearthAsyncOk(home: string, args: string[]): Promise<string> {
  const r = await hearthAsync(home, args);
  if (r.code !== 0) throw new Error(`hearth ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
