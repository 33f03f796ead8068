// The operations behind the CLI, working on a home's state directly. Each
// returns a plain result document; the CLI only parses arguments and prints.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join as joinPath, resolve } from 'node:path';
import { TARGET_MARKER_FILE } from '../storage/tier/dir.ts';
import { writeFileAtomicSync } from './atomic-file.ts';
import { checkNoOverlap, within } from './overlap.ts';
import { hostedDir, hostDirCheck, markHostDir } from './hosted-dir.ts';
import { ageSecretKeyString, ageRecipientString, generatePhrase, deriveKeys, phraseToEntropy } from '../storage/keys.ts';
import { CountingTier } from '../storage/tier/counting.ts';
import type { ObjectSummary, PlacementRecord, RunSummary } from '../storage/catalog/catalog.ts';
import type { Tier } from '../storage/tier/tier.ts';
import { callControl, connectControl } from './control.ts';
import { createIdentity, HomePaths, loadConfig, loadIdentity, loadPhrase } from './home.ts';
import { HomeSession } from './session.ts';
import { HostStore } from '../storage/hoststore/host-store.ts';
import { scrubHostStore } from '../storage/hoststore/scrub.ts';
import { DEFAULT_IGNORES } from '../storage/scanner/scanner.ts';
import { driftReport, type SourceDrift } from './drift.ts';
import { AlertCenter, type ChannelResult } from './alerts.ts';
import { runTargetCheck, type TargetCheckReport } from './checks/target-check.ts';
import { settleSuspects, SuspectCopies, type CopyCareContext, type DamagedCopy } from './checks/damage.ts';
import { parseShare } from './units.ts';
import type { AuditReport } from './audit.ts';
import { FamilyRoster } from './family.ts';
import { peerIdFromSeed } from './peer-id.ts';
import { runBackup, type BackupReport } from './backup.ts';
import { parseSelection, runRestore, type RestoreReport } from './restore.ts';
import { ObjectStore } from './object-store.ts';
import { sweepOrphans, type OrphanSweepReport } from './orphans.ts';
import { placementPolicyOf, wantsCopy } from './reconciler/placement-policy.ts';
import { reconcile, tierPlace } from './reconciler/reconciler.ts';
import { objectSources } from './reconciler/sources.ts';
import { priceTable } from './prices.ts';
import { costReport, type CostReport } from './cost.ts';
import { ColdRestoreJournal, describeColdWait, planColdReads, type ColdPlan } from './cold-restore.ts';
import type { RestoreTier } from '../storage/tier/s3.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentProgress, type ProgressSink } from './progress.ts';
import { explainEmpty, requireMatch } from './empty-answer.ts';
import { statusReport, type StatusExtras } from './status-report.ts';
import { recordHomeIfChanged } from './home-record.ts';
import { runDoctor } from './doctor.ts';
import type { SettingEntry, SourceConfig, TargetConfig } from './config.ts';
import { describeTarget, openS3Tier, s3TargetConfig, type S3TargetOptions } from './s3-target.ts';
import { describeDriveTarget, openDriveTier, resolveDriveTarget } from './drive-target.ts';
import { signInGoogle } from './google-auth.ts';
export { openBrowser } from './google-auth.ts';

export interface InitResult {
  home: string;
  peerId: string;
  ageRecipient: string;
  phrase?: string;
  recovered: boolean;
}

export async function initHome(dir: string, options: { phrase?: string }): Promise<InitResult> {
  const paths = new HomePaths(dir);
  const phrase = options.phrase ?? generatePhrase();
  const keys = createIdentity(paths, phrase);
  const config = loadConfig(paths);
  config.save();
  return {
    home: paths.dir,
    peerId: peerIdFromSeed(keys.ed25519Seed),
    ageRecipient: ageRecipientString(keys.x25519Public),
    phrase: options.phrase ? undefined : phrase,
    recovered: Boolean(options.phrase),
  };
}

/** The identity a phrase yields, without touching any home (for checks and tests). */
export async function identityOfPhrase(phrase: string): Promise<{ peerId: string; ageRecipient: string }> {
  const keys = deriveKeys(phraseToEntropy(phrase));
  return { peerId: peerIdFromSeed(keys.ed25519Seed), ageRecipient: ageRecipientString(keys.x25519Public) };
}

export function recoveryPhrase(dir: string): string {
  const paths = new HomePaths(dir);
  loadIdentity(paths);
  return loadPhrase(paths);
}

export function exportAgeKey(dir: string): string {
  return ageSecretKeyString(loadIdentity(new HomePaths(dir)).x25519Secret);
}

function uniqueName(taken: string[], wanted: string): string {
  if (!taken.includes(wanted)) return wanted;
  for (let i = 2; i < 10_000; i++) if (!taken.includes(`${wanted}-${i}`)) return `${wanted}-${i}`;
  throw new Error(`too many entries named ${wanted}`);
}

function checkName(name: string): void {
  if (!/^[^/\s][^/]*$/.test(name)) throw new Error(`invalid name "${name}": names may not be empty, start with a space, or contain "/"`);
}

export function addSource(dir: string, path: string, name?: string): SourceConfig {
  const paths = new HomePaths(dir);
  loadIdentity(paths);
  const abs = resolve(path);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new Error(`${abs} is not a folder: give the path of a folder to back up`);
  const config = loadConfig(paths);
  const sources = config.data.sources;
  if (sources.some((s) => s.path === abs)) throw new Error(`${abs} is already a source`);
  checkNoOverlap(abs, config, paths.dir, 'source');
  if (name !== undefined) {
    checkName(name);
    if (sources.some((s) => s.name === name)) throw new Error(`a source named "${name}" exists already: choose another --name`);
  }
  const source = { name: name ?? uniqueName(sources.map((s) => s.name), basename(abs) || 'root'), path: abs };
  sources.push(source);
  config.save();
  return source;
}

/**
 * Add a directory target and write its marker (storage/tier/dir.ts). The folder
 * must exist: a missing one is most often a disk that is not mounted, and creating
 * it would fill the system disk. `create` (quickstart's default folder) makes it.
 */
export function addDirTarget(dir: string, path: string, name?: string, options: { create?: boolean } = {}): TargetConfig {
  const paths = new HomePaths(dir);
  const keys = loadIdentity(paths);
  const abs = resolve(path);
  if (options.create) mkdirSync(abs, { recursive: true });
  if (!existsSync(abs)) throw new Error(`${abs} does not exist: mount the disk, or create the folder first (mkdir -p ${abs})`);
  if (!statSync(abs).isDirectory()) throw new Error(`${abs} is not a folder: give the folder (or mount point) to back up into`);
  const config = loadConfig(paths);
  const targets = config.data.targets;
  if (targets.some((t) => t.kind === 'dir' && t.path === abs)) throw new Error(`${abs} is already a target`);
  checkNoOverlap(abs, config, paths.dir, 'target');
  if (name !== undefined) {
    checkName(name);
    if (targets.some((t) => t.name === name)) throw new Error(`a target named "${name}" exists already: choose another --name`);
  }
  const targetName = name ?? uniqueName(targets.map((t) => t.name), basename(abs) || 'disk');
  const markerFile = joinPath(abs, TARGET_MARKER_FILE);
  // A disk added again (after "target rm") keeps its marker.
  let marker: string | undefined;
  try {
    marker = (JSON.parse(readFileSync(markerFile, 'utf8')) as { id?: string }).id;
  } catch {
    marker = undefined;
  }
  if (typeof marker !== 'string') {
    marker = randomBytes(16).toString('hex');
    try {
      writeFileAtomicSync(markerFile, `${JSON.stringify({ hearth: 'dir-target', id: marker, name: targetName, home: peerIdFromSeed(keys.ed25519Seed), createdAt: new Date().toISOString() })}\n`);
    } catch (err) {
      throw new Error(`cannot write the target marker ${markerFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): the folder must be writable`);
    }
  }
  const target: TargetConfig = { name: targetName, kind: 'dir', path: abs, marker };
  targets.push(target);
  config.save();
  return target;
}

/**
 * Records an S3 target once the bucket has been reached and written under the
 * prefix with the credentials the SDK finds: a target that cannot work is never added.
 */
export async function addS3Target(dir: string, options: S3TargetOptions & { name?: string }): Promise<TargetConfig & { where: string }> {
  const paths = new HomePaths(dir);
  const keys = loadIdentity(paths);
  const config = loadConfig(paths);
  const targets = config.data.targets;
  if (options.name !== undefined) {
    checkName(options.name);
    if (targets.some((t) => t.name === options.name)) throw new Error(`a target named "${options.name}" exists already: choose another --name`);
  }
  const target = s3TargetConfig(options.name ?? uniqueName(targets.map((t) => t.name), options.bucket), options);
  if (targets.some((t) => t.kind === 's3' && t.bucket === target.bucket && t.prefix === target.prefix && t.endpoint === target.endpoint)) {
    throw new Error(`s3://${target.bucket}/${target.prefix} is already a target`);
  }
  const tier = openS3Tier(target, paths, peerIdFromSeed(keys.ed25519Seed), config);
  await tier.checkAccess();
  targets.push(target);
  config.save();
  return { ...target, where: targetWhere(target) };
}

/** Where a target is, for people: a folder, an S3 bucket and prefix, or a Drive folder. */
export function targetWhere(target: TargetConfig): string {
  return target.kind === 'dir' ? target.path : target.kind === 'drive' ? describeDriveTarget(target) : describeTarget(target);
}

/** `hearth auth google`: the loopback sign-in; the token file goes into the home. */
export async function authGoogle(dir: string, options: { client: string; onUrl: (url: string) => void; timeoutMs?: number }): Promise<{ tokenFile: string; scope: string }> {
  const paths = new HomePaths(dir);
  loadIdentity(paths);
  return signInGoogle({ home: paths.dir, clientFile: options.client, onUrl: options.onUrl, timeoutMs: options.timeoutMs });
}

/**
 * Records a Drive target once its folder (and the catalog's subfolder) has been
 * found or made with the home's Google sign-in: an existing folder of the same name
 * is this home's, recovered.
 */
export async function addDriveTarget(dir: string, options: { folder?: string; name?: string }): Promise<TargetConfig & { where: string; free?: number }> {
  const paths = new HomePaths(dir);
  const keys = loadIdentity(paths);
  const config = loadConfig(paths);
  const targets = config.data.targets;
  if (options.name !== undefined) {
    checkName(options.name);
    if (targets.some((t) => t.name === options.name)) throw new Error(`a target named "${options.name}" exists already: choose another --name`);
  }
  if (options.folder !== undefined && (options.folder.trim() === '' || options.folder.length > 200)) throw new Error('--folder must be a folder name of 1 to 200 characters');
  const target = await resolveDriveTarget(paths, peerIdFromSeed(keys.ed25519Seed), config, options.name ?? uniqueName(targets.map((t) => t.name), 'drive'), options.folder);
  if (targets.some((t) => t.kind === 'drive' && t.folderId === target.folderId)) throw new Error(`the Drive folder "${target.folder}" is already a target`);
  const quota = await openDriveTier(target, paths, config).quota();
  targets.push(target);
  config.save();
  return { ...target, where: targetWhere(target), free: Number.isFinite(quota.limit) ? quota.limit - quota.usage : undefined };
}

export function listEntries(dir: string, what: 'sources' | 'targets'): Array<SourceConfig | TargetConfig> {
  const paths = new HomePaths(dir);
  loadIdentity(paths);
  return loadConfig(paths).data[what];
}

export function removeEntry(dir: string, what: 'sources' | 'targets', name: string): void {
  const paths = new HomePaths(dir);
  const config = loadConfig(paths);
  const list = config.data[what] as Array<{ name: string }>;
  const i = list.findIndex((e) => e.name === name);
  if (i < 0) throw new Error(`no ${what === 'sources' ? 'source' : 'target'} named "${name}": see "hearth ${what === 'sources' ? 'source' : 'target'} ls"`);
  list.splice(i, 1);
  config.save();
}

/**
 * Removes a target; an S3 target's unfinished multipart uploads are aborted first,
 * since a bucket bills the parts of an upload nobody will complete.
 */
export async function removeTarget(dir: string, name: string): Promise<{ abortedUploads: number }> {
  const paths = new HomePaths(dir);
  const keys = loadIdentity(paths);
  const config = loadConfig(paths);
  const target = config.data.targets.find((t) => t.name === name);
  let abortedUploads = 0;
  if (target?.kind === 's3') {
    const tier = openS3Tier(target, paths, peerIdFromSeed(keys.ed25519Seed), config);
    const journal = joinPath(paths.dir, 's3-uploads', target.name);
    for (const entry of existsSync(journal) ? readdirSync(journal) : []) {
      if (!entry.endsWith('.json')) continue;
      await tier.abandonUpload(entry.slice(0, -'.json'.length));
      abortedUploads++;
    }
  }
  if (target?.kind === 'drive') {
    // Drive bills no unfinished session (it forgets them within a week); the journal
    // and the catalog state name this folder only, and would mislead a new target of the name.
    for (const entry of [target.name, `${target.name}.catalog`, `${target.name}.catalog.json`]) rmSync(joinPath(paths.dir, 'drive-uploads', entry), { recursive: true, force: true });
  }
  removeEntry(dir, 'targets', name);
  return { abortedUploads };
}

export function getSetting(dir: string, key: string): string {
  return loadConfig(new HomePaths(dir)).get(key);
}

export function listSettings(dir: string): SettingEntry[] {
  return loadConfig(new HomePaths(dir)).entries();
}

export function setSetting(dir: string, key: string, value: string): void {
  const paths = new HomePaths(dir);
  const config = loadConfig(paths);
  config.set(key, value);
  if (key === 'host.dir' && value !== '') {
    const inSource = config.data.sources.find((s) => within(value, s.path));
    if (inSource) throw new Error(`host.dir ${value} is inside source ${inSource.name}: relatives' objects would be backed up again; choose a folder outside the sources`);
    markHostDir(value, peerIdFromSeed(loadIdentity(paths).ed25519Seed));
  }
  config.save();
}

/** What an operation runs with: the open home, where progress goes, and the family network when a daemon runs it. */
export interface OpContext {
  session: HomeSession;
  progress: ProgressSink;
  family?: FamilyOps;
  /** Aborted when the daemon stops: long operations stop at their next safe point. */
  signal?: AbortSignal;
  /** The daemon's alert center (one per home: it keeps alerts.json); without a daemon, the op opens one. */
  alerts?: AlertCenter;
  /** The daemon's log; without a daemon, what is logged goes to the progress sink. */
  log?: (line: string) => void;
}

/** What the checks (node/checks/) need, from an operation's context. */
export function copyCare(ctx: OpContext): CopyCareContext {
  const s = ctx.session;
  const log = ctx.log ?? ((line: string) => ctx.progress.log(line));
  return {
    catalog: s.catalog,
    homeTiers: s.tiers(),
    storageClassOf: (name) => {
      const s3 = s.s3Tiers().find((t) => t.name === name);
      return s3 ? (s3.storageClass ?? 'STANDARD') : undefined;
    },
    // Relatives connected now: dialling one that is away costs seconds per copy, and a copy
    // left marked is repaired after the replication pass that follows its return (repairMarked).
    relatives: async () => {
      const family = ctx.family;
      if (!family) return [];
      const names = new Map((await FamilyRoster.open(s.paths.dir)).members().map((m) => [m.peerId, m.name]));
      return (await family.readTiers()).filter((tier) => family.connected(tier.name)).map((tier) => ({ tier, name: `relative ${names.get(tier.name) ?? tier.name}` }));
    },
    alerts: ctx.alerts ?? new AlertCenter({ home: s.paths.dir, settings: () => s.config, log }),
    log,
    signal: ctx.signal,
  };
}

/** The daemon's network side, as the operations see it (node/daemon.ts provides it). */
export interface FamilyOps {
  /** Where stored objects wait until relatives hold enough copies. */
  outboxDir: string;
  /** Extra tiers to read from (relatives), cheapest last. */
  readTiers(from?: string): Promise<Tier[]>;
  /** Whether a relative (by PeerId) is connected now. */
  connected(peerId: string): boolean;
  /** Called after a backup recorded new objects: replicate and push the catalog. */
  afterBackup(progress: ProgressSink): Promise<unknown>;
  call(op: string, args: Record<string, unknown>, progress: ProgressSink): Promise<unknown>;
  /** Open alerts, the schedule, relatives online. */
  statusExtras(): StatusExtras;
}

type Op = (ctx: OpContext, args: any) => Promise<unknown>;

/** Operations that only a running daemon can carry out (they need the libp2p host). */
export const DAEMON_OPS = new Set(['invite', 'join', 'peers', 'peers-rm', 'replicate', 'verify']);

export const SESSION_OPS: Record<string, Op> = {
  async backup(ctx, args: { pack: boolean }) {
    const s = ctx.session;
    const tiers = s.tiers();
    if (tiers.length === 0 && !ctx.family && (await FamilyRoster.open(s.paths.dir)).members().length === 0) throw new Error('no backup target: add one with "hearth target add dir PATH" (or pair a relative and run "hearth daemon")');
    // With relatives, objects wait in the outbox until the daemon has sent them.
    const roster = await FamilyRoster.open(s.paths.dir);
    const hasFamily = roster.members().length > 0;
    await recordHomeIfChanged(s.catalog, s.config, roster);
    const resumable = (id: string): boolean => s.config.data.targets.some((t) => t.kind === 's3' && existsSync(joinPath(s.paths.dir, 's3-uploads', t.name, `${id}.json`)));
    reportSweep(await sweepOrphans({ catalog: s.catalog, tiers, spoolDir: s.paths.spool, outboxDir: s.paths.outbox, keepSpool: resumable }), ctx.progress);
    await s.deferredDeletes.sendDue(tiers, (c) => priceTable(s.config).minimumDays(c), (line) => ctx.progress.log(line));
    const policy = placementPolicyOf(s.config);
    const relatives = roster.members().length;
    const heldElsewhere = hasFamily || tiers.some((t) => t.kind === 'dir');
    // A Drive copy of an object held elsewhere is placed after the backup
    // (by the reconciler below), so a full Drive or a lapsed sign-in never fails a file's backup.
    const wants = (tier: Tier, kind: 'blob' | 'volume'): boolean =>
      !(tier.kind === 'drive' && heldElsewhere) && wantsCopy(tier.kind, { kind, time: Date.now(), peerCopies: 0, relatives, heldElsewhere }, policy, Date.now());
    const store = new ObjectStore({ spoolDir: s.paths.spool, keys: s.keys, catalog: s.catalog, tiers, encoder: s.encoder(), outboxDir: hasFamily ? s.paths.outbox : undefined, wants, resumable,
      onUnavailable: (target, reason) => ctx.progress.log(`target ${target} skipped for the rest of this run (other targets and relatives still get it): ${reason}`),
    });
    const versionsBefore = s.catalog.stats().versions.count;
    const report = await runBackup({ config: s.config, catalog: s.catalog, store, progress: ctx.progress, signal: ctx.signal }, { pack: args.pack }).catch((err: unknown) => {
      if (!ctx.signal?.aborted) throw err;
      const kept = s.catalog.stats().versions.count - versionsBefore;
      throw Object.assign(new Error(`backup ${(ctx.signal.reason as Error).message}: the ${kept} new or changed files recorded so far are kept; the next "hearth backup" continues from there`), { exitCode: 130 });
    });
    const reconciled = await reconcile({
      catalog: s.catalog,
      policy,
      relatives,
      heldElsewhere,
      // Targets this run found full or unplugged said so once already.
      places: tiers.filter((t) => !store.unavailableTargets().some((u) => u.target === t.name)).map(tierPlace),
      sources: (o) => objectSources(o, { outboxDir: s.paths.outbox, localTiers: tiers }),
      log: (line) => ctx.progress.log(line),
      signal: ctx.signal,
    });
    if (reconciled.failed.length || reconciled.unavailable.length) report.ok = false;
    for (const name of new Set(reconciled.unsourced.map((u) => u.place.label))) {
      const waiting = reconciled.unsourced.filter((u) => u.place.label === name).length;
      ctx.progress.log(`${waiting} objects are not on ${name} yet and have no copy on this computer to copy from: the daemon sends them from relatives`);
    }
    const cloud = {
      placed: reconciled.placed.map((p) => ({ id: p.id, target: p.place.name })),
      dropped: reconciled.dropped.map((p) => ({ id: p.id, target: p.place.name })),
      failed: reconciled.failed.map((f) => ({ id: f.id, target: f.place.name, error: f.error.message })),
      waiting: reconciled.unsourced.map((u) => ({ id: u.id, target: u.place.name })),
    };
    const cloudCatalog = await pushCloudCatalogs(s, ctx.progress);
    if (cloudCatalog.some((c) => c.error)) report.ok = false;
    const doc: BackupDocument = { ...report, startedAt: new Date(report.startedAt).toISOString(), finishedAt: new Date(report.finishedAt).toISOString(), durationMs: report.finishedAt - report.startedAt, cloud, cloudCatalog };
    if (ctx.family) Object.assign(doc, { replication: await ctx.family.afterBackup(ctx.progress) });
    return doc;
  },

  async restore(ctx, args: { paths: string[]; to: string; at?: number; overwrite: boolean; skipExisting?: boolean; from?: string; wait?: boolean; tier?: RestoreTier; days?: number }) {
    const s = ctx.session;
    for (const path of args.paths.length ? args.paths : [undefined]) await requireMatch(s.catalog, path, args.at);
    const from = args.from === undefined ? undefined : await restoreSource(s, args.from, Boolean(ctx.family));
    const local = from?.relative !== undefined ? [] : s.tiers().filter((t) => from?.target === undefined || t.name === from.target);
    const remote = ctx.family ? await ctx.family.readTiers(from ? from.relative ?? '' : undefined) : [];
    // Cheapest first: directories, relatives, then the cloud.
    const tiers = [...local.filter((t) => t.kind === 'dir'), ...remote.map((t) => new CountingTier(t)), ...local.filter((t) => t.kind !== 'dir')];
    const journal = new ColdRestoreJournal(s.paths.dir, (line) => ctx.progress.log(line));
    const planCold = () => planColdReads({ catalog: s.catalog, tiers, s3: s.s3Tiers(), journal, paths: args.paths, at: args.at, tier: args.tier ?? 'Bulk', days: args.days ?? 7, prices: priceTable(s.config) });
    let cold = await planCold();
    if (cold.waiting.length && args.wait) {
      const poll = s.config.duration('s3.restorePoll');
      while (cold.waiting.length) {
        ctx.progress.log(describeColdWait(cold).replace(/ Run the same.*$/, ' Waiting.'));
        await sleep(poll, undefined, { signal: ctx.signal });
        cold = await planCold();
      }
    }
    if (cold.waiting.length) return { files: 0, symlinks: 0, dirs: 0, bytes: 0, skipped: 0, failed: [], bytesRead: 0, cold };
    const suspects = new SuspectCopies();
    const report = await runRestore({ catalog: s.catalog, tiers, identity: s.keys.x25519Secret, progress: ctx.progress, signal: ctx.signal, onReadFailure: suspects.add }, args);
    const bytesRead = tiers.reduce((n, t) => n + t.counts().bytesGot, 0);
    const damagedCopies: DamagedCopy[] = suspects.size ? await settleSuspects(copyCare(ctx), suspects) : [];
    return { ...report, bytesRead, cold, damagedCopies };
  },

  async cost(ctx, args: { deleteEarly?: boolean }) {
    const s = ctx.session;
    // The user chose to pay the early-delete charge (an object deleted before its
    // class's minimum is billed for the rest of it): the tiers opened here send the
    // delete instead of putting it off again.
    const deletedEarly = args.deleteEarly
      ? await s.deferredDeletes.sendDue(
          s.config.data.targets.flatMap((t) => (t.kind === 's3' ? [openS3Tier(t, s.paths, s.peerId, s.config, { ledger: s.requests })] : [])),
          () => 0,
          (line) => ctx.progress.log(line),
        )
      : 0;
    const report = await costReport({
      catalog: s.catalog,
      targets: s.config.data.targets,
      prices: priceTable(s.config),
      requests: (target) => s.requests.month(target),
      deferred: s.deferredDeletes.all(),
      volumeSize: s.config.size('volume.size'),
      partSize: s.config.size('s3.partSize'),
    });
    // Drive is free up to the account's quota, shared with Gmail: its use against the
    // quota and drive.maxUse is the figure that matters (one about.get per target).
    const drive: DriveUse[] = [];
    for (const t of s.config.data.targets) {
      if (t.kind !== 'drive') continue;
      const held = report.targets.find((x) => x.target === t.name)?.bytes ?? 0;
      try {
        const q = await openDriveTier(t, s.paths, s.config).quota();
        drive.push({ target: t.name, used: q.usage, limit: Number.isFinite(q.limit) ? q.limit : undefined, maxUse: s.config.size('drive.maxUse') });
      } catch (err) {
        drive.push({ target: t.name, used: held, maxUse: s.config.size('drive.maxUse'), error: (err as Error).message });
      }
    }
    return { ...report, drive, deletedEarly };
  },

  async 'catalog-pull'(ctx, args: { target?: string }) {
    const s = ctx.session;
    const logs = s.cloudCatalogs().filter((l) => args.target === undefined || l.target === args.target);
    if (args.target !== undefined && logs.length === 0) throw new Error(`no s3 target named "${args.target}": see "hearth target ls"`);
    const pulled: Array<{ target: string; records: number; head: number }> = [];
    for (const log of logs) {
      const r = await log.pull(s.catalog);
      pulled.push({ target: log.target, records: r.pulled, head: r.head.seq });
    }
    return { pulled };
  },

  async ls(ctx, args: { path?: string; at?: number }) {
    const out: LsEntry[] = [];
    const sel = args.path ? parseSelection(args.path) : {};
    for await (const r of ctx.session.catalog.snapshot(args.at, sel)) {
      out.push({
        path: `${r.source}/${r.path}`, type: r.type, size: r.size, mtime: new Date(r.mtimeMs).toISOString(),
        mode: (r.mode & 0o7777).toString(8).padStart(4, '0'), hash: r.hash, target: r.target, backedUpAt: new Date(r.time).toISOString(),
      });
    }
    if (out.length === 0) throw new Error(await explainEmpty(ctx.session.catalog, args.path, args.at));
    return out;
  },

  async snapshots(ctx) {
    return (await ctx.session.catalog.runs()).map(snapshotEntry);
  },

  async objects(ctx) {
    const out: ObjectEntry[] = [];
    for await (const o of ctx.session.catalog.objects()) {
      out.push({
        id: o.id, kind: o.kind, name: o.name, size: o.size, plainSize: o.plainSize, merkleRoot: o.merkleRoot, leafSize: o.leafSize,
        files: o.entries, placements: o.placements.map((p) => ({ tier: p.tier, target: p.target, location: p.location, ...(p.damaged === undefined ? {} : { damaged: p.damaged }), ...(p.checksum === undefined ? {} : { checksum: p.checksum }) })),
      });
    }
    return out;
  },

  status: async (ctx) => ({ ...(await statusReport(ctx.session, ctx.family?.statusExtras())), drive: await driveStatus(ctx.session) }),

  'catalog-verify': (ctx) => ctx.session.catalog.verify(),

  /** Existence, size and (a share of) the Merkle roots of every object on the home's own targets; bad copies are marked, alerted and repaired. */
  async check(ctx, args: { readData?: string; target?: string }) {
    const readData = args.readData === undefined ? 0 : parseShare(args.readData, '--read-data-subset');
    return runTargetCheck({ ...copyCare(ctx), progress: ctx.progress, prices: priceTable(ctx.session.config) }, { readData, target: args.target });
  },

  /** Re-hash every object this home keeps for relatives; damage reaches each owner through /hearth/status/1. */
  async scrub(ctx) {
    const store = new HostStore({ home: ctx.session.paths.dir, root: hostedDir(ctx.session.paths, ctx.session.config), quotaFor: () => 0 });
    const report = await scrubHostStore(store, {
      signal: ctx.signal,
      onProgress: (p) => ctx.progress.update({ phase: `scrubbing ${p.owner.slice(-8)}`, files: p.objects, bytes: p.bytes, totalBytes: p.totalBytes }),
    });
    return report;
  },

  async 'alert-test'(ctx) {
    return new AlertCenter({ home: ctx.session.paths.dir, settings: () => ctx.session.config }).sendTest();
  },

  async drift(ctx) {
    const s = ctx.session;
    return driftReport({ catalog: s.catalog, sources: s.config.data.sources, ignore: s.config.ignorePatterns(DEFAULT_IGNORES) });
  },

  async 'catalog-rebuild'(ctx) {
    await ctx.session.catalog.rebuild();
    return { records: ctx.session.catalog.head().seq };
  },
};

function reportSweep(swept: OrphanSweepReport, progress: ProgressSink): void {
  const bytes = swept.objects.reduce((n, o) => n + o.size, 0);
  if (swept.objects.length) progress.log(`removed ${swept.objects.length} objects (${bytes} bytes) that an unfinished run left on targets and the catalog never recorded`);
  if (swept.tempFiles + swept.spoolFiles) progress.log(`removed ${swept.tempFiles + swept.spoolFiles} partial or unrecorded files of unfinished runs`);
  for (const s of swept.skipped) progress.log(`warning: target ${s.target} not checked for leftovers: ${s.error}`);
}

/** What sits on each Drive target, and why the policy put it there (docs/drive-tier.md). */
async function driveStatus(s: HomeSession): Promise<Array<{ target: string; objects: number; bytes: number; why: Record<string, number> }>> {
  const drives = s.config.data.targets.filter((t) => t.kind === 'drive').map((t) => t.name);
  if (drives.length === 0) return [];
  const policy = placementPolicyOf(s.config);
  const alone = (await FamilyRoster.open(s.paths.dir)).members().length === 0 && !s.config.data.targets.some((t) => t.kind === 'dir');
  const out = new Map(drives.map((name) => [name, { target: name, objects: 0, bytes: 0, why: {} as Record<string, number> }]));
  for await (const o of s.catalog.objects()) {
    for (const p of o.placements) {
      const entry = out.get(p.target);
      if (!entry) continue;
      const peers = o.placements.filter((x) => x.tier === 'peer').length;
      const why = o.kind === 'volume' ? 'volume: Drive is the only place' : policy.staging === 'drive' ? 'staged: policy.staging drive' : alone ? 'staged: Drive is the only place' : `staged: ${peers} of policy.peers ${policy.peers} relatives hold it`;
      entry.objects++;
      entry.bytes += o.size;
      entry.why[why] = (entry.why[why] ?? 0) + 1;
    }
  }
  return [...out.values()];
}

/**
 * Run an operation: through the daemon when one runs for this home (it holds the
 * home's lock), otherwise directly on the state directory.
 */
/** After a backup: the new catalog records go to every S3 target's copy of the log. */
async function pushCloudCatalogs(s: HomeSession, progress: ProgressSink): Promise<Array<{ target: string; head?: number; error?: string }>> {
  const out: Array<{ target: string; head?: number; error?: string }> = [];
  for (const log of s.cloudCatalogs()) {
    try {
      out.push({ target: log.target, head: (await log.push(s.catalog)).seq });
    } catch (err) {
      progress.log(`catalog upload to ${log.target} failed: ${(err as Error).message}`);
      out.push({ target: log.target, error: (err as Error).message });
    }
  }
  return out;
}

export async function runOp<T>(dir: string, op: string, args: Record<string, unknown>, progress: ProgressSink = silentProgress): Promise<T> {
  const paths = new HomePaths(dir);
  const socket = await connectControl(paths.socket);
  if (socket) return (await callControl(socket, { op, args }, progress)) as T;
  if (DAEMON_OPS.has(op)) throw new Error(`"hearth ${op.replace('-', ' ')}" needs the daemon: start it with "hearth daemon" (another terminal, or a service)`);
  const session = await HomeSession.open(dir);
  const stop = STOPPED_BY_SIGNAL.has(op) ? stopOnSignal() : undefined;
  try {
    return (await SESSION_OPS[op]!({ session, progress, signal: stop?.signal }, args)) as T;
  } finally {
    stop?.release();
    await session.close();
  }
}

/** Operations that SIGINT/SIGTERM stop cleanly when they run without a daemon (a restore removes its temp files; a backup records what it finished). */
const STOPPED_BY_SIGNAL = new Set(['restore', 'backup']);

/** An abort signal for the first SIGINT/SIGTERM; a second one ends the process at once. */
function stopOnSignal(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Error(`stopped by ${name}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** A backup's report as commands return it: times as ISO 8601 strings, like every JSON document. */
export type BackupDocument = Omit<BackupReport, 'startedAt' | 'finishedAt'> & {
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Copies placed by the reconciler after the backup: on targets that missed objects, in the cloud; staged Drive copies dropped. */
  cloud?: unknown;
  /** The catalog pushed to cloud targets. */
  cloudCatalog?: unknown;
  /** With the daemon: the replication to relatives that followed. */
  replication?: unknown;
};

export const backup = (dir: string, options: { pack: boolean; progress: ProgressSink }) =>
  runOp<BackupDocument>(dir, 'backup', { pack: options.pack }, options.progress);

export function restore(dir: string, options: { paths: string[]; to: string; at?: number; overwrite: boolean; skipExisting: boolean; from?: string; wait?: boolean; tier?: RestoreTier; days?: number; progress: ProgressSink }) {
  const { progress, ...args } = options;
  return runOp<RestoreReport & { bytesRead: number; cold: ColdPlan; damagedCopies?: DamagedCopy[] }>(dir, 'restore', { ...args, to: restoreDestination(options.to) }, progress);
}

/** `--to` must name a folder (new or existing): not nothing (the current folder by accident), not a file. */
function restoreDestination(to: string): string {
  if (to.trim() === '') throw new Error('--to is empty: give the folder to restore into, e.g. --to ~/restored');
  const abs = resolve(to);
  if (existsSync(abs) && !statSync(abs).isDirectory()) throw new Error(`--to ${abs} is a file, not a folder: give a folder to restore into (it is created if missing)`);
  return abs;
}

/** Where `restore --from` reads: a target by name, or a relative by name or as peer:NAME. */
async function restoreSource(s: HomeSession, from: string, daemon: boolean): Promise<{ target?: string; relative?: string }> {
  const relatives = (await FamilyRoster.open(s.paths.dir)).members().map((m) => m.name);
  const explicit = from.startsWith('peer:') ? from.slice(5) : undefined;
  if (explicit === undefined && s.tiers().some((t) => t.name === from)) return { target: from };
  const relative = explicit ?? from;
  if (!relatives.includes(relative)) {
    const targets = s.tiers().map((t) => t.name);
    throw new Error(`no target or relative named "${relative}": targets are ${targets.map((n) => `"${n}"`).join(', ') || 'none'}, relatives ${relatives.map((n) => `"${n}"`).join(', ') || 'none'}`);
  }
  if (!daemon) throw new Error(`reading from relative "${relative}" needs the daemon: start it with "hearth daemon", then run the restore again`);
  return { relative };
}

/** One backup run as `hearth snapshots` lists it. `at` is the time to give `--at` for this backup. */
export interface SnapshotEntry {
  run: string;
  at: string;
  finishedAt: string | null;
  durationMs: number | null;
  state: 'complete' | 'errors' | 'interrupted';
  files: number | null;
  bytes: number | null;
  errors: number | null;
}

function snapshotEntry(r: RunSummary): SnapshotEntry {
  const stats = (r.end?.stats ?? {}) as Record<string, number | undefined>;
  const startedAt = r.start?.time ?? r.end!.time;
  return {
    run: r.run,
    at: new Date(startedAt).toISOString(),
    finishedAt: r.end ? new Date(r.end.time).toISOString() : null,
    durationMs: r.end ? r.end.time - startedAt : null,
    state: !r.end ? 'interrupted' : r.end.ok ? 'complete' : 'errors',
    files: stats.files ?? null,
    bytes: stats.bytes ?? null,
    errors: stats.errors ?? null,
  };
}

export const listFiles = (dir: string, options: { path?: string; at?: number }) => runOp<LsEntry[]>(dir, 'ls', options);
export const listObjects = (dir: string) => runOp<ObjectEntry[]>(dir, 'objects', {});
export const snapshots = (dir: string) => runOp<SnapshotEntry[]>(dir, 'snapshots', {});
export const status = (dir: string) => runOp<Record<string, unknown>>(dir, 'status', {});
/** `readData`: "100%" for --read-data, "N%" for --read-data-subset, absent for sizes only. */
export const check = (dir: string, options: { readData?: string; target?: string; progress: ProgressSink }) =>
  runOp<TargetCheckReport>(dir, 'check', { readData: options.readData, target: options.target }, options.progress);
export const verifyCatalog = (dir: string) => runOp<{ ok: boolean; records: number; error?: { seq: number; reason: string } }>(dir, 'catalog-verify', {});
/** A Drive target's account: bytes used (all of Google's services), its quota when it has one. */
export interface DriveUse {
  target: string;
  used: number;
  limit?: number;
  maxUse: number;
  error?: string;
}

export const cost = (dir: string, options: { deleteEarly?: boolean } = {}) => runOp<CostReport & { drive: DriveUse[]; deletedEarly: number }>(dir, 'cost', options);
export const pullCatalog = (dir: string, target?: string) => runOp<{ pulled: Array<{ target: string; records: number; head: number }> }>(dir, 'catalog-pull', { target });
export const rebuildCatalog = (dir: string) => runOp<{ records: number }>(dir, 'catalog-rebuild', {});

export interface LsEntry {
  path: string;
  type: string;
  size: number;
  mtime: string;
  mode: string;
  hash?: string;
  target?: string;
  backedUpAt: string;
}

/** One object as `hearth objects` shows it: the catalog's summary, its file count and where it is. */
export type ObjectEntry = Pick<ObjectSummary, 'id' | 'kind' | 'name' | 'size' | 'plainSize' | 'merkleRoot' | 'leafSize'> & {
  files: number;
  placements: Array<Pick<PlacementRecord, 'tier' | 'target' | 'location' | 'damaged' | 'checksum'>>;
};

/**
 * The embedded-defaults path for a first-time user: create the home if needed,
 * back up ~/Pictures (or $HEARTH_SOURCE) to ~/hearth-backup (or $HEARTH_TARGET).
 */
export async function quickstart(dir: string, options: { source?: string; target?: string; progress: ProgressSink; say: (line: string) => void }): Promise<BackupDocument> {
  const paths = new HomePaths(dir);
  const userHome = process.env.HOME ?? '.';
  if (!existsSync(paths.identity)) {
    const init = await initHome(dir, {});
    options.say(`created home ${init.home} (peer ${init.peerId})`);
    options.say(`recovery phrase (write it down; it is the only way back after a disaster):\n  ${init.phrase}`);
  }
  const config = loadConfig(paths);
  if (config.data.sources.length === 0) {
    const src = addSource(dir, options.source ?? process.env.HEARTH_SOURCE ?? `${userHome}/Pictures`);
    options.say(`backing up ${src.path}`);
  }
  if (config.data.targets.length === 0) {
    const tgt = addDirTarget(dir, options.target ?? process.env.HEARTH_TARGET ?? `${userHome}/hearth-backup`, undefined, { create: true });
    options.say(`into ${targetWhere(tgt)}`);
  }
  return backup(dir, { pack: false, progress: options.progress });
}

export const invite = (dir: string, options: { name?: string; quota?: string; expires?: string }) => runOp<{ code: string }>(dir, 'invite', options);
export const join = (dir: string, code: string, options: { name?: string; quota?: string; progress: ProgressSink }) =>
  runOp<Record<string, unknown>>(dir, 'join', { code: code.trim(), name: options.name, quota: options.quota }, options.progress);
export const peers = (dir: string) => runOp<Array<Record<string, unknown>>>(dir, 'peers', {});
export const removePeer = (dir: string, name: string) => runOp<{ removed: string; peerId: string }>(dir, 'peers-rm', { name });
export const replicate = (dir: string, progress: ProgressSink) => runOp<Record<string, unknown>>(dir, 'replicate', {}, progress);
export const scrub = (dir: string, progress: ProgressSink) => runOp<Record<string, unknown>>(dir, 'scrub', {}, progress);
export const doctor = (dir: string) => runDoctor(dir, (op, args) => runOp(dir, op, args));
export const drift = (dir: string) => runOp<SourceDrift[]>(dir, 'drift', {});
export const alertTest = (dir: string) => runOp<ChannelResult[]>(dir, 'alert-test', {});
export const verify = (dir: string, peer: string | undefined, progress: ProgressSink) => runOp<AuditReport[]>(dir, 'verify', { peer }, progress);
