// Scanner throughput: a first scan (everything hashed) and a no-change scan (nothing
// read) of 100,000 x 4 KiB files, the set FIELD-NOTES timed restic on (no-change
// 3.9-5.5 s). With --large it also hashes a 2.6 GB photo-like set (1,000 x 2 MB +
// 20 x 30 MB) with one worker and with one per core.
//   node test/bench/scan.bench.ts [--large] [--keep DIR]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanSource } from '../../storage/scanner/scanner.ts';
import type { PreviousFile, ScanEvent } from '../../storage/scanner/scanner.ts';

interface RunResult {
  seconds: number;
  counts: Record<ScanEvent['kind'], number>;
  state: PreviousFile[];
  hashedBytes: number;
}

async function* listed(state: PreviousFile[]): AsyncGenerator<PreviousFile> {
  yield* state;
}

async function run(root: string, previous: PreviousFile[], hashConcurrency?: number): Promise<RunResult> {
  const counts = { new: 0, changed: 0, unchanged: 0, deleted: 0, error: 0 };
  const state: PreviousFile[] = [];
  let hashedBytes = 0;
  const started = performance.now();
  for await (const event of scanSource({ root, previous: listed(previous), hashConcurrency, onProgress: (p) => (hashedBytes = p.hashedBytes) })) {
    counts[event.kind]++;
    if (event.kind === 'new' || event.kind === 'changed' || event.kind === 'unchanged') state.push(event.entry);
  }
  return { seconds: (performance.now() - started) / 1000, counts, state, hashedBytes };
}

function makeFiles(root: string, dirs: number, perDir: number, size: number): number {
  const content = Buffer.alloc(size, 0x5a);
  let made = 0;
  for (let d = 0; d < dirs; d++) {
    const dir = join(root, `d${String(d).padStart(4, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < perDir; f++) {
      content.writeUInt32LE(made++, 0);
      writeFileSync(join(dir, `IMG_${String(f).padStart(5, '0')}.jpg`), content);
    }
  }
  return made;
}

function report(label: string, r: RunResult, files: number): void {
  const rate = Math.round(files / r.seconds);
  const mb = r.hashedBytes / 1e6;
  console.log(`${label}: ${r.seconds.toFixed(3)} s, ${rate} files/s, hashed ${mb.toFixed(0)} MB (${(mb / r.seconds).toFixed(0)} MB/s), events ${JSON.stringify(r.counts)}`);
}

const args = process.argv.slice(2);
const keepIndex = args.indexOf('--keep');
const base = keepIndex >= 0 ? args[keepIndex + 1]! : mkdtempSync(join(tmpdir(), 'hearth-scan-bench-'));
try {
  const small = join(base, 'small');
  let t = performance.now();
  rmSync(small, { recursive: true, force: true });
  const files = makeFiles(small, 100, 1000, 4096);
  console.log(`created ${files} x 4 KiB files in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const first = await run(small, []);
  report('first scan', first, files);
  for (let i = 1; i <= 3; i++) report(`no-change scan ${i}`, await run(small, first.state), files);

  if (args.includes('--large')) {
    const large = join(base, 'large');
    t = performance.now();
    rmSync(large, { recursive: true, force: true });
    const made = makeFiles(large, 10, 100, 2_000_000) + makeFiles(join(large, 'video'), 1, 20, 30_000_000);
    console.log(`created ${made} files (2.6 GB) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    report('large first scan, 1 worker', await run(large, [], 1), made);
    report(`large first scan, ${availableParallelism()} workers`, await run(large, []), made);
  }
} finally {
  if (keepIndex < 0) rmSync(base, { recursive: true, force: true });
}
