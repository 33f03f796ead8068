// The family part of `npm run bench`: the photo set backed up to one relative over
// loopback, in pairs with a bare libp2p stream of the same bytes (measure.ts
// pairedRuns); peak RSS of both daemons; bytes a single-file restore transfers from
// the relative; an audit.
// Standalone, in its own temporary directory: node test/bench/family-bench.ts PHOTO_DIR
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { PAIRS, pairedRuns, pairSummary, run, type Comparison, type Run } from './measure.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const HEARTH = join(repo, 'cli', 'hearth.mjs');
/** The replicator's line after a pass that sent objects (node/replicator.ts). */
const SENT_LINE = /sent (\d+) objects, (\d+) bytes, to relatives in ([\d.]+) s/;

function cli(home: string, args: string[]): string {
  const r = spawnSync(process.execPath, [HEARTH, '--home', home, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`hearth ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const hearth = (home: string, args: string[]): any => JSON.parse(cli(home, [...args, '--json']));

/** Bytes a process has read through read(2)-like calls, page cache hits included. */
function bytesRead(d: RunningDaemon): number {
  const m = /rchar:\s+(\d+)/.exec(readFileSync(`/proc/${d.process.pid}/io`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function statusMb(d: RunningDaemon, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${d.process.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function cpuSeconds(d: RunningDaemon): number {
  const fields = readFileSync(`/proc/${d.process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Highest RSS of each daemon while `phase` runs, sampled: VmHWM only knows the whole life. */
async function sampledPeaks<T>(daemons: RunningDaemon[], phase: () => Promise<T>): Promise<{ result: T; peaks: number[] }> {
  const peaks = daemons.map(() => 0);
  const sample = () => daemons.forEach((d, i) => (peaks[i] = Math.max(peaks[i]!, statusMb(d, 'VmRSS'))));
  const timer = setInterval(sample, 50);
  try {
    const result = await phase();
    sample();
    return { result, peaks };
  } finally {
    clearInterval(timer);
  }
}

interface BareRun {
  bytes: number;
  seconds: number;
  senderCpuSeconds: number;
  receiverCpuSeconds: number;
}

/** A bare libp2p stream of the same files; its time is the stream's (bare-stream.ts), its peak RSS either process's. */
async function bareStream(files: string[], runs: BareRun[]): Promise<Run> {
  const r = await run(process.execPath, [join(repo, 'test/bench/bare-stream.ts'), ...files]);
  const bare = JSON.parse(r.stdout) as BareRun;
  runs.push(bare);
  return { ...r, seconds: bare.seconds };
}

export interface FamilyFigures {
  /** Replicator puts (from the first one's start to the last one's answer) vs bare streams, paired. */
  comparison: Comparison;
  /** Each pair's transfer, with both daemons' CPU seconds; and each bare stream. */
  transfers: Array<{ bytes: number; seconds: number; ownerCpuSeconds: number; hostCpuSeconds: number }>;
  bare: BareRun[];
  /** The highest peak RSS of each daemon over its life, across pairs. */
  ownerRssMb: number;
  hostRssMb: number;
  singleFileBytes: number;
  singleFileSize: number;
  audit: { seconds: number; bytesTransferred: number; samples: number; hostBytesRead: number; passed: boolean };
}

/**
 * Home A is backed up once to a directory target, without a daemon; each pair then
 * runs a copy of that home (same identity, no relatives yet) and a new relative B,
 * both daemons started before the caches are dropped: A joins B, joining starts
 * replication at once, and A's replicator logs how long its puts took, reading the
 * objects back from the target. The bare streams send the same files, read the
 * same way, between two processes running the same libp2p host as the daemons.
 * The last pair's homes then serve the audit and a single-file restore.
 */
export async function familyBench(photoDir: string, work: string, pairs: number): Promise<FamilyFigures> {
  const template = join(work, 'family-A0');
  const a = join(work, 'family-A');
  const b = join(work, 'family-B');
  const disk = join(work, 'family-disk');
  const remove = (...dirs: string[]) => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  remove(template, a, b, disk);
  hearth(template, ['init']);
  mkdirSync(disk);
  cli(template, ['source', 'add', photoDir]);
  cli(template, ['target', 'add', 'dir', disk]);
  cli(template, ['config', 'set', 'replicate.interval', '1h']);
  hearth(template, ['backup']);
  const objects: any[] = hearth(template, ['objects']);
  const files = objects.map((o) => o.placements.find((p: any) => p.tier === 'dir').location as string);

  let daemons: RunningDaemon[] = [];
  const stopDaemons = async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    daemons = [];
  };
  const figures = { transfers: [] as FamilyFigures['transfers'], bare: [] as BareRun[], ownerRssMb: 0, hostRssMb: 0 };
  const keepPeaks = () => {
    figures.ownerRssMb = Math.max(figures.ownerRssMb, statusMb(daemons[0]!, 'VmHWM'));
    figures.hostRssMb = Math.max(figures.hostRssMb, statusMb(daemons[1]!, 'VmHWM'));
  };
  try {
    const transfer = async (): Promise<Run> => {
      const [da, db] = daemons as [RunningDaemon, RunningDaemon];
      const { code } = hearth(b, ['invite']);
      const cpuBefore = [cpuSeconds(da), cpuSeconds(db)];
      const { result: sent, peaks } = await sampledPeaks([da, db], async () => {
        hearth(a, ['join', code]);
        for (let i = 0; i < 6000; i++) {
          const m = SENT_LINE.exec(da.stderr());
          if (m) return { objects: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]) };
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`objects did not reach the relative within 10 minutes: ${da.stderr()}`);
      });
      if (sent.objects !== objects.length) throw new Error(`the replicator sent ${sent.objects} of ${objects.length} objects`);
      figures.transfers.push({ bytes: sent.bytes, seconds: sent.seconds, ownerCpuSeconds: cpuSeconds(da) - cpuBefore[0]!, hostCpuSeconds: cpuSeconds(db) - cpuBefore[1]! });
      keepPeaks();
      return { seconds: sent.seconds, peakRssMb: Math.max(...peaks), stdout: '' };
    };
    const label = 'photo set to one relative vs bare libp2p stream';
    const p = await pairedRuns(label, pairs, 'cold', {
      prepare: async () => {
        await stopDaemons();
        remove(a, b);
        cpSync(template, a, { recursive: true });
        hearth(b, ['init']);
        daemons = await Promise.all([startDaemon(a), startDaemon(b)]);
      },
      run: transfer,
    }, { run: () => bareStream(files, figures.bare) });
    const mb = (bytes: number) => bytes / 1e6;
    const comparison: Comparison = {
      label, unit: 'MB/s', target: '>= 0.9x', bounds: ['libp2p', 'tcp', 'read'],
      summary: pairSummary(p, { hearth: mb(figures.transfers[0]!.bytes), reference: mb(figures.bare[0]!.bytes) }),
    };

    const db = daemons[1]!;
    const readBefore = bytesRead(db);
    const t = process.hrtime.bigint();
    const [audit] = hearth(a, ['verify']);
    const auditSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const hostBytesRead = bytesRead(db) - readBefore;
    const listed: any[] = hearth(a, ['ls']);
    const one = listed.find((f) => f.type === 'file' && f.size > 0);
    const single = hearth(a, ['restore', one.path, '--to', join(work, 'family-one'), '--from', `peer:${hearth(a, ['peers'])[0].name}`]);
    keepPeaks();
    return {
      comparison, ...figures,
      singleFileBytes: single.bytesRead, singleFileSize: one.size,
      audit: { seconds: auditSeconds, bytesTransferred: audit.bytesTransferred, samples: audit.samples, hostBytesRead, passed: audit.passed },
    };
  } finally {
    await stopDaemons();
    remove(template, a, b, disk, join(work, 'family-one'));
  }
}

if (import.meta.main) {
  const work = mkdtempSync(join(repo, 'bench-data', 'family-'));
  try {
    console.log(JSON.stringify(await familyBench(process.argv[2] ?? join(repo, 'bench-data', 'photos-1'), work, PAIRS)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
