// The Drive part of `npm run bench`: a day's staged blobs of the photo-like set
// (many 2 MB blobs, a few 30 MB videos) uploaded to the Drive v3 emulator on
// 127.0.0.1 (its own process) by Hearth's DriveTier and by a bare googleapis
// files.create of the same bytes, in pairs (Hearth, bare, Hearth, ...), each side
// in its own process so peak RSS is its own; median ratio, min-max, each side's
// spread, requests per blob counted at the emulator. Data in a temporary directory,
// removed afterwards. 5 pairs of 450 MB; HEARTH_BENCH_QUICK=1: 2 pairs of 50 MB
// (HEARTH_BENCH_PAIRS=N sets the pairs).
// Standalone: node test/bench/drive-bench.ts
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { median, PAIRS, pairedRuns, pairSummary, run, type Run, type Side } from './measure.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const bench = (file: string) => join(repo, 'test', 'bench', file);

interface Emulator {
  url: string;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  folderId: string;
}

interface Counted {
  requests: Record<string, number>;
  files: number;
  bytes: number;
}

/** The emulator's process, and its "count" answer: requests since the last count (its files are then dropped). */
async function startEmulator(): Promise<{ emulator: Emulator; count(): Promise<Counted>; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [bench('drive-emulator-server.ts')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async <T>(): Promise<T> => {
    const line = await lines.next();
    if (line.done) throw new Error('the Drive emulator exited');
    return JSON.parse(line.value) as T;
  };
  const emulator = await next<Emulator>();
  return {
    emulator,
    count: () => {
      child.stdin.write('count\n');
      return next<Counted>();
    },
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin.end();
      }),
  };
}

function buildBlobs(dir: string, quick: boolean): { blobs: number; bytes: number } {
  const spec: Array<[number, number]> = quick ? [[10, 2_000_000], [1, 30_000_000]] : [[150, 2_000_000], [5, 30_000_000]];
  mkdirSync(dir, { recursive: true });
  const buf = Buffer.alloc(30_000_000);
  let n = 0;
  for (const [count, size] of spec) {
    for (let i = 0; i < count; i++) {
      randomFillSync(buf, 0, size);
      writeFileSync(join(dir, `blob-${String(n++).padStart(4, '0')}`), buf.subarray(0, size));
    }
  }
  return { blobs: n, bytes: spec.reduce((t, [count, size]) => t + count * size, 0) };
}

/** Lines for the bench's report. */
export async function driveBench(): Promise<string[]> {
  const quick = Boolean(process.env.HEARTH_BENCH_QUICK);
  const work = mkdtempSync(join(tmpdir(), 'hearth-drive-bench-'));
  const data = join(work, 'blobs');
  const { blobs, bytes } = buildBlobs(data, quick);
  const emu = await startEmulator();
  try {
    const { url, clientId, clientSecret, refreshToken, folderId } = emu.emulator;
    const cpu = { hearth: [] as number[], bare: [] as number[] };
    const requests = { hearth: {} as Record<string, number>, bare: {} as Record<string, number> };
    let journals = 0;
    // Each uploader times its own upload (not its start-up); the emulator then says what it stored.
    const side = (name: 'hearth' | 'bare', args: () => string[]): Side => ({
      run: async (): Promise<Run> => {
        const r = await run(process.execPath, args());
        const counted = await emu.count();
        if (counted.files !== blobs || counted.bytes !== bytes) throw new Error(`drive bench: ${name} stored ${counted.files} files, ${counted.bytes} bytes; expected ${blobs}, ${bytes}`);
        const own = JSON.parse(r.stdout) as { seconds: number; cpuSeconds: number };
        cpu[name].push(own.cpuSeconds);
        requests[name] = counted.requests;
        return { ...r, seconds: own.seconds };
      },
    });
    const p = await pairedRuns('drive upload vs googleapis', PAIRS, 'cold',
      side('hearth', () => [bench('drive-upload-hearth.ts'), url, clientId, clientSecret, refreshToken, folderId, join(work, `journal-${journals++}`), data]),
      side('bare', () => [bench('drive-upload-bare.ts'), url, clientId, clientSecret, refreshToken, folderId, data]));
    const up = pairSummary(p, bytes / 1e6);
    const perBlob = (r: Record<string, number>) => {
      const total = Object.values(r).reduce((a, b) => a + b, 0);
      return `${(total / blobs).toFixed(2)} (${Object.entries(r).map(([op, n]) => `${op} ${n}`).join(', ')})`;
    };
    return [
      `\ndrive upload of ${blobs} staged blobs (${(bytes / 1e6).toFixed(0)} MB: 2 MB photos, 30 MB videos) to the Drive v3 emulator on 127.0.0.1, ${up.pairs} pairs, cold cache:`,
      `  hearth DriveTier ${up.hearthRate.toFixed(0)} MB/s, bare googleapis files.create ${up.referenceRate.toFixed(0)} MB/s: median ratio ${up.medianRatio.toFixed(2)}x (min ${up.minRatio.toFixed(2)}, max ${up.maxRatio.toFixed(2)}; target >= 0.9x); spreads ${up.hearthSpread.toFixed(2)} / ${up.referenceSpread.toFixed(2)}`,
      `  requests per blob: hearth ${perBlob(requests.hearth)}; bare ${perBlob(requests.bare)}`,
      `  CPU of the uploader: hearth ${median(cpu.hearth).toFixed(2)} s, bare ${median(cpu.bare).toFixed(2)} s; peak RSS hearth ${up.hearthPeakRssMb.toFixed(0)} MB, bare ${up.referencePeakRssMb.toFixed(0)} MB`,
    ];
  } finally {
    await emu.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) for (const line of await driveBench()) console.log(line);
