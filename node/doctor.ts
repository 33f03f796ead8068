// `hearth doctor`: the checks a family's node needs to keep working, each problem
// with the command that fixes it. It reads what `status` and (with the daemon)
// `peers` report, and looks at the key file and disks itself.
import { existsSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { connectControl } from './control.ts';
import { HomePaths, loadConfig, loadIdentity } from './home.ts';
import { SETTINGS } from './config.ts';
import { formatDuration, formatLocalTime, formatSize } from './units.ts';

export interface DoctorCheck {
  check: string;
  ok: boolean;
  detail: string;
  /** The command (or action) that fixes it; problems only. */
  fix?: string;
}

/** Below this much free space (or one volume, if larger) a disk is a problem. */
const MIN_FREE_BYTES = 1024 ** 3;
/** Clocks further apart than this break invite codes and confuse schedules. */
const MAX_CLOCK_OFFSET_MS = 60_000;
/** A last backup older than this means the schedule is not running it. */
const STALE_BACKUP_MS = 2 * 86_400_000;

type RunOp = <T>(op: string, args: Record<string, unknown>) => Promise<T>;

export async function runDoctor(dir: string, runOp: RunOp, now = Date.now()): Promise<DoctorCheck[]> {
  const paths = new HomePaths(dir);
  loadIdentity(paths);
  const out: DoctorCheck[] = [];
  const add = (check: string, ok: boolean, detail: string, fix?: string) => out.push(ok ? { check, ok, detail } : { check, ok, detail, fix });

  const mode = statSync(paths.identity).mode & 0o777;
  add('key file', (mode & 0o077) === 0, `${paths.identity} has mode ${mode.toString(8).padStart(4, '0')}`, `chmod 600 ${paths.identity}`);

  const socket = await connectControl(paths.socket);
  socket?.destroy();
  const daemon = socket !== undefined;
  add('daemon', daemon, daemon ? 'running' : 'not running: nothing is scheduled and relatives cannot reach this home', 'hearth daemon (or: systemctl --user start hearth; see README "Running it as a service")');

  const volumeSize = loadConfig(paths).size('volume.size');
  const needed = Math.min(Math.max(MIN_FREE_BYTES, volumeSize), 64 * MIN_FREE_BYTES);
  const disks: Array<[string, string, string]> = [['home', paths.dir, `free space on ${paths.dir}`]];
  if (existsSync(paths.hosted)) disks.push(['relatives\' data', paths.hosted, `free space on ${paths.hosted}`]);
  const status = await runOp<Record<string, any>>('status', {});
  for (const t of (status.targets as Array<{ name: string; kind: string; path: string }>).filter((x) => x.kind === 'dir')) disks.push([`target ${t.name}`, t.path, `mount the disk at ${t.path}, free space there, or "hearth target rm ${t.name}"`]);
  for (const [check, path, fix] of disks) {
    try {
      const s = await statfs(path);
      const free = s.bavail * s.bsize;
      add(check, free >= needed, `${formatSize(free)} free at ${path}${free < needed ? ` (less than ${formatSize(needed)})` : ''}`, fix);
    } catch (err) {
      add(check, false, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, fix);
    }
  }

  const last = status.lastBackup as { at: string; state: string } | null;
  if (!last) add('last backup', false, 'no backup yet', 'hearth backup');
  else {
    const age = now - Date.parse(last.at);
    const fine = last.state === 'complete' && age <= STALE_BACKUP_MS;
    add('last backup', fine, `${formatLocalTime(Date.parse(last.at))} (${formatDuration(age)} ago), ${last.state}`, last.state === 'complete' ? 'check the schedule below, or run "hearth backup"' : 'hearth backup (it continues where the last one stopped; see its errors)');
  }

  if (daemon) {
    for (const job of (status.schedule ?? []) as Array<{ name: string; schedule: string; nextRun: string | null; lastError: string | null }>) {
      const key = `schedule.${job.name}`;
      if (job.lastError) add(`scheduled ${job.name}`, false, `last run failed: ${job.lastError}`, `hearth ${job.name === 'audit' ? 'verify' : job.name} (to see the error now)`);
      else add(`scheduled ${job.name}`, job.nextRun !== null, job.nextRun ? `next at ${formatLocalTime(Date.parse(job.nextRun))}` : `${key} is off`, `hearth config set ${key} "${SETTINGS[key]?.default ?? 'HH:MM'}"`);
    }
    const reach = status.reachability as { anchor: boolean; announced: string[]; relayedVia: string[] } | null;
    if (reach) add('reachability', true, reachabilityDetail(reach));
    const peers = await runOp<Array<{ name: string; online: boolean; lastSeen: string | null; clockOffsetMs: number | null }>>('peers', {});
    for (const p of peers) {
      const seen = p.lastSeen ? `last seen ${formatLocalTime(Date.parse(p.lastSeen))}` : 'never seen';
      add(`relative ${p.name}`, p.online, p.online ? 'reachable' : `not reachable now (${seen})`, `check that ${p.name}'s computer is on and runs "hearth daemon"; then "hearth verify --peer ${p.name}"`);
      if (p.clockOffsetMs !== null) {
        const off = Math.abs(p.clockOffsetMs);
        add(`clock vs ${p.name}`, off <= MAX_CLOCK_OFFSET_MS, `${p.name}'s clock is ${formatDuration(off)} ${p.clockOffsetMs >= 0 ? 'ahead of' : 'behind'} this one`, 'turn on network time on both computers (timedatectl set-ntp true)');
      }
    }
  } else {
    for (const r of status.relatives as Array<{ name: string; health: string }>) add(`relative ${r.name}`, false, `not checked: ${r.health}, and the daemon is not running`, 'hearth daemon');
  }
  return out;
}

/** How relatives reach this home, and the one step that would make it direct (docs/nat.md). */
function reachabilityDetail(r: { anchor: boolean; announced: string[]; relayedVia: string[] }): string {
  const direct = 'forward a TCP port on the router to this computer and start the daemon with --announce /ip4/<public address>/tcp/<port>';
  if (r.anchor) return `reachable directly at ${r.announced.join(', ')}; this home relays for its family (an anchor)`;
  if (r.relayedVia.length) return `behind NAT: relatives reach this home through ${r.relayedVia.join(', ')} (to be reached directly: ${direct})`;
  return `relatives reach this home only at the addresses it listens on (fine on one LAN); behind a router, pair with a relative's home that is an anchor, or ${direct}`;
}
