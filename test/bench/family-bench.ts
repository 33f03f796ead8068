// The family part of `npm run bench`: the photo set backed up to one relative over
// loopback, next to a bare libp2p stream of the same bytes in the same run; peak
// RSS of both daemons; bytes a single-file restore transfers from the relative.
// Standalone, in its own temporary directory: node test/bench/family-bench.ts PHOTO_DIR
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const HEARTH = join(repo, 'cli', 'hearth.mjs');
/** The replicator's line after a pass that sent objects (node/replicator.ts). */
const SENT_LINE = /sent (\d+) objects, (\d+) bytes, to relatives in ([\d.]+) s/;

function hearth(home: string, args: string[]): any {
  const r = spawnSync(process.execPath, [HEARTH, '--home', home, ...args, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`hearth ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

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

function bareStream(files: string[]): BareRun {
  const r = spawnSync(process.execPath, [join(repo, 'test/bench/bare-stream.ts'), ...files], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bare-stream.ts: ${r.stderr}`);
  return JSON.parse(r.stdout) as BareRun;
}

export interface FamilyFigures {
  /** The replicator's puts alone: from the first one's start to the last one's answer. */
  transferMBps: number;
  /** Mean of the bare streams run just before and just after the transfer. */
  bareMBps: number;
  ratio: number;
  backupSeconds: number;
  transfer: { bytes: number; seconds: number; ownerCpuSeconds: number; hostCpuSeconds: number };
  bare: BareRun[];
  /** Peak RSS over each daemon's life (backup included), and sampled while only the transfer ran. */
  ownerRssMb: number;
  hostRssMb: number;
  transferRssMb: { owner: number; host: number };
  singleFileBytes: number;
  singleFileSize: number;
  audit: { seconds: number; bytesTransferred: number; samples: number; hostBytesRead: number; passed: boolean };
}

/**
 * Owner A has a directory target, so after its backup the objects are read back
 * from there for the transfer being measured: A pairs with B only then, joining
 * starts replication at once, and A's replicator logs how long its puts took.
 * The bare streams send the same files, read the same way, between two processes
 * running the same libp2p host as the daemons.
 */
export async function familyBench(photoDir: string, work: string): Promise<FamilyFigures> {
  const a = join(work, 'family-A');
  const b = join(work, 'family-B');
  const disk = join(work, 'family-disk');
  rmSync(a, { recursive: true, force: true });
  rmSync(b, { recursive: true, force: true });
  hearth(a, ['init']);
  hearth(b, ['init']);
  spawnSync(process.execPath, [HEARTH, '--home', a, 'source', 'add', photoDir]);
  spawnSync(process.execPath, [HEARTH, '--home', a, 'target', 'add', 'dir', disk]);
  spawnSync(process.execPath, [HEARTH, '--home', a, 'config', 'set', 'replicate.interval', '1h']);
  const da = await startDaemon(a);
  const db = await startDaemon(b);
  try {
    let t = process.hrtime.bigint();
    hearth(a, ['backup']);
    const backupSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const objects: any[] = hearth(a, ['objects']);
    const files = objects.map((o) => o.placements.find((p: any) => p.tier === 'dir').location as string);
    const bare = [bareStream(files)];

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
    const transferCpu = [cpuSeconds(da) - cpuBefore[0]!, cpuSeconds(db) - cpuBefore[1]!];
    if (sent.objects !== objects.length) throw new Error(`the replicator sent ${sent.objects} of ${objects.length} objects`);
    bare.push(bareStream(files));

    const readBefore = bytesRead(db);
    t = process.hrtime.bigint();
    const [audit] = hearth(a, ['verify']);
    const auditSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const hostBytesRead = bytesRead(db) - readBefore;
    const listed: any[] = hearth(a, ['ls']);
    const one = listed.find((f) => f.type === 'file' && f.size > 0);
    const single = hearth(a, ['restore', one.path, '--to', join(work, 'family-one'), '--from', `peer:${hearth(a, ['peers'])[0].name}`]);
    const transferMBps = sent.bytes / 1e6 / sent.seconds;
    const bareMBps = bare.reduce((sum, run) => sum + run.bytes / 1e6 / run.seconds, 0) / bare.length;
    return {
      transferMBps, bareMBps, ratio: transferMBps / bareMBps, backupSeconds,
      transfer: { bytes: sent.bytes, seconds: sent.seconds, ownerCpuSeconds: transferCpu[0]!, hostCpuSeconds: transferCpu[1]! },
      bare,
      ownerRssMb: statusMb(da, 'VmHWM'), hostRssMb: statusMb(db, 'VmHWM'), transferRssMb: { owner: peaks[0]!, host: peaks[1]! },
      singleFileBytes: single.bytesRead, singleFileSize: one.size,
      audit: { seconds: auditSeconds, bytesTransferred: audit.bytesTransferred, samples: audit.samples, hostBytesRead, passed: audit.passed },
    };
  } finally {
    await Promise.all([da.stop(), db.stop()]);
    for (const dir of [a, b, disk, join(work, 'family-one')]) rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const work = mkdtempSync(join(repo, 'bench-data', 'family-'));
  try {
    console.log(JSON.stringify(await familyBench(process.argv[2] ?? join(repo, 'bench-data', 'photos-1'), work)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
