// Human-readable output for the CLI's result documents.
import { describeColdWait, type ColdPlan } from '../node/cold-restore.ts';
import type { CostReport } from '../node/cost.ts';
import type { RestoreReport } from '../node/restore.ts';
import type { BackupDocument, DriveUse, LsEntry, ObjectEntry, SnapshotEntry } from '../node/commands.ts';
import type { SettingEntry } from '../node/config.ts';
import type { DoctorCheck } from '../node/doctor.ts';
import type { SourceDrift } from '../node/drift.ts';
import type { AuditReport } from '../node/audit.ts';
import type { TargetCheckReport } from '../node/checks/target-check.ts';
import type { DamagedCopy } from '../node/checks/damage.ts';
import { formatDuration, formatLocalTime, formatRate, formatSize } from '../node/units.ts';
import { displayPath } from '../storage/paths.ts';
import { dirname } from 'node:path';

export function printTable(rows: string[][], header: string[]): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  for (const r of all) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

export function printBackup(r: BackupDocument): void {
  console.log(`backup ${r.ok ? 'done' : 'finished with errors'} in ${formatDuration(r.durationMs)}: ${r.files.scanned} files (${r.files.new} new, ${r.files.changed} changed, ${r.files.deleted} deleted), ${formatSize(r.bytesScanned)} scanned`);
  if (r.blobs.stored) console.log(`staged ${r.blobs.stored} files as blobs (${formatSize(r.blobs.bytes)})`);
  for (const v of r.volumes) console.log(`packed volume ${v.name}: ${v.files} files, ${formatSize(v.bytes)}`);
  if (r.retired) console.log(`retired ${r.retired} staged blobs now held by volumes`);
  for (const e of r.errors) console.log(`error: ${displayPath(e.path)}: ${e.error}`);
  for (const c of (r as { cloudCatalog?: Array<{ target: string; error?: string }> }).cloudCatalog ?? []) if (c.error) console.log(`error: catalog copy on ${c.target}: ${c.error}`);
}

export function printRestore(r: RestoreReport & { bytesRead: number; cold?: ColdPlan; damagedCopies?: DamagedCopy[] }): void {
  if (r.cold?.waiting.length) {
    console.log(describeColdWait(r.cold));
    return;
  }
  const skipped = r.skipped ? `; ${r.skipped} already there, left as they were` : '';
  console.log(`restored ${r.files} files (${formatSize(r.bytes)}), ${r.symlinks} links, ${r.dirs} folders${skipped}; read ${formatSize(r.bytesRead)} from targets`);
  for (const f of r.failed) console.log(`failed: ${displayPath(f.path)}: ${f.error}`);
  for (const d of r.damagedCopies ?? []) printDamaged(d);
}

/** One line per bad copy: where, what, and what became of it. */
function printDamaged(d: DamagedCopy): void {
  console.log(`damaged: ${d.target}: ${d.kind} ${d.id}: ${d.fault}: ${d.detail}; ${d.repairedFrom ? `repaired from ${d.repairedFrom}` : `NOT repaired: ${d.repairError}`}`);
}

export function printCheck(r: TargetCheckReport): void {
  for (const d of r.damaged) printDamaged(d);
  for (const t of r.targets) {
    if (t.error !== undefined) console.log(`target ${t.name}: not checked: ${t.error}`);
    else if (t.requests) console.log(`target ${t.name}: ${t.objects} objects (${formatSize(t.bytes)}) listed with the right size, class and checksum, nothing retrieved; ${t.requests.list} listing requests, ${t.requests.head} HEADs (${dollars(t.requests.dollars)})`);
    else console.log(`target ${t.name}: ${t.objects} objects (${formatSize(t.bytes)}) present with the right size; ${t.readObjects} read and hashed (${formatSize(t.readBytes)})`);
  }
  const repaired = r.damaged.filter((d) => d.repairedFrom).length;
  const unchecked = r.targets.filter((t) => t.error !== undefined).length;
  const found = [
    ...(r.damaged.length ? [`${r.damaged.length} damaged or missing copies (${repaired} repaired)`] : []),
    ...(unchecked ? [`${unchecked} targets it could not check`] : []),
  ];
  console.log(r.ok ? 'check ok: no damaged or missing copy' : `check found ${found.join(' and ')}`);
}

export function printLs(list: LsEntry[]): void {
  for (const e of list) {
    const size = e.type === 'file' ? formatSize(e.size) : e.type;
    const link = e.type === 'symlink' ? ` -> ${displayPath(e.target ?? '')}` : '';
    console.log(`${e.mode}  ${size.padStart(10)}  ${e.mtime.slice(0, 19).replace('T', ' ')}  ${displayPath(e.path)}${link}`);
  }
}

export function printObjects(list: ObjectEntry[]): void {
  printTable(
    list.map((o) => [o.id.slice(0, 16), o.kind, formatSize(o.size), String(o.files), o.placements.map((p) => (p.damaged === undefined ? p.target : `${p.target}(DAMAGED)`)).join(',') || '-', o.name]),
    ['ID', 'KIND', 'SIZE', 'FILES', 'PLACED', 'NAME'],
  );
}

export function printStatus(s: Record<string, any>): void {
  const when = (iso: string | null | undefined) => (iso ? formatLocalTime(Date.parse(iso)) : 'never');
  const rows: Array<[string, string]> = [];
  rows.push(['home', `${s.name ? `${s.name} ` : ''}${s.home} (peer ${s.peerId})`]);
  const b = s.lastBackup;
  rows.push(['last backup', b
    ? `${when(b.at)}${b.durationMs === null ? '' : `, took ${formatDuration(b.durationMs)}`}: ${b.files ?? '?'} files, ${b.bytes === null ? '?' : formatSize(b.bytes)}, ${b.state === 'interrupted' ? 'interrupted (the next run continues it)' : b.state === 'errors' ? 'finished with errors' : 'complete'}`
    : 'none yet: run "hearth backup"']);
  rows.push(['next', s.schedule
    ? (s.schedule as any[]).map((j) => `${j.name} ${j.running ? 'running now' : j.nextRun ? when(j.nextRun) : 'off'}${j.lastError ? ` (last failed: ${j.lastError})` : ''}`).join(', ') || '-'
    : 'nothing scheduled: the daemon is not running (start "hearth daemon" for nightly backups and monthly checks)']);
  rows.push(['sources', (s.sources as any[]).map((x) => `${x.name} (${x.path})`).join(', ') || 'none: add one with "hearth source add PATH"']);
  rows.push(['hosted here', `relatives' data kept in ${s.hostedDir}`]);
  rows.push(['targets', (s.targets as any[]).map((x) => `${x.name} (${x.where})${x.freeBytes === null ? (x.problem ? `: ${x.problem}` : '') : `: ${formatSize(x.freeBytes)} free`}`).join(', ') || 'none: add one with "hearth target add dir PATH"']);
  rows.push(['relatives', (s.relatives as any[]).map((r) => `${r.name}: ${r.health}${r.lastSeen ? ` (last seen ${when(r.lastSeen)})` : ''}`).join(', ') || 'none (pair one with "hearth invite" / "hearth join")']);
  const r = s.reachability;
  if (r) {
    rows.push(['reachable', r.anchor
      ? `directly at ${r.announced.join(', ')}; this home is an anchor (relays for its family)`
      : r.relayedVia.length ? `behind NAT: relatives reach this home through ${r.relayedVia.join(', ')}`
      : 'only where relatives can dial its listening addresses (no anchor reservation; see docs/nat.md)']);
  }
  rows.push(['alerts', (s.alerts as any[]).map((a) => `${a.key} since ${when(a.since)}`).join(', ') || 'none']);
  const c = s.catalog;
  rows.push(['backed up', `${c.files} files and ${c.folders} folders, ${formatSize(c.bytes)}; ${c.objects.volume.count} volumes, ${c.objects.blob.count} staged blobs`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
  for (const f of (c.clock?.flagged ?? []) as Array<{ seq: number; time: number; reason: string; next?: { seq: number; time: number } }>) {
    const why = f.reason === 'after-now' ? 'which is in the future' : `after record ${f.next!.seq}, written later (${new Date(f.next!.time).toISOString()})`;
    console.log(`warning: catalog record ${f.seq} is dated ${new Date(f.time).toISOString()}, ${why}: the clock ran ahead; the log's order still decides which version is newest, and --at near those times follows the log`);
  }
  for (const d of (s.drive ?? []) as Array<{ target: string; objects: number; bytes: number; why: Record<string, number> }>) {
    const why = Object.entries(d.why).map(([reason, n]) => `${n} ${reason}`).join('; ');
    console.log(`on drive ${d.target}: ${d.objects} objects, ${formatSize(d.bytes)}${why ? ` (${why})` : ''}`);
  }
}

/** How a relative is connected, as `hearth peers` shows it. */
function connectedVia(p: Record<string, unknown>): string {
  if (p.connection === 'relayed') return `relayed via ${String(p.relay ?? '?')}`;
  if (p.connection === 'webrtc') return 'WebRTC';
  return p.connection === 'direct' ? 'direct' : 'offline';
}

export function printPeers(list: Array<Record<string, unknown>>): void {
  const size = (v: unknown) => (typeof v === 'number' ? formatSize(v) : '?');
  const rate = (run: unknown) => (run ? formatRate((run as { bytesPerSecond: number }).bytesPerSecond) : '-');
  printTable(
    list.map((p) => {
      const last = p.lastTransfer as { to: unknown; from: unknown } | undefined;
      return [
        String(p.name), connectedVia(p), String(p.lastSeen ?? 'never').slice(0, 19).replace('T', ' '),
        `${rate(last?.to)}/${rate(last?.from)}`,
        size(p.bytesTheyStoreForUs), size(p.bytesWeStoreForThem), `${size(p.quotaTheyGrantUs)}/${size(p.quotaWeGrantThem)}`,
        String((p.pendingDeletions as unknown[]).length), String(p.peerId),
      ];
    }),
    ['NAME', 'CONNECTED', 'LAST SEEN', 'LAST RATE (TO/FROM)', 'THEY HOLD', 'WE HOLD', 'QUOTA (THEIRS/OURS)', 'PENDING DELETES', 'PEER ID'],
  );
  const kept = list[0]?.keptAt;
  if (typeof kept === 'string') console.log(`relatives' data is kept in ${dirname(kept)}`);
}

export function printDrift(list: SourceDrift[]): void {
  const day = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().slice(0, 10) : '-');
  printTable(
    list.map((d) => [
      d.source,
      d.unavailable ? `unavailable: ${d.unavailable}` : `${d.local!.files} files, ${formatSize(d.local!.bytes)}, newest ${day(d.local!.newestMtime)}`,
      `${d.backup.files} files, ${formatSize(d.backup.bytes)}, newest ${day(d.backup.newestMtime)}, at ${day(d.backup.lastBackupAt)}`,
      `${d.counts.changed} changed, ${d.counts.missing} missing, ${d.counts.new} new`,
    ]),
    ['SOURCE', 'LOCAL', 'LATEST BACKUP', 'DRIFT'],
  );
  for (const d of list) {
    for (const p of d.changed) console.log(`changed: ${d.source}/${displayPath(p)}`);
    for (const p of d.missing) console.log(`missing: ${d.source}/${displayPath(p)}`);
  }
}

export function printVerify(reports: AuditReport[]): void {
  if (reports.length === 0) console.log('no relative holds objects of this home yet');
  printTable(
    reports.map((r) => [
      r.peer, r.status === 'failed' ? 'FAILED' : r.status, String(r.objects), formatSize(r.bytes), String(r.samples),
      `${(r.durationMs / 1000).toFixed(1)}s`, formatSize(r.bytesTransferred),
      r.failedObjects.length ? r.failedObjects.map((id) => id.slice(0, 12)).join(',') : r.status === 'unreachable' ? `last seen ${r.lastSeen ? new Date(r.lastSeen).toLocaleString() : 'never'}` : r.error ?? '',
    ]),
    ['RELATIVE', 'RESULT', 'OBJECTS', 'BYTES', 'SAMPLES', 'TIME', 'TRAFFIC', 'DETAIL'],
  );
  const away = reports.filter((r) => r.status === 'unreachable');
  if (away.length) console.log(`${away.map((r) => r.peer).join(', ')} could not be reached: the copies there are kept, nothing failed, and the monthly audit tries again`);
}

const dollars = (n: number): string => (n >= 0.01 || n === 0 ? `$${n.toFixed(2)}` : `$${n.toPrecision(2)}`);

export function printCost(r: CostReport & { drive?: DriveUse[] }): void {
  printTable(
    r.targets.map((t) => [
      t.target, t.kind, t.storageClass ?? '-', String(t.objects), formatSize(t.bytes),
      Object.entries(t.requests).map(([k, n]) => `${k} ${n}`).join(', ') || '-', dollars(t.requestCost), t.kind === 's3' ? dollars(t.storagePerMonth) : '-',
    ]),
    ['TARGET', 'KIND', 'CLASS', 'OBJECTS', 'STORED', `REQUESTS IN ${r.month}`, 'REQUESTS $', 'STORAGE $/MONTH'],
  );
  for (const t of r.targets) {
    if (t.earlyDeletes.objects) console.log(`${t.target}: ${t.earlyDeletes.objects} deletes put off until their minimum storage time has passed (${formatSize(t.earlyDeletes.bytes)}; deleting them now would cost ${dollars(t.earlyDeletes.chargeIfDeletedNow)}: "hearth cost --delete-early")`);
  }
  for (const d of r.drive ?? []) {
    const hearth = r.targets.find((t) => t.target === d.target)?.bytes ?? 0;
    if (d.error) console.log(`${d.target}: Hearth keeps ${formatSize(hearth)} on Google Drive (drive.maxUse ${formatSize(d.maxUse)}); the account's quota is unknown: ${d.error}`);
    else console.log(`${d.target}: Hearth keeps ${formatSize(hearth)} on Google Drive (drive.maxUse ${formatSize(d.maxUse)}); the account uses ${formatSize(d.used)}${d.limit !== undefined ? ` of its ${formatSize(d.limit)} free quota, shared with Gmail and Photos` : ''}; $0`);
  }
  console.log(`estimate this month: ${dollars(r.monthlyTotal)} (storage at the price table's rates plus this month's requests; "hearth config" price.*)`);
  const s = r.scenario;
  console.log(`\n${s.libraryGB} GB of photos, +${s.growthGBPerMonth} GB a month, in ${s.volumes} volumes on ${s.storageClass}:`);
  console.log(`  upload ${dollars(s.upload.dollars)} (${s.upload.requests} requests), ${dollars(s.storagePerMonth)} a month (+${dollars(s.growthPerMonth)} a month as it grows), monthly check ${dollars(s.monthlyCheck.dollars)} (${s.monthlyCheck.requests} requests)`);
  console.log(`  one object per file, as the seed tool does: upload ${dollars(s.seed.upload)}, ${dollars(s.seed.perMonth)} a month, checks ${dollars(s.seed.checksPerMonth)} a month`);
}

export function printSnapshots(list: SnapshotEntry[]): void {
  if (list.length === 0) {
    console.log('no backups yet: run "hearth backup"');
    return;
  }
  printTable(
    list.map((r) => [
      formatLocalTime(Date.parse(r.at)), r.durationMs === null ? '-' : formatDuration(r.durationMs),
      r.files === null ? '-' : String(r.files), r.bytes === null ? '-' : formatSize(r.bytes),
      r.state === 'errors' ? `errors (${r.errors})` : r.state, r.run,
    ]),
    ['TIME (use with --at)', 'TOOK', 'FILES', 'SIZE', 'STATE', 'RUN'],
  );
}

export function printSettings(list: SettingEntry[]): void {
  printTable(
    list.map((e) => [e.key, e.value === '' ? '-' : e.value, e.default === '' ? '-' : e.default, e.range ? `${e.describe} (${e.range})` : e.describe]),
    ['KEY', 'VALUE', 'DEFAULT', 'MEANING'],
  );
}

export function printDoctor(checks: DoctorCheck[]): void {
  const width = Math.max(...checks.map((c) => c.check.length));
  for (const c of checks) {
    console.log(`${c.ok ? 'ok     ' : 'PROBLEM'}  ${c.check.padEnd(width)}  ${c.detail}`);
    if (c.fix) console.log(`${' '.repeat(width + 11)}fix: ${c.fix}`);
  }
  const problems = checks.filter((c) => !c.ok).length;
  console.log(problems ? `${problems} problem${problems === 1 ? '' : 's'}` : 'everything looks fine');
}
