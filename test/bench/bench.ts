// npm run bench: builds its data sets, then runs Hearth and the reference tools
// (sha256sum, age, restic) side by side in one run and prints throughput, ratios,
// files per second and peak RSS. Not part of the test suite; nothing here gates CI.
//
//   photo set:  1,000 x 2 MB + 20 x 30 MB random files (2.6 GB)
//   small set:  100,000 x 4 KiB files
// Data sets are cached in bench-data/ (git-ignored); HEARTH_BENCH_SMALL=1 uses a
// tenth of each set for a quick look; HEARTH_BENCH_ONLY=photos,small (any of
// tools, photos, small, restic, family, s3, drive) runs only those parts, to iterate on
// one figure (the sets are built only for parts that read them; drive makes its own).
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { familyBench } from './family-bench.ts';
import { s3Bench } from './s3-bench.ts';
import { driveBench } from './drive-bench.ts';
import { dropCaches, machineLine, run, type Run } from './measure.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = join(repo, 'bench-data');
const scale = process.env.HEARTH_BENCH_SMALL ? 0.1 : 1;
const HEARTH = join(repo, 'cli', 'hearth.mjs');
const only = process.env.HEARTH_BENCH_ONLY?.split(',').map((p) => p.trim());
const part = (name: string) => !only || only.includes(name);

function ensureTools(): void {
  const missing = ['restic', 'age', 'sha256sum'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length === 0) return;
  const pkgs = missing.map((t) => (t === 'sha256sum' ? 'coreutils' : t));
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

/** A first backup, a second with nothing changed, and a restore of everything (cold cache) into a fresh folder. */
async function hearthBackup(label: string, source: string, work: string): Promise<{ first: Run; second: Run; restore: Run; report: any }> {
  const home = join(work, `hearth-${label}`);
  const target = join(work, `target-${label}`);
  rmSync(home, { recursive: true, force: true });
  rmSync(target, { recursive: true, force: true });
  const h = (args: string[]) => run(process.execPath, [HEARTH, '--home', home, ...args]);
  await h(['init', '--json']);
  await h(['source', 'add', source]);
  await h(['target', 'add', 'dir', target]);
  dropCaches();
  const first = await h(['backup', '--json']);
  const second = await h(['backup', '--json']);
  const restored = join(work, `restored-${label}`);
  rmSync(restored, { recursive: true, force: true });
  dropCaches();
  const restore = await h(['restore', '--to', restored, '--json']);
  rmSync(restored, { recursive: true, force: true });
  const report = JSON.parse(first.stdout);
  rmSync(target, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
  return { first, second, restore, report };
}

async function resticBackup(label: string, source: string, work: string): Promise<{ first: Run; second: Run; restore: Run }> {
  const repoDir = join(work, `restic-${label}`);
  rmSync(repoDir, { recursive: true, force: true });
  const env = { RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: repoDir, RESTIC_CACHE_DIR: join(work, 'restic-cache') };
  await run('restic', ['init', '--quiet'], { env });
  dropCaches();
  const first = await run('restic', ['backup', '--quiet', source], { env });
  const second = await run('restic', ['backup', '--quiet', source], { env });
  const restored = join(work, `restic-restored-${label}`);
  rmSync(restored, { recursive: true, force: true });
  dropCaches();
  const restore = await run('restic', ['restore', 'latest', '--quiet', '--target', restored], { env });
  rmSync(restored, { recursive: true, force: true });
  rmSync(repoDir, { recursive: true, force: true });
  return { first, second, restore };
}

const mbps = (bytes: number, s: number) => bytes / 1e6 / s;
const fmt = (n: number, d = 1) => n.toFixed(d);

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
  if (needsSets) console.log(`photo set: ${photos.files} files, ${fmt(photos.bytes / 1e9, 2)} GB; small set: ${small.files} files\n`);

  const tools = part('tools');
  const sha = tools ? await run('sh', ['-c', `find ${photoDir} -type f -print0 | xargs -0 cat | sha256sum`]) : undefined;
  const age = tools ? await run('sh', ['-c', `find ${photoDir} -type f -print0 | xargs -0 cat | age -r age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p > /dev/null`]) : undefined;
  const hp = part('photos') ? await hearthBackup('photos', photoDir, work) : undefined;
  const rp = part('photos') && part('restic') ? await resticBackup('photos', photoDir, work) : undefined;
  const hs = part('small') ? await hearthBackup('small', smallDir, work) : undefined;
  const rs = part('small') && part('restic') ? await resticBackup('small', smallDir, work) : undefined;
  const fam = part('family') ? await familyBench(photoDir, work) : undefined;
  const cloud = part('s3') ? await s3Bench(photoDir, photos.bytes, work) : undefined;
  const staging = part('drive') ? await driveBench() : undefined;

  // A part that did not run leaves its cells empty.
  const cell = (value: number | undefined, digits = 1) => (value === undefined || !Number.isFinite(value) ? '' : fmt(value, digits));
  const ratio = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? '' : fmt(value, 2) + 'x');
  const s = (r: Run | undefined) => r?.seconds ?? NaN;
  const rows: string[][] = [
    ['measure', 'hearth', 'reference', 'ratio', 'target'],
    ['sha256sum of photo set (MB/s)', '', cell(mbps(photos.bytes, s(sha))), '', ''],
    ['age -r of photo set (MB/s)', '', cell(mbps(photos.bytes, s(age))), '', ''],
    ['full backup, photo set (MB/s) vs restic', cell(mbps(photos.bytes, s(hp?.first))), cell(mbps(photos.bytes, s(rp?.first))), ratio(s(rp?.first) / s(hp?.first)), '>= 2.0x'],
    ['  hearth vs sha256sum / age throughput', '', '', tools && hp ? `${fmt(s(sha) / s(hp.first), 2)}x / ${fmt(s(age) / s(hp.first), 2)}x` : '', ''],
    ['no-change run, photo set (s)', cell(hp?.second.seconds, 2), cell(rp?.second.seconds, 2), ratio(s(rp?.second) / s(hp?.second)), ''],
    ['full backup, small set (files/s)', cell(small.files / s(hs?.first), 0), cell(small.files / s(rs?.first), 0), ratio(s(rs?.first) / s(hs?.first)), ''],
    ['no-change run, small set (files/s)', cell(small.files / s(hs?.second), 0), cell(small.files / s(rs?.second), 0), ratio(s(rs?.second) / s(hs?.second)), '>= 4x'],
    ['restore, photo set (MB/s) vs restic', cell(mbps(photos.bytes, s(hp?.restore))), cell(mbps(photos.bytes, s(rp?.restore))), ratio(s(rp?.restore) / s(hp?.restore)), ''],
    ['restore, small set (files/s) vs restic', cell(small.files / s(hs?.restore), 0), cell(small.files / s(rs?.restore), 0), ratio(s(rs?.restore) / s(hs?.restore)), ''],
    ['peak RSS, photo backup (MB)', cell(hp?.first.peakRssMb, 0), cell(rp?.first.peakRssMb, 0), '', '<= 200'],
    ['peak RSS, small-set backup (MB)', cell(hs?.first.peakRssMb, 0), cell(rs?.first.peakRssMb, 0), '', '<= 200'],
    ['peak RSS, no-change small set (MB)', cell(hs?.second.peakRssMb, 0), cell(rs?.second.peakRssMb, 0), '', '<= 200'],
    ['peak RSS, photo / small-set restore (MB)', hp && hs ? `${fmt(hp.restore.peakRssMb, 0)} / ${fmt(hs.restore.peakRssMb, 0)}` : '', rp && rs ? `${fmt(rp.restore.peakRssMb, 0)} / ${fmt(rs.restore.peakRssMb, 0)}` : '', '', ''],
    ['photo set to one relative (MB/s) vs bare libp2p stream', cell(fam?.transferMBps), cell(fam?.bareMBps), ratio(fam?.ratio), '>= 0.9x'],
    ['peak RSS, owner / relative daemon (MB)', fam ? `${fmt(fam.ownerRssMb, 0)} / ${fmt(fam.hostRssMb, 0)}` : '', '', '', '<= 250'],
    ['single-file restore from relative: bytes read / file size', fam ? `${fam.singleFileBytes} / ${fam.singleFileSize}` : '', '', '', '<= size + 256 KiB'],
    ['audit of photo set at relative: traffic (KB), samples', fam ? `${fmt(fam.audit.bytesTransferred / 1e3, 0)}, ${fam.audit.samples}` : '', '', '', ''],
    ['audit: relative bytes read (MB), wall time (s)', fam ? `${fmt(fam.audit.hostBytesRead / 1e6, 1)}, ${fmt(fam.audit.seconds, 2)}` : '', '', '', ''],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const tableRan = ['tools', 'photos', 'small', 'family'].some(part);
  if (tableRan) for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  if (cloud) for (const line of cloud) console.log(line);
  if (staging) for (const line of staging) console.log(line);
  if (hp) console.log(`\nhearth photo backup: ${hp.report.volumes.length} volumes, ${hp.report.blobs.stored} blobs`);
  rmSync(work, { recursive: true, force: true });
}

await main();
