// The machine's own ceilings for the work the bench measures, taken in the same run:
// how fast plain tools read, hash, encrypt, write and list the data sets and move
// bytes over loopback. Each Hearth figure is then shown as a fraction of the
// ceilings that bound it. A ceiling is the best of its tries: the most this machine
// did, not a typical run.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropCaches, run, type Comparison, type Run } from './measure.ts';
import type { DataSet } from './backup-bench.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const BARE = join(repo, 'test', 'bench', 'bare-stream.ts');
/** Any recipient will do: the output is thrown away. */
const AGE_RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';

export interface Ceiling {
  /** What was run, as printed. */
  what: string;
  rate: number;
  unit: Comparison['unit'];
}

export type Ceilings = Map<string, Ceiling>;

const sh = (script: string) => run('sh', ['-c', script]);
const catSet = (dir: string) => `find ${dir} -type f -print0 | xargs -0 cat`;

/** Ceilings for the sets that ran: names (the keys) are what rows list in `bounds`. */
export async function measureCeilings(sets: { photos?: DataSet; small?: DataSet }, work: string, tries: number): Promise<Ceilings> {
  process.stderr.write(`the machine's ceilings: best of ${tries}\n`);
  const ceilings: Ceilings = new Map();
  const measure = async (name: string, what: string, set: DataSet, cold: boolean, once: () => Promise<Run>, seconds = (r: Run) => r.seconds) => {
    let best = Infinity;
    for (let i = 0; i < tries; i++) {
      if (cold) dropCaches();
      best = Math.min(best, seconds(await once()));
    }
    ceilings.set(name, { what: `${what}${cold ? ', cold' : ''}`, rate: (set.unit === 'MB/s' ? set.bytes / 1e6 : set.files) / best, unit: set.unit });
  };
  const copy = (set: DataSet) => async () => {
    const to = join(work, `ceiling-copy-${set.label}`);
    rmSync(to, { recursive: true, force: true });
    try {
      return await sh(`cp -r ${set.dir} ${to} && sync`);
    } finally {
      rmSync(to, { recursive: true, force: true });
    }
  };
  const { photos, small } = sets;
  if (photos) {
    await measure('read', `cat of the ${photos.name} to /dev/null`, photos, true, () => sh(`${catSet(photos.dir)} > /dev/null`));
    // Warm from here on: these are the CPU's ceilings, not the disk's.
    await measure('sha256', `openssl dgst -sha256 over the ${photos.name}`, photos, false, () => sh(`${catSet(photos.dir)} | openssl dgst -sha256`));
    await measure('age', `age -r of the ${photos.name}`, photos, false, () => sh(`${catSet(photos.dir)} | age -r ${AGE_RECIPIENT} > /dev/null`));
    const file = join(work, 'ceiling-dd');
    const blocks = Math.ceil(photos.bytes / (4 << 20));
    await measure('write', `dd oflag=direct of the ${photos.name}'s size, 4 MiB blocks`, photos, false, async () => {
      try {
        return await sh(`dd if=/dev/zero of=${file} bs=4M count=${blocks} oflag=direct status=none`);
      } finally {
        rmSync(file, { force: true });
      }
    });
    await measure('copy', `cp -r of the ${photos.name} and sync`, photos, true, copy(photos));
    const bare = (flag: string[]) => async () => {
      const r = await run(process.execPath, [BARE, ...flag, String(photos.bytes)]);
      return { ...r, seconds: (JSON.parse(r.stdout) as { seconds: number }).seconds };
    };
    await measure('tcp', `raw TCP on 127.0.0.1 (Node net, receiver hashing), the ${photos.name}'s size`, photos, false, bare(['--tcp']));
    await measure('libp2p', `bare libp2p stream on 127.0.0.1 (bare-stream.ts), the ${photos.name}'s size`, photos, false, bare([]));
  }
  if (small) {
    const list = () => sh(`find ${small.dir} -printf '%s %T@ %p\\n' > /dev/null`);
    await measure('find-cold', `find -printf over the ${small.name}`, small, true, list);
    await measure('find-warm', `find -printf over the ${small.name}, warm`, small, false, list);
    await measure('read-small', `cat of the ${small.name} to /dev/null`, small, true, () => sh(`${catSet(small.dir)} > /dev/null`));
    await measure('copy-small', `cp -r of the ${small.name} and sync`, small, true, copy(small));
  }
  return ceilings;
}

/** One line per row with bounds: Hearth's median as a fraction of each ceiling, the tightest (highest fraction) first. */
export function ceilingLines(ceilings: Ceilings, rows: Comparison[]): string[] {
  const lines: string[] = [];
  for (const [name, c] of ceilings) lines.push(`  ${name.padEnd(10)} ${c.rate.toFixed(0).padStart(7)} ${c.unit.padEnd(7)}  ${c.what}`);
  lines.push('each Hearth median as a fraction of the ceilings that bound it, the tightest first (a fraction above 1: that ceiling does not bind):');
  for (const row of rows) {
    const fractions = (row.bounds ?? []).flatMap((name) => {
      const c = ceilings.get(name);
      return c ? [{ name, fraction: row.summary.hearthRate / c.rate }] : [];
    });
    if (fractions.length === 0) continue;
    fractions.sort((a, b) => b.fraction - a.fraction);
    lines.push(`  ${row.label}, ${row.summary.cache}: ${fractions.map((f) => `${f.fraction.toFixed(2)} of ${f.name}`).join(', ')}`);
  }
  return lines;
}
