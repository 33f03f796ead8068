// npm run bench: builds its data sets, then runs Hearth and its references (restic,
// a bare libp2p stream, the S3 SDK) in pairs (Hearth, reference, Hearth, ...; each
// run from the same cache state) and prints per comparison the median ratio, the
// ratios' min-max, each tool's spread, median throughput and peak RSS; then the
// machine's own ceilings (cat, openssl, age, dd, find, raw TCP, bare libp2p) and
// each Hearth figure as a fraction of those that bound it. Not part of the test
// suite; nothing here gates CI.
//
//   photo set:  1,000 x 2 MB + 20 x 30 MB random files (2.6 GB)
//   small set:  100,000 x 4 KiB files
// Data sets are cached in bench-data/ (git-ignored); HEARTH_BENCH_SMALL=1 uses a
// tenth of each set for a quick look; HEARTH_BENCH_QUICK=1 runs 2 pairs instead of
// 5 and each ceiling once instead of best of 3 (HEARTH_BENCH_PAIRS=N sets the
// pairs); HEARTH_BENCH_ONLY=photos,small (any of tools (the ceilings), photos,
// small, restic, family, s3, drive) runs only those parts, to iterate on one figure
// (the sets are built only for parts that read them; drive makes its own).
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { familyBench } from './family-bench.ts';
import { s3Bench } from './s3-bench.ts';
import { driveBench } from './drive-bench.ts';
import { backupComparisons, type DataSet, type SetRows } from './backup-bench.ts';
import { ceilingLines, measureCeilings } from './ceilings.ts';
import { comparisonTable, dropCaches, machineLine, PAIRS } from './measure.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = join(repo, 'bench-data');
const scale = process.env.HEARTH_BENCH_SMALL ? 0.1 : 1;
const only = process.env.HEARTH_BENCH_ONLY?.split(',').map((p) => p.trim());
const part = (name: string) => !only || only.includes(name);

function ensureTools(): void {
  const pkgs = ['restic', 'age', 'openssl'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (pkgs.length === 0) return;
  console.log(`installing ${pkgs.join(' ')} from Debian`);
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error(`could not install ${pkgs.join(' ')}: install them and run again`);
}

function buildPhotoSet(dir: string): { files: number; bytes: number } {
  const spec: Array<[number, number]> = [[Math.round(1000 * scale), 2_000_000], [Math.round(20 * scale), 30_000_000]];
  const files = spec.reduce((n, [count]) => n + count, 0);
  const bytes = spec.reduce((n, [count, size]) => n + count * size, 0);
  if (existsSync(join(dir, '.complete'))) return { files, bytes };
  rmSync(dir, { recursive: true, force: true });
  const buf = Buffer.alloc(30_000_000);
  for (const [count, size] of spec) {
    for (let i = 0; i < count; i++) {
      const sub = join(dir, `${size === 2_000_000 ? 'photos' : 'videos'}/${String(Math.floor(i / 100)).padStart(2, '0')}`);
      mkdirSync(sub, { recursive: true });
      randomFillSync(buf, 0, size);
      writeFileSync(join(sub, `${String(i).padStart(4, '0')}.${size === 2_000_000 ? 'jpg' : 'mp4'}`), buf.subarray(0, size));
    }
  }
  writeFileSync(join(dir, '.complete'), '');
  return { files, bytes };
}

function buildSmallSet(dir: string): { files: number; bytes: number } {
  const files = Math.round(100_000 * scale);
  if (!existsSync(join(dir, '.complete'))) {
    rmSync(dir, { recursive: true, force: true });
    const buf = Buffer.alloc(4096);
    for (let i = 0; i < files; i++) {
      const sub = join(dir, String(Math.floor(i / 1000)).padStart(3, '0'));
      if (i % 1000 === 0) mkdirSync(sub, { recursive: true });
      randomFillSync(buf);
      writeFileSync(join(sub, `${i}.dat`), buf);
    }
    writeFileSync(join(dir, '.complete'), '');
  }
  return { files, bytes: files * 4096 };
}

const fmt = (n: number, d = 1) => n.toFixed(d);

/** Targets from issue 15; bounds name the ceilings (ceilings.ts) each row is held to. */
const PHOTO_ROWS: SetRows = {
  first: { target: '>= 2.0x', bounds: ['read', 'write', 'sha256', 'age'] },
  noChange: { bounds: [] },
  restore: { target: '>= 1.25x', bounds: ['copy', 'write', 'age'] },
};
const SMALL_ROWS: SetRows = {
  first: { target: '>= 1.0x', bounds: ['read-small', 'find-cold'] },
  noChange: { target: '>= 4x', bounds: ['find-warm'] },
  noChangeCold: { bounds: ['find-cold'] },
  restore: { target: '>= 1.0x', bounds: ['copy-small'] },
};

async function main(): Promise<void> {
  ensureTools();
  console.log(machineLine());
  mkdirSync(dataDir, { recursive: true });
  const work = join(dataDir, 'work');
  mkdirSync(work, { recursive: true });
  const photoDir = join(dataDir, `photos-${scale}`);
  const smallDir = join(dataDir, `small-${scale}`);
  const needsSets = ['tools', 'photos', 'small', 'family', 's3'].some(part);
  if (needsSets) console.log('building data sets (cached in bench-data/)...');
  const photos = needsSets ? buildPhotoSet(photoDir) : { files: 0, bytes: 0 };
  const small = needsSets ? buildSmallSet(smallDir) : { files: 0, bytes: 0 };
  if (needsSets) console.log(`photo set: ${photos.files} files, ${fmt(photos.bytes / 1e9, 2)} GB; small set: ${small.files} files`);

  const photoSet: DataSet = { name: 'photo set', label: 'photos', dir: photoDir, ...photos, unit: 'MB/s' };
  const smallSet: DataSet = { name: 'small set', label: 'small', dir: smallDir, ...small, unit: 'files/s' };
  console.log(`${PAIRS} pairs (Hearth, reference, ...) per comparison${process.env.HEARTH_BENCH_QUICK ? ' (HEARTH_BENCH_QUICK)' : ''}; cold: caches dropped before each run${dropCaches() ? '' : ' (not allowed here: runs find whatever the last one left)'}\n`);

  const ceilings = part('tools') ? await measureCeilings({ photos: photoSet, small: smallSet }, work, process.env.HEARTH_BENCH_QUICK ? 1 : 3) : undefined;
  const hp = part('photos') ? await backupComparisons(photoSet, PHOTO_ROWS, work, PAIRS, part('restic')) : undefined;
  const hs = part('small') ? await backupComparisons(smallSet, SMALL_ROWS, work, PAIRS, part('restic')) : undefined;
  const fam = part('family') ? await familyBench(photoDir, work, PAIRS) : undefined;
  const cloud = part('s3') ? await s3Bench(photoDir, photos.bytes, work) : undefined;
  const staging = part('drive') ? await driveBench() : undefined;

  const rows = [...(hp?.comparisons ?? []), ...(hs?.comparisons ?? []), ...(fam ? [fam.comparison] : [])];
  if (rows.length) {
    for (const line of comparisonTable(rows)) console.log(line);
    console.log('ratio: Hearth\'s rate over the reference\'s in each pair; spread: slowest run over fastest; peak RSS: highest of the runs (targets <= 200 MB for each backup and restore, <= 250 MB per daemon)');
  }
  if (fam) {
    console.log(`peak RSS, owner / relative daemon: ${fmt(fam.ownerRssMb, 0)} / ${fmt(fam.hostRssMb, 0)} MB (target <= 250)`);
    console.log(`single-file restore from relative: ${fam.singleFileBytes} bytes read for a ${fam.singleFileSize}-byte file (target <= size + 256 KiB)`);
    console.log(`audit of photo set at relative: ${fmt(fam.audit.bytesTransferred / 1e3, 0)} KB traffic, ${fam.audit.samples} samples, relative read ${fmt(fam.audit.hostBytesRead / 1e6, 1)} MB, ${fmt(fam.audit.seconds, 2)} s`);
  }
  if (ceilings) {
    console.log(`\nthe machine's ceilings in this run (best of ${process.env.HEARTH_BENCH_QUICK ? 1 : 3}):`);
    for (const line of ceilingLines(ceilings, rows)) console.log(line);
  }
  if (cloud) for (const line of cloud) console.log(line);
  if (staging) for (const line of staging) console.log(line);
  if (hp) console.log(`\nhearth photo backup: ${hp.report.volumes.length} volumes, ${hp.report.blobs.stored} blobs`);
  rmSync(work, { recursive: true, force: true });
}

await main();
