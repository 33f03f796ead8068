// Running a command the way the bench measures it: wall time and peak RSS (VmHWM,
// polled from /proc for the process and its children).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';

export interface Run {
  seconds: number;
  peakRssMb: number;
  stdout: string;
}

/** Run a command, polling its peak RSS (VmHWM) from /proc while it runs. */
export function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; shell?: boolean } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'], shell: options.shell });
    let peakKb = 0;
    let stdout = '';
    let stderr = '';
    const poll = setInterval(() => {
      for (const pid of [child.pid, ...childPids(child.pid!)]) {
        try {
          const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
          if (m) peakKb = Math.max(peakKb, Number(m[1]));
        } catch {}
      }
    }, 50);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    if (options.input) child.stdin.end(options.input);
    else child.stdin.end();
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(poll);
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, peakRssMb: peakKb / 1024, stdout });
    });
  });
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Best effort: cold reads for the first backups when we may; otherwise both tools see the same warm cache. */
export function dropCaches(): void {
  spawnSync('sh', ['-c', 'sync; echo 1 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
}


/**
 * The machine the figures come from, so two runs can be told apart: figures from a
 * CPU without SHA extensions, or on another kernel, are not comparable.
 */
export function machineLine(): string {
  let model = 'unknown CPU';
  let flags = new Set<string>();
  try {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? model;
    flags = new Set((/^flags\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? '').split(/\s+/));
  } catch {}
  const has = (flag: string, label: string) => `${label} ${flags.has(flag) ? 'yes' : 'no'}`;
  return `machine: ${model}, ${availableParallelism()} cores, ${has('sha_ni', 'SHA-NI')}, ${has('avx512f', 'AVX-512')}, ${has('vaes', 'VAES')}; Linux ${release()}; Node ${process.versions.node}`;
}
