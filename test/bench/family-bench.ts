// The family part of `npm run bench`: the photo set backed up to one relative over
// loopback, next to a bare libp2p stream of the same bytes in the same run; peak
// RSS of both daemons; bytes a single-file restore transfers from the relative.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const HEARTH = join(repo, 'cli', 'hearth.mjs');

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

function peakRssMb(d: RunningDaemon): number {
  const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${d.process.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export interface FamilyFigures {
  transferMBps: number;
  bareMBps: number;
  ratio: number;
  backupSeconds: number;
  ownerRssMb: number;
  hostRssMb: number;
  singleFileBytes: number;
  singleFileSize: number;
  audit: { seconds: number; bytesTransferred: number; samples: number; hostBytesRead: number; passed: boolean };
}

/**
 * Owner A has a directory target, so after its backup the objects are read back
 * from there for the transfer being measured: A pairs with B only then, and
 * `hearth replicate` moves every object to B.
 */
export async function familyBench(photoDir: string, work: string): Promise<FamilyFigures> {
  const a = join(work, 'family-A');
  const b = join(work, 'family-B');
  rmSync(a, { recursive: true, force: true });
  rmSync(b, { recursive: true, force: true });
  hearth(a, ['init']);
  hearth(b, ['init']);
  spawnSync(process.execPath, [HEARTH, '--home', a, 'source', 'add', photoDir]);
  spawnSync(process.execPath, [HEARTH, '--home', a, 'target', 'add', 'dir', join(work, 'family-disk')]);
  spawnSync(process.execPath, [HEARTH, '--home', a, 'config', 'set', 'replicate.interval', '1h']);
  const da = await startDaemon(a);
  const db = await startDaemon(b);
  try {
    let t = process.hrtime.bigint();
    hearth(a, ['backup']);
    const backupSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const objects: any[] = hearth(a, ['objects']);
    const bytes = objects.reduce((n, o) => n + o.size, 0);
    // Joining starts replication at once; the transfer ends when every object is placed at B.
    const { code } = hearth(b, ['invite']);
    t = process.hrtime.bigint();
    hearth(a, ['join', code]);
    const placedAtB = () => (hearth(a, ['objects']) as any[]).every((o) => o.placements.some((p: any) => p.tier === 'peer'));
    for (let i = 0; i < 6000 && !placedAtB(); i++) await new Promise((r) => setTimeout(r, 100));
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    if (!placedAtB()) throw new Error('objects did not reach the relative within 10 minutes');
    const readBefore = bytesRead(db);
    t = process.hrtime.bigint();
    const [audit] = hearth(a, ['verify']);
    const auditSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const hostBytesRead = bytesRead(db) - readBefore;
    const bare = JSON.parse(spawnSync(process.execPath, [join(repo, 'test/bench/bare-stream.ts'), String(bytes)], { encoding: 'utf8' }).stdout);
    const files: any[] = hearth(a, ['ls']);
    const one = files.find((f) => f.type === 'file' && f.size > 0);
    const single = hearth(a, ['restore', one.path, '--to', join(work, 'family-one'), '--from', `peer:${hearth(a, ['peers'])[0].name}`]);
    const transferMBps = bytes / 1e6 / seconds;
    const bareMBps = bare.bytes / 1e6 / bare.seconds;
    return {
      transferMBps, bareMBps, ratio: transferMBps / bareMBps, backupSeconds,
      ownerRssMb: peakRssMb(da), hostRssMb: peakRssMb(db), singleFileBytes: single.bytesRead, singleFileSize: one.size,
      audit: { seconds: auditSeconds, bytesTransferred: audit.bytesTransferred, samples: audit.samples, hostBytesRead, passed: audit.passed },
    };
  } finally {
    await Promise.all([da.stop(), db.stop()]);
    for (const dir of [a, b, join(work, 'family-disk'), join(work, 'family-one')]) rmSync(dir, { recursive: true, force: true });
  }
}
