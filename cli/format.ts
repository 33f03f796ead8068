// Human-readable output for the CLI's result documents.
import { describeColdWait, type ColdPlan } from '../node/cold-restore.ts';
import type { CostReport } from '../node/cost.ts';
import type { BackupReport } from '../node/backup.ts';
import type { RestoreReport } from '../node/restore.ts';
import type { DriveUse, LsEntry, ObjectEntry } from '../node/commands.ts';
import type { SourceDrift } from '../node/drift.ts';
import type { AuditReport } from '../node/audit.ts';
import type { TargetCheckReport } from '../node/checks/target-check.ts';
import type { DamagedCopy } from '../node/checks/damage.ts';
import { formatSize } from '../node/units.ts';
import { displayPath } from '../storage/paths.ts';

export function printTable(rows: string[][], header: string[]): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  for (const r of all) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

export function printBackup(r: BackupReport): void {
  const secs = (r.finishedAt - r.startedAt) / 1000;
  console.log(`backup ${r.ok ? 'done' : 'finished with errors'} in ${secs.toFixed(1)}s: ${r.files.scanned} files (${r.files.new} new, ${r.files.changed} changed, ${r.files.deleted} deleted), ${formatSize(r.bytesScanned)} scanned`);
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
    else if (t.requests) console.log(`target ${t.name}: ${t.objects} objects (${formatSize(t.bytes)}) listed with the right size and class, nothing retrieved; ${t.requests.list} listing requests, ${t.requests.head} HEADs (${dollars(t.requests.dollars)})`);
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

export function printStatus(s: Record<string, unknown>): void {
  const sources = s.sources as Array<{ name: string; path: string }>;
  const targets = s.targets as Array<{ name: string; where: string }>;
  console.log(`home ${s.home} (peer ${s.peerId})`);
  console.log(`sources: ${sources.map((x) => `${x.name} (${x.path})`).join(', ') || 'none: add one with "hearth source add PATH"'}`);
  console.log(`targets: ${targets.map((x) => `${x.name} (${x.where})`).join(', ') || 'none: add one with "hearth target add dir PATH"'}`);
  console.log(`catalog: ${JSON.stringify(s.catalog)}`);
  for (const d of (s.drive ?? []) as Array<{ target: string; objects: number; bytes: number; why: Record<string, number> }>) {
    const why = Object.entries(d.why).map(([reason, n]) => `${n} ${reason}`).join('; ');
    console.log(`on drive ${d.target}: ${d.objects} objects, ${formatSize(d.bytes)}${why ? ` (${why})` : ''}`);
  }
}

export function printPeers(list: Array<Record<string, unknown>>): void {
  const size = (v: unknown) => (typeof v === 'number' ? formatSize(v) : '?');
  printTable(
    list.map((p) => [
      String(p.name), p.online ? 'online' : 'offline', String(p.lastSeen ?? 'never').slice(0, 19).replace('T', ' '),
      size(p.bytesTheyStoreForUs), size(p.bytesWeStoreForThem), `${size(p.quotaTheyGrantUs)}/${size(p.quotaWeGrantThem)}`,
      String((p.pendingDeletions as unknown[]).length), String(p.peerId),
    ]),
    ['NAME', 'STATE', 'LAST SEEN', 'THEY HOLD', 'WE HOLD', 'QUOTA (THEIRS/OURS)', 'PENDING DELETES', 'PEER ID'],
  );
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
      r.peer, r.passed ? 'passed' : 'FAILED', String(r.objects), formatSize(r.bytes), String(r.samples),
      `${(r.durationMs / 1000).toFixed(1)}s`, formatSize(r.bytesTransferred), r.failedObjects.length ? r.failedObjects.map((id) => id.slice(0, 12)).join(',') : r.error ?? '',
    ]),
    ['RELATIVE', 'RESULT', 'OBJECTS', 'BYTES', 'SAMPLES', 'TIME', 'TRAFFIC', 'FAILED'],
  );
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
    if (t.earlyDeletes.objects) console.log(`${t.target}: ${t.earlyDeletes.objects} deletes put off until their minimum storage time has passed (${formatSize(t.earlyDeletes.bytes)}; deleting them now would cost ${dollars(t.earlyDeletes.chargeIfDeletedNow)})`);
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
