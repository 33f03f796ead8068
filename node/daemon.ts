// `hearth daemon`: the running home. It owns the home (lock), runs the libp2p host
// with Hearth's protocols, hosts relatives' objects and catalogs, replicates this
// home's objects to relatives, and serves CLI commands on the control socket.
// SIGTERM/SIGINT stop it cleanly: no new work is accepted, the current operation
// stops at its next safe point (a backup between files and volumes, as if cut off,
// and the next run continues; a put is abandoned and resumes next time; a scrub
// keeps what it found) and state is closed.
import { placementPolicyOf } from './reconciler/placement-policy.ts';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2';
import { HostStore } from '../storage/hoststore/host-store.ts';
import { damagedFor } from '../storage/hoststore/scrub.ts';
import { HostCatalogStore, hostedCatalogsPath } from '../storage/hostcatalog/host-catalog-store.ts';
import { pairService, type PairService } from '../protocol/pair.ts';
import { statusService, freeBytesAt, type StatusService } from '../protocol/status.ts';
import { objectService, PROTOCOL as OBJECT_PROTOCOL, type TransferControl } from '../protocol/object.ts';
import { catalogSyncService, recoverCatalogFrom, type CatalogSyncService } from '../protocol/catalog-sync.ts';
import type { Tier } from '../storage/tier/tier.ts';
import { createHearthHost, DAEMON_LISTEN_DEFAULT, type HearthHost } from './host.ts';
import { FamilyRoster, type FamilyMember, type MemberRoles } from './family.ts';
import { HomeSession } from './session.ts';
import { ControlServer } from './control.ts';
import { applyRecoveredHome, type RecoveredHome } from './home-record.ts';
import { copyCare, SESSION_OPS, type BackupDocument, type FamilyOps, type OpContext } from './commands.ts';
import { repairMarked, settleSuspects, SuspectCopies } from './checks/damage.ts';
import { Replicator, type ReplicationReport } from './replicator.ts';
import { auditRelative, objectsAt, unreachableReport, type AuditReport } from './audit.ts';
import { auditService, type AuditService } from '../protocol/audit.ts';
import { MerkleIndexStore } from '../storage/hoststore/merkle-index.ts';
import { formatDuration, parseDuration, parseSize } from './units.ts';
import { silentProgress, type ProgressSink } from './progress.ts';
import { tuneHeapForTransfers } from './heap-tuning.ts';
import { AlertCenter, alertKey } from './alerts.ts';
import { Scheduler } from './scheduler.ts';
import { hostDirCheck, hostedDir } from './hosted-dir.ts';
import type { SourceDrift } from './drift.ts';
import { bandwidthControl } from './bandwidth.ts';
import { liveConfig } from './config.ts';
import { TransferRates } from './transfer-rates.ts';
import { bestConnection } from './connection-kind.ts';

export const HEARTH_VERSION = '0.1.0';

interface DaemonServices extends Record<string, unknown> {
  audit: AuditService;
  pair: PairService;
  status: StatusService;
  catalog: CatalogSyncService;
}

export interface DaemonOptions {
  listen?: string[];
  /**
   * Addresses relatives should dial instead of the listening ones, and that invite
   * codes carry: a port forwarded on the router, a container host's address.
   */
  announce?: string[];
  /**
   * Relay for the family and nothing else (a small rented server for a family with
   * no home relatives can dial): no hosting, no backups, no replication; invite
   * codes grant no room. Needs `announce`.
   */
  relayOnly?: boolean;
  log?: (line: string) => void;
}

/**
 * Operations that change the catalog or state run one at a time, and so do the
 * replication passes the daemon starts by itself: each reads the catalog and then
 * changes it by what it read (a backup lists staged blobs that a pass is retiring,
 * a pass retires blobs a backup is listing). Reads run alongside them.
 */
const EXCLUSIVE_OPS = new Set(['backup', 'catalog-rebuild', 'check', 'join', 'peers-rm', 'replicate', 'verify']);
/** Operations that stop when their command does (Ctrl-C on "hearth restore"); a backup goes on to its end. */
const STOPPED_WITH_CLIENT = new Set(['restore']);

export class Daemon {
  readonly session: HomeSession;
  readonly host: HearthHost<DaemonServices>;
  readonly roster: FamilyRoster;
  private readonly hostStore: HostStore;
  private readonly hostCatalogs: HostCatalogStore;
  private readonly replicator: Replicator;
  private control: ControlServer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** What holds the queue now, for telling a waiting command why it waits. */
  private busyWith: string | undefined;
  /** A self-started replication pass queued and not yet begun: later requests share it. */
  private queuedPass: Promise<unknown> | undefined;
  private readonly log: (line: string) => void;
  /** The --announce addresses: where relatives dial this home directly. */
  private readonly announced: string[];
  private readonly relayOnly: boolean;
  readonly alerts: AlertCenter;
  private scheduler: Scheduler | undefined;

  private readonly merkleIndex: MerkleIndexStore;
  /** The last transfer rates to and from each relative, for `hearth peers`. */
  private readonly rates: TransferRates;
  /** Copies on this home's targets that replication failed to send from, checked after each pass. */
  private readonly suspects = new SuspectCopies();
  /** Aborted by stop(): what runs stops at its next safe point. */
  private readonly stopping = new AbortController();

  private constructor(init: { session: HomeSession; host: HearthHost<DaemonServices>; roster: FamilyRoster; hostStore: HostStore; hostCatalogs: HostCatalogStore; merkleIndex: MerkleIndexStore; log: (line: string) => void; transfers: TransferControl; rates: TransferRates; announced: string[]; relayOnly: boolean }) {
    this.announced = init.announced;
    this.relayOnly = init.relayOnly;
    this.merkleIndex = init.merkleIndex;
    this.rates = init.rates;
    this.session = init.session;
    this.host = init.host;
    this.roster = init.roster;
    this.hostStore = init.hostStore;
    this.hostCatalogs = init.hostCatalogs;
    this.log = init.log;
    this.alerts = new AlertCenter({ home: this.session.paths.dir, settings: () => this.session.config, log: this.log });
    this.replicator = new Replicator({
      host: this.host,
      roster: this.roster,
      catalog: this.session.catalog,
      catalogSync: this.host.services.catalog,
      damagedAt: async (peerId) => (await this.host.services.status.query(peerIdFromString(peerId), { signal: AbortSignal.timeout(10_000) })).damaged ?? [],
      outboxDir: this.session.paths.outbox,
      localTiers: () => this.session.tiers(),
      policy: () => placementPolicyOf(this.session.config),
      unreachableAfter: () => this.session.config.duration('policy.unreachableAfter'),
      log: this.log,
      signal: this.stopping.signal,
      onReadFailure: this.suspects.add,
      transfers: init.transfers,
    });
  }

  static async start(dir: string, options: DaemonOptions = {}): Promise<Daemon> {
    if (options.relayOnly && !options.announce?.length) throw new Error('--relay-only needs --announce with the address relatives dial (a relay nobody can reach helps nobody)');
    const log = options.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
    const session = await HomeSession.open(dir);
    let host: HearthHost<DaemonServices> | undefined;
    let hostCatalogs: HostCatalogStore | undefined;
    try {
      const roster = await FamilyRoster.open(session.paths.dir);
      const config = () => session.config;
      hostCatalogs = await HostCatalogStore.open(hostedCatalogsPath(session.paths.dir));
      const catalogs = hostCatalogs;
      // One quota covers a relative's objects and its catalog copy (DESIGN.md,
      // "Pairing"): each side is allowed what the other leaves of it.
      const quotaFor = (owner: string): number => roster.member(owner)?.quotaWeGrantThem ?? 0;
      const checkRoot = hostDirCheck(session.paths, config(), session.peerId);
      const hostStore = new HostStore({
        home: session.paths.dir,
        root: hostedDir(session.paths, config()),
        ...(checkRoot ? { checkRoot } : {}),
        quotaFor: async (owner) => Math.max(0, quotaFor(owner) - (await catalogs.bytes(owner))),
        deleteDelay: config().duration('host.deleteDelay'),
      });
      const merkleIndex = new MerkleIndexStore({ store: hostStore });
      // One cap per direction for every transfer, host side and owner side alike; `config set` applies within a second.
      const rates = new TransferRates();
      const transfers = bandwidthControl({ settings: liveConfig(session.paths.config, config()), transferred: rates.record });
      const storage = {
        object: objectService({ store: hostStore, isMember: (peer) => roster.isMember(peer.toString()), log, transfers }),
        catalog: catalogSyncService({ store: catalogs, catalogRoomFor: async (owner) => quotaFor(owner) - (await hostStore.usage(owner)).used }),
        audit: auditService({ store: hostStore, isMember: (peer) => roster.isMember(peer.toString()), prover: merkleIndex }),
      };
      host = await createHearthHost<DaemonServices>({
        seed: session.keys.ed25519Seed,
        listen: options.listen?.length ? options.listen : DAEMON_LISTEN_DEFAULT,
        ...(options.announce?.length ? { announce: options.announce } : {}),
        gate: roster,
        knownPeers: roster.members().map((m) => ({ peerId: m.peerId, addrs: m.addrs })),
        // A home relatives can dial is an anchor; any other keeps reservations on the family's anchors.
        relay: Boolean(options.announce?.length),
        anchors: () => roster.anchors(),
        log,
        services: {
          pair: pairService({ store: roster, selfName: () => config().get('name') || hostname() }),
          status: statusService({
            source: {
              version: HEARTH_VERSION,
              quotaFor,
              storedBytesFor: async (peer) => (await hostStore.usage(peer)).used,
              pendingDeletionsFor: async (peer) => (await hostStore.pendingDeletions(peer)).length,
              freeBytes: () => freeBytesAt(hostStore.root).catch(() => freeBytesAt(session.paths.dir)),
              damagedFor: (peer) => damagedFor(hostStore, peer),
            },
          }),
          // A relay-only home speaks no storage protocol: relatives see that in identify and never send it copies.
          ...(options.relayOnly ? {} : storage),
        } as never,
      });
      const daemon = new Daemon({ session, host, roster, hostStore, hostCatalogs, merkleIndex, log, transfers, rates, announced: options.announce ?? [], relayOnly: options.relayOnly === true });
      await daemon.listen();
      return daemon;
    } catch (err) {
      await host?.stop();
      await hostCatalogs?.close();
      await session.close();
      throw err;
    }
  }

  private async listen(): Promise<void> {
    this.control = await ControlServer.listen(this.session.paths.socket, (request, progress, clientGone) => this.handle(request.op, request.args, progress, clientGone));
    // A connection opening is not an answer ("last seen" is): replication pings first.
    this.host.addEventListener('peer:connect', (event) => {
      // Last seen is when it answered, not when a connection opened (node/family.ts).
      if (this.roster.isMember(event.detail.toString())) this.replicateSoon();
    });
    // Where a relative can be dialled next time, after either side restarts: the
    // addresses it says it listens on. An inbound connection's remote address is
    // only the port its side dialled out from. Addresses through an anchor's relay
    // are kept after the direct ones, so a relative behind NAT is dialled through its
    // anchor once its direct addresses fail. Identify also says what it is (an anchor).
    this.host.addEventListener('peer:identify', (event) => {
      const id = event.detail.peerId.toString();
      if (!this.roster.isMember(id)) return;
      const all = event.detail.listenAddrs.map((a) => a.toString());
      const addrs = [...all.filter((a) => !a.includes('/p2p-circuit')), ...all.filter((a) => a.includes('/p2p-circuit'))];
      const roles = rolesOf(event.detail.protocols);
      this.roster.markSeen(id, addrs, roles)
        // Once the roster names it an anchor: a reservation on it need not wait for the next retry.
        .then(() => (roles.anchor ? this.host.services.anchors?.ensure() : undefined))
        .catch((err: unknown) => this.logFailure('recording addresses', err));
    });
    const interval = this.session.config.duration('replicate.interval');
    void this.roster.pruneInvites().catch((err: Error) => this.log(`pruning spent invite codes failed: ${err.message}`));
    this.timer = setInterval(() => {
      this.replicateSoon();
      this.hostStore.purgeExpired().catch((err: unknown) => this.logFailure('purge', err));
      this.roster.pruneInvites().catch((err: unknown) => this.logFailure('pruning spent invite codes', err));
      // Audit proofs read 64 KiB per sample once an object is indexed, not the object.
      this.merkleIndex.buildMissing().catch((err: unknown) => this.logFailure('merkle index build', err));
    }, interval);
    this.timer.unref();
    if (this.relayOnly) {
      this.log(`hearth daemon ${this.session.peerId} relaying for its family only, at ${this.addresses().join(' ')}`);
      return;
    }
    this.scheduler = new Scheduler({
      home: this.session.paths.dir,
      log: this.log,
      jobs: [
        { name: 'backup', schedule: () => this.session.config.get('schedule.backup'), run: () => this.scheduledBackup() },
        { name: 'scrub', schedule: () => this.session.config.get('schedule.scrub'), run: () => this.handle('scrub', {}, silentProgress) },
        {
          name: 'audit',
          schedule: () => this.session.config.get('schedule.audit'),
          run: (retry) => this.scheduledAudit(retry as string[] | undefined),
          retry: { everyMs: () => this.session.config.duration('audit.retryEvery'), forMs: () => this.session.config.duration('audit.retryFor') },
        },
        { name: 'check', schedule: () => this.session.config.get('schedule.check'), run: () => this.handle('check', { readData: this.session.config.get('check.readDataSubset') }, silentProgress) },
      ],
      onFailure: (job, err) => {
        if (this.stopping.signal.aborted) return this.log(`scheduled ${job} stopped: ${err.message}`);
        this.log(`scheduled ${job} failed: ${err.message}`);
        if (job === 'backup') void this.alerts.raise({ kind: 'backup-failed', error: err.message });
      },
    });
    // The start-up pass is queued before the jobs a stopped daemon owes: it reaches
    // the relatives, so a check catching up can repair from them.
    this.replicateSoon();
    this.scheduler.start();
    this.log(`hearth daemon ${this.session.peerId} listening on ${this.addresses().join(' ')}`);
  }

  addresses(): string[] {
    return this.host.getMultiaddrs().map((a) => a.toString());
  }

  /**
   * The daily job: warn first when far more changed or vanished locally than a
   * day's work explains (an unmounted share, a mass deletion), then back up.
   */
  private async scheduledBackup(): Promise<unknown> {
    const threshold = Number(this.session.config.get('alerts.drift.threshold'));
    const drift = (await this.handle('drift', {}, silentProgress)) as SourceDrift[];
    for (const d of drift) {
      const key = alertKey('drift', d.source);
      if (d.counts.changed + d.counts.missing > threshold) await this.alerts.raise({ kind: 'drift', source: d.source, changed: d.counts.changed, missing: d.counts.missing });
      else await this.alerts.resolve(key);
    }
    const report = (await this.handle('backup', { pack: false }, silentProgress)) as BackupDocument;
    if (!report.ok) throw new Error(`${report.errors.length} problems, first: ${report.errors[0]?.path}: ${report.errors[0]?.error}`);
    await this.alerts.resolve(alertKey('backup-failed'));
    return report;
  }

  /**
   * The monthly audit, or a retry of the relatives it could not reach: those are
   * handed back to the scheduler, which tries them again (audit.retryEvery) until
   * audit.retryFor has passed.
   */
  private async scheduledAudit(only: string[] | undefined): Promise<{ retry?: string[] }> {
    const reports = (await this.handle('verify', only ? { peers: only } : {}, silentProgress)) as AuditReport[];
    const unreachable = reports.filter((r) => r.status === 'unreachable').map((r) => r.peer);
    if (unreachable.length) this.log(`audit: ${unreachable.join(', ')} unreachable; trying again in ${this.session.config.get('audit.retryEvery')}`);
    return unreachable.length ? { retry: unreachable } : {};
  }

  private async replicate(progress?: ProgressSink): Promise<ReplicationReport> {
    const report = await this.replicator.run(progress);
    await this.alertOnRelatives(report);
    // Copies on this home's targets the pass could not send from, and marked ones a relative back online can now replace.
    try {
      const care = copyCare(this.opContext(progress ?? silentProgress));
      if (this.suspects.size) await settleSuspects(care, this.suspects);
      await repairMarked(care);
    } catch (err) {
      this.log(`checking this home's copies after replication failed: ${(err as Error).stack ?? (err as Error).message}`);
    }
    return report;
  }

  /**
   * Replication started by an event or the timer: queued with the operations that
   * change the catalog, one queued pass for any number of requests; failures are
   * logged, and retried next time.
   */
  private replicateSoon(): void {
    if (this.relayOnly || this.roster.members().length === 0 || this.queuedPass) return;
    this.queuedPass = this.exclusive('replication pass', () => {
      this.queuedPass = undefined;
      return this.replicate();
    }).catch((err: unknown) => this.logFailure('replication', err));
  }

  /** Every failure of an operation reaches the log with its stack; one cut short by stop() only as stopped. */
  private logFailure(what: string, err: unknown): void {
    if (this.stopping.signal.aborted) return this.log(`${what} stopped: ${(err as Error)?.message ?? String(err)}`);
    this.log(`${what} failed: ${(err as Error)?.stack ?? String(err)}`);
  }

  /** Run `work` after every exclusive operation queued before it. */
  private exclusive<T>(name: string, work: () => Promise<T>, progress?: ProgressSink): Promise<T> {
    if (this.busyWith) progress?.log(`waiting for the ${this.busyWith} under way to finish`);
    const start = (): Promise<T> => {
      this.busyWith = name;
      return work().finally(() => {
        this.busyWith = undefined;
      });
    };
    const run = this.queue.then(start, start);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Scrub damage a relative reported, a relative's full disk, and relatives unreachable past policy.unreachableAfter. */
  private async alertOnRelatives(report: ReplicationReport): Promise<void> {
    const limit = this.session.config.duration('policy.unreachableAfter');
    for (const m of this.roster.members()) {
      const damaged = report.repaired.filter((r) => r.peer === m.name && r.reason === 'scrub').map((r) => r.id);
      if (damaged.length) await this.alerts.raise({ kind: 'scrub-damage', relative: m.name, objects: damaged });
      if (report.failed.some((f) => f.peer === m.name && f.reason === 'disk-full')) await this.alerts.raise({ kind: 'relative-disk-full', relative: m.name });
      else if (report.placed.some((p) => p.peer === m.name)) await this.alerts.resolve(alertKey('relative-disk-full', m.name));
      await this.alertIfUnreachable(m, report.reached.includes(m.peerId), limit);
    }
  }

  /**
   * Alert once a relative has answered nothing for policy.unreachableAfter; clear it
   * once it answers. One that answered the operation at hand is not unreachable,
   * however long that operation took since (a pass waiting on another relative).
   */
  private async alertIfUnreachable(m: FamilyMember, answered: boolean, limit = this.session.config.duration('policy.unreachableAfter')): Promise<void> {
    const lastSeen = Date.parse(m.lastSeen ?? m.pairedAt);
    if (!answered && Date.now() - lastSeen > limit) await this.alerts.raise({ kind: 'relative-unreachable', relative: m.name, since: lastSeen });
    else await this.alerts.resolve(alertKey('relative-unreachable', m.name));
  }

  private handle(op: string, args: Record<string, unknown>, progress: ProgressSink, clientGone?: AbortSignal): Promise<unknown> {
    const work = async (): Promise<unknown> => {
      this.session.reloadConfig();
      const signal = clientGone && STOPPED_WITH_CLIENT.has(op) ? AbortSignal.any([this.stopping.signal, clientGone]) : this.stopping.signal;
      const ctx = this.opContext(progress, signal);
      const sessionOp = SESSION_OPS[op];
      return logged(this.log, op, () => (sessionOp ? sessionOp(ctx, args) : this.networkOp(op, args, progress)));
    };
    const run = EXCLUSIVE_OPS.has(op) ? this.exclusive(op, work, progress) : work();
    return run.catch((err: unknown) => {
      this.logFailure(`operation ${op}`, err);
      throw err;
    });
  }

  private opContext(progress: ProgressSink, signal: AbortSignal = this.stopping.signal): OpContext {
    return { session: this.session, progress, family: this.familyOps(), signal, alerts: this.alerts, log: this.log };
  }

  private familyOps(): FamilyOps {
    return {
      outboxDir: this.session.paths.outbox,
      readTiers: async (from) => {
        const members = from === undefined ? this.roster.storageMembers() : from === '' ? [] : [this.memberNamed(from)];
        return members.map((m) => this.replicator.tierFor(m) as Tier);
      },
      connected: (peerId) => this.host.getConnections(peerIdFromString(peerId)).length > 0,
      afterBackup: (progress) => this.replicate(progress),
      statusExtras: () => this.statusExtras(),
      call: (op, args, progress) => this.networkOp(op, args, progress),
    };
  }

  private async recordRoles(peerId: string): Promise<void> {
    const protocols = await this.host.peerStore.get(peerIdFromString(peerId)).then((p) => p.protocols, () => [] as string[]);
    if (protocols.length === 0) return;
    const roles = rolesOf(protocols);
    await this.roster.markSeen(peerId, undefined, roles);
    if (roles.anchor) void this.host.services.anchors?.ensure();
  }

  private memberNamed(name: string): FamilyMember {
    const m = this.roster.member(name);
    if (!m) throw new Error(`no relative named "${name}": see "hearth peers"`);
    return m;
  }

  private async networkOp(op: string, args: Record<string, unknown>, progress: ProgressSink): Promise<unknown> {
    const config = this.session.config;
    switch (op) {
      case 'invite': {
        if (this.relayOnly && args.quota && parseSize(args.quota as string) > 0) throw new Error('this home is relay-only and stores nothing: leave out --quota');
        const { code } = await this.host.services.pair.invite({
          name: args.name as string | undefined,
          quota: this.relayOnly ? 0 : args.quota ? parseSize(args.quota as string) : config.size('host.quota'),
          ttlMs: args.expires ? parseDuration(args.expires as string) : undefined,
        });
        return { code };
      }
      case 'join': {
        const joined = await this.host.services.pair.join(args.code as string, {
          name: args.name as string | undefined,
          quota: args.quota ? parseSize(args.quota as string) : config.size('host.quota'),
        });
        // Identify ran while the inviter was still a stranger: what it is (an anchor, relay-only) is in the peer store.
        await this.recordRoles(joined.peerId);
        let recovered: ({ records: number } & RecoveredHome) | undefined;
        // A home rebuilt from its phrase has an empty catalog: the family holds it
        // (not an inviter that grants no room, such as a relay-only anchor).
        if (this.session.catalog.head().seq === 0 && joined.quotaTheyGrantUs > 0) {
          const pulled = await recoverCatalogFrom(this.host.services.catalog, peerIdFromString(joined.peerId), this.session.catalog);
          if (pulled.pulled > 0) {
            const home = await applyRecoveredHome(this.session.catalog, this.session.config, this.roster, this.session.peerId);
            recovered = { records: pulled.pulled, ...home };
            progress.log(`recovered this home's catalog from ${joined.name}: ${pulled.pulled} records`);
          }
        }
        this.replicateSoon();
        return { ...joined, recoveredCatalog: recovered };
      }
      case 'peers':
        return this.peers();
      case 'peers-rm': {
        const removed = await this.roster.removeMember(args.name as string);
        // The gater refuses it from now on; what it has open is closed here.
        const removedPeer = peerIdFromString(removed.peerId);
        await this.host.hangUp(removedPeer).catch((err: Error) => this.log(`closing ${removed.name}'s connections failed: ${err.message}`));
        this.rates.forget(removed.peerId);
        this.replicateSoon();
        return { removed: removed.name, peerId: removed.peerId };
      }
      case 'replicate':
        return this.replicate(progress);
      case 'verify':
        return this.verify(args.peer !== undefined ? [this.memberNamed(args.peer as string)] : this.roster.members().filter((m) => !args.peers || (args.peers as string[]).includes(m.name)), progress);
      default:
        throw new Error(`unknown operation "${op}"`);
    }
  }

  /**
   * Audit every relative (or those named): challenge-response over /hearth/audit/1
   * against the Merkle roots in the catalog. A copy that fails is forgotten so the
   * next replication pass sends a good one, and the family is alerted once. A
   * relative that cannot be reached keeps its placements: it is `unreachable`, and
   * alerted on only once it has answered nothing for policy.unreachableAfter.
   * (A retry of the scheduler names relatives by `peers`; one that left the family since is skipped.)
   */
  private async verify(members: readonly FamilyMember[], progress: ProgressSink): Promise<AuditReport[]> {
    const reports: AuditReport[] = [];
    for (const m of members) {
      progress.update({ phase: `auditing ${m.name}`, files: reports.length, bytes: 0 });
      const objects = await objectsAt(this.session.catalog, m.peerId);
      if (objects.length === 0) continue;
      const report = (await this.replicator.reach(m))
        ? await auditRelative({ node: this.host, peerId: m.peerId, objects, timeoutMs: this.session.config.duration('audit.timeout') })
        : unreachableReport(m.peerId, objects, 'the relative could not be reached (its computer may be asleep or offline)');
      const member = this.roster.member(m.peerId) ?? m;
      reports.push({ ...report, peer: m.name, lastSeen: member.lastSeen });
      for (const id of report.failedObjects) await this.replicator.markDamaged(id, m.peerId);
      await this.alertIfUnreachable(member, report.status !== 'unreachable');
      if (report.status === 'unreachable') continue;
      // It answered the challenge.
      if (report.status === 'passed') await this.alerts.resolve(alertKey('audit-failed', m.name));
      else await this.alerts.raise({ kind: 'audit-failed', relative: m.name, objects: report.failedObjects });
    }
    if (reports.some((r) => r.status === 'failed')) this.replicateSoon();
    return reports;
  }

  private async peers(): Promise<unknown[]> {
    const out = [];
    for (const m of this.roster.members()) {
      const peerId = peerIdFromString(m.peerId);
      const connections = this.host.getConnections(peerId);
      const online = connections.length > 0;
      const via = bestConnection(connections.map((c) => c.remoteAddr.toString()));
      let theyStore: number | undefined;
      let clockOffsetMs: number | undefined;
      if (online) {
        try {
          const asked = Date.now();
          const status = await this.host.services.status.query(peerId, { signal: AbortSignal.timeout(5000) });
          theyStore = status.storedBytes;
          if (status.time !== undefined) clockOffsetMs = Math.round(status.time - (asked + Date.now()) / 2);
        } catch {
          theyStore = undefined;
        }
      }
      const weStore = await this.hostStore.usage(m.peerId);
      const pending = await this.hostStore.pendingDeletions(m.peerId);
      out.push({
        name: m.name,
        peerId: m.peerId,
        online,
        /** direct, webrtc or relayed (through `relay`, a relative's name or a PeerId); null when not connected. */
        connection: via?.kind ?? null,
        relay: via?.kind === 'relayed' && via.relay ? (this.roster.member(via.relay)?.name ?? via.relay) : null,
        /** The last run of object transfers to and from it since the daemon started. */
        lastTransfer: { to: this.rates.last(m.peerId, 'to'), from: this.rates.last(m.peerId, 'from') },
        lastSeen: m.lastSeen,
        addrs: m.addrs,
        bytesTheyStoreForUs: theyStore ?? null,
        clockOffsetMs: clockOffsetMs ?? null,
        bytesWeStoreForThem: weStore.used,
        /** Where their objects are kept here. */
        keptAt: join(this.hostStore.root, m.peerId),
        catalogRecordsWeHold: (await this.hostCatalogs.head(m.peerId)).seq,
        catalogBytesWeHold: await this.hostCatalogs.bytes(m.peerId),
        quotaTheyGrantUs: m.quotaTheyGrantUs,
        quotaWeGrantThem: m.quotaWeGrantThem,
        pendingDeletions: pending.map((p) => ({ id: p.name, size: p.size, deleteAt: new Date(p.deleteAt).toISOString() })),
      });
    }
    return out;
  }

  /** Open alerts and scheduled jobs, for `hearth status`. */
  statusExtras(): Record<string, unknown> {
    return {
      alerts: this.alerts.open().map((a) => ({ key: a.key, since: new Date(a.raisedAt).toISOString() })),
      schedule: this.scheduler?.status() ?? [],
      online: this.roster.members().filter((m) => this.host.getConnections(peerIdFromString(m.peerId)).length > 0).map((m) => m.name),
      reachability: {
        anchor: this.host.services.relay !== undefined,
        announced: this.announced,
        relayedVia: (this.host.services.anchors?.reservedOn() ?? []).map((id) => this.roster.member(id)?.name ?? id),
      },
    };
  }

  async stop(): Promise<void> {
    this.stopping.abort(new Error('the daemon is stopping: stopped at a safe point; the next run continues from there'));
    if (this.timer) clearInterval(this.timer);
    await this.scheduler?.stop();
    await this.control?.close();
    await this.queue.catch(() => undefined);
    await this.replicator.idle();
    await this.host.stop();
    await this.hostCatalogs.close();
    await this.session.close();
    this.log('hearth daemon stopped');
  }
}

/** What a relative is, by the protocols its identify lists: an anchor relays; a relay-only one stores nothing. */
function rolesOf(protocols: readonly string[]): MemberRoles {
  const anchor = protocols.includes(RELAY_V2_HOP_CODEC);
  return { anchor, relayOnly: anchor && !protocols.includes(OBJECT_PROTOCOL) };
}

/** Refuses what libp2p would otherwise throw on deep inside, or after it has started. */
function checkAddresses(option: string, values: string[] | undefined): void {
  for (const value of values ?? []) {
    try {
      multiaddr(value);
    } catch (err) {
      throw new Error(`${option} "${value}" is not a multiaddr (${(err as Error).message}); write it like /ip4/203.0.113.7/tcp/4001`);
    }
  }
}

/** Run until SIGTERM/SIGINT. */
export async function runDaemon(dir: string, options: DaemonOptions = {}): Promise<void> {
  checkAddresses('--listen', options.listen);
  checkAddresses('--announce', options.announce);
  const daemon = await Daemon.start(dir, options);
  tuneHeapForTransfers();
  process.stdout.write(JSON.stringify({ peerId: daemon.session.peerId, addrs: daemon.addresses() }) + '\n');
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await daemon.stop();
}

/** Read-only queries a health check or a person runs often: not worth a log line each. */
const QUIET_OPS = new Set(['status', 'snapshots', 'ls', 'objects', 'peers']);

/** Run one operation, logging its start and its end with the outcome, so `journalctl`/`docker logs` show what ran. */
async function logged<T>(log: (line: string) => void, op: string, work: () => Promise<T>): Promise<T> {
  if (QUIET_OPS.has(op)) return work();
  const started = Date.now();
  log(`${op}: started`);
  try {
    const result = await work();
    const failed = (result as { ok?: boolean } | undefined)?.ok === false;
    log(`${op}: ${failed ? 'finished with errors' : 'done'} in ${formatDuration(Date.now() - started)}`);
    return result;
  } catch (err) {
    log(`${op}: failed after ${formatDuration(Date.now() - started)}: ${(err as Error).message.split('\n')[0]}`);
    throw err;
  }
}
