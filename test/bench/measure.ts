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

/** Best effort: cold reads when we may (root, outside a locked-down container); says whether it could. */
export function dropCaches(): boolean {
  return spawnSync('sh', ['-c', 'sync; echo 1 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' }).status === 0;
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

/** Pairs per comparison: 5 by default, 2 with HEARTH_BENCH_QUICK=1; HEARTH_BENCH_PAIRS=N overrides both. */
export const PAIRS = Number(process.env.HEARTH_BENCH_PAIRS) || (process.env.HEARTH_BENCH_QUICK ? 2 : 5);

/**
 * The page cache a timed run starts from, the same for both tools: cold drops it
 * just before the run (when the bench may; see dropCaches); warm runs the same
 * command once, untimed, just before, so it finds what it reads in memory.
 */
export type CacheState = 'cold' | 'warm';

/** One tool's side of a comparison: an untimed preparation (fresh repository, empty folder), then the timed run. */
export interface Side {
  prepare?: () => Promise<unknown> | unknown;
  run: () => Promise<Run>;
}

export interface Pairs {
  cache: CacheState;
  hearth: Run[];
  /** Empty when the reference tool's part did not run. */
  reference: Run[];
}

/**
 * Hearth, reference, Hearth, reference, ...: `pairs` times, each run prepared and
 * then started from `cache`. `what` goes to stderr first: a full bench is long.
 */
export async function pairedRuns(what: string, pairs: number, cache: CacheState, hearth: Side, reference?: Side): Promise<Pairs> {
  process.stderr.write(`${what}: ${pairs} pairs, ${cache}\n`);
  const result: Pairs = { cache, hearth: [], reference: [] };
  const once = async (side: Side): Promise<Run> => {
    await side.prepare?.();
    if (cache === 'cold') dropCaches();
    else await side.run();
    return side.run();
  };
  for (let i = 0; i < pairs; i++) {
    result.hearth.push(await once(hearth));
    if (reference) result.reference.push(await once(reference));
  }
  return result;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A tool's own spread: its slowest run over its fastest. */
const spread = (runs: Run[]): number => Math.max(...runs.map((r) => r.seconds)) / Math.min(...runs.map((r) => r.seconds));

export interface PairSummary {
  pairs: number;
  cache: CacheState;
  /** Amount of work per second (MB/s, files/s) at each tool's median time. */
  hearthRate: number;
  referenceRate: number;
  /** Per pair, Hearth's rate over the reference's: above 1 Hearth is faster. */
  medianRatio: number;
  minRatio: number;
  maxRatio: number;
  hearthSpread: number;
  referenceSpread: number;
  /** The highest peak RSS of each tool's runs. */
  hearthPeakRssMb: number;
  referencePeakRssMb: number;
}

/**
 * Medians, ratios and spreads of paired runs. `amount` is the work one run does
 * (bytes in MB, files), per side when the two move different amounts (a transfer's
 * framing); reference figures are NaN when its part did not run.
 */
export function pairSummary(p: Pairs, amount: number | { hearth: number; reference: number }): PairSummary {
  const [ah, ar] = typeof amount === 'number' ? [amount, amount] : [amount.hearth, amount.reference];
  const ratios = p.reference.map((r, i) => (ah / p.hearth[i]!.seconds) / (ar / r.seconds));
  const none = ratios.length === 0;
  return {
    pairs: p.hearth.length,
    cache: p.cache,
    hearthRate: ah / median(p.hearth.map((r) => r.seconds)),
    referenceRate: none ? NaN : ar / median(p.reference.map((r) => r.seconds)),
    medianRatio: none ? NaN : median(ratios),
    minRatio: none ? NaN : Math.min(...ratios),
    maxRatio: none ? NaN : Math.max(...ratios),
    hearthSpread: spread(p.hearth),
    referenceSpread: none ? NaN : spread(p.reference),
    hearthPeakRssMb: Math.max(...p.hearth.map((r) => r.peakRssMb)),
    referencePeakRssMb: none ? NaN : Math.max(...p.reference.map((r) => r.peakRssMb)),
  };
}

/** One row of the bench's table: a Hearth figure next to its reference, and the machine ceilings (ceilings.ts) that bound it. */
export interface Comparison {
  label: string;
  unit: 'MB/s' | 'files/s';
  summary: PairSummary;
  target?: string;
  bounds?: string[];
}

const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : '');
const rate = (n: number, unit: Comparison['unit']) => fixed(n, unit === 'MB/s' ? 1 : 0);
const both = (hearth: number, reference: number, digits: number) => fixed(hearth, digits) + (Number.isFinite(reference) ? ` / ${fixed(reference, digits)}` : '');

/** The table's lines, columns aligned. */
export function comparisonTable(rows: Comparison[]): string[] {
  const cells = [
    ['measure', 'cache', 'pairs', 'hearth', 'reference', 'median ratio', 'ratio min-max', 'spread h / ref', 'peak RSS MB h / ref', 'target'],
    ...rows.map(({ label, unit, summary: s, target }) => [
      `${label} (${unit})`, s.cache, String(s.pairs), rate(s.hearthRate, unit), rate(s.referenceRate, unit),
      Number.isFinite(s.medianRatio) ? `${fixed(s.medianRatio, 2)}x` : '',
      Number.isFinite(s.minRatio) ? `${fixed(s.minRatio, 2)}-${fixed(s.maxRatio, 2)}` : '',
      both(s.hearthSpread, s.referenceSpread, 2),
      both(s.hearthPeakRssMb, s.referencePeakRssMb, 0),
      target ?? '',
    ]),
  ];
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}
