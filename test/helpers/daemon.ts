// Hearth daemons as separate processes on 127.0.0.1, as a family would run them.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { HEARTH } from './cli.ts';

export interface RunningDaemon {
  home: string;
  peerId: string;
  addrs: string[];
  process: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

export interface StartDaemonOptions {
  /** Rewrites the command line, e.g. to run it in a network namespace (test/helpers/nat-lab.ts: NatLab.wrap). */
  wrap?: (command: string, args: string[]) => [string, string[]];
}

/** `args`: more `hearth daemon` options; without a --listen of its own, any free port on 127.0.0.1. */
export async function startDaemon(home: string, args: string[] = [], options: StartDaemonOptions = {}): Promise<RunningDaemon> {
  const listen = args.includes('--listen') ? [] : ['--listen', '/ip4/127.0.0.1/tcp/0'];
  const argv = [HEARTH, '--home', home, 'daemon', ...listen, ...args];
  const [command, full] = options.wrap ? options.wrap(process.execPath, argv) : [process.execPath, argv];
  const child = spawn(command, full, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon in ${home} did not start within 30 s: ${err}`)), 30_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon in ${home} exited ${code}: ${err}`));
    });
  });
  const { peerId, addrs } = JSON.parse(first) as { peerId: string; addrs: string[] };
  return {
    home, peerId, addrs, process: child, stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** Poll until `check` returns true, at most `count` times, `ms` apart. */
export async function eventually(check: () => boolean, what: string, count = 60, ms = 500): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, ms));
  }
  throw new Error(`timed out waiting for ${what}`);
}
