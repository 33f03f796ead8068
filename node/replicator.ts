// The daemon's replication pass: finds which relatives answer, forgets copies
// their scrubs found damaged, runs the one reconciler (node/reconciler/) over
// those relatives and the cloud targets, retires staged blobs that volumes now
// cover, and keeps each relative's copy of the catalog log up to date. It runs
// after every backup, when a relative connects, and on a timer; a relative that is
// offline is simply tried again next time.
import { lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Catalog, ObjectSummary } from '../storage/catalog/catalog.ts';
import { PermanentTierError, type Tier } from '../storage/tier/tier.ts';
import { PeerTier } from '../storage/tier/peer.ts';
import { syncCatalogTo, type CatalogSyncService } from '../protocol/catalog-sync.ts';
import { RemoteObjectError, type TransferControl } from '../protocol/object.ts';
import type { Libp2p } from '@libp2p/interface';
import type { Ping } from '@libp2p/ping';
import type { FamilyMember, FamilyRoster } from './family.ts';
import type { ProgressSink } from './progress.ts';
import { NoSourceError, reconcile, retireCovered, tierPlace, type Place } from './reconciler/reconciler.ts';
import { objectSources, type Source } from './reconciler/sources.ts';
import type { PlacementPolicy } from './reconciler/placement-policy.ts';
import { addressesToDial } from './anchors.ts';
import type { ReadFailureListener } from './object-read.ts';

/** Per step of reaching a relative: a dial, a DHT lookup, a ping. */
const REACH_TIMEOUT_MS = 10_000;

export interface ReplicationReport {
  placed: Array<{ id: string; peer: string }>;
  /** Placements found bad (scrub, audit) and sent again in this pass. */
  repaired: Array<{ id: string; peer: string; reason: string }>;
  retired: number;
  /** `reason` is set when the relative, not the copy sent, was the problem: its disk is full, or it went offline. */
  failed: Array<{ id?: string; peer: string; error: string; reason?: 'disk-full' | 'offline' }>;
  catalogPushed: Array<{ peer: string; head: number }>;
  pending: number;
  /** Relatives (PeerIds) that answered a ping at the start of this pass. */
  reached: string[];
  /** Copies this pass placed on the home's own targets: a directory target that missed them, Drive, S3 (policy.cold). */
  placedOnTargets: Array<{ id: string; target: string }>;
  /** What the puts of this pass carried, from the first one's start to the last one's answer. */
  sent: { objects: number; bytes: number; seconds: number };
}

export interface ReplicatorOptions {
  host: Libp2p;
  roster: FamilyRoster;
  catalog: Catalog;
  catalogSync: CatalogSyncService;
  /** Objects a relative's own scrub found damaged (asked over /hearth/status/1). */
  damagedAt: (peerId: string) => Promise<string[]>;
  /** Objects not yet at enough relatives, kept by ObjectStore (node/object-store.ts). */
  outboxDir: string;
  /** Local tiers (directory targets) that may hold the ciphertext to send. */
  localTiers: () => Tier[];
  /** The one placement policy (node/placement-policy.ts), read afresh each pass. */
  policy: () => PlacementPolicy;
  /** A relative not seen for this long no longer counts towards the policy (ms). */
  unreachableAfter: () => number;
  log: (line: string) => void;
  /**
   * Aborted when the daemon stops: a pass abandons the put under way (the host
   * keeps what arrived, and the next put resumes from there), records what it
   * placed, and starts nothing more.
   */
  signal?: AbortSignal;
  /**
   * Told when sending from a copy on a directory target failed because of the copy (the
   * host refused its bytes, or the file is gone or cut short): node/checks/damage.ts.
   */
  onReadFailure?: ReadFailureListener<ObjectSummary>;
  /** Bandwidth caps and the rate record every relative's tier uses (node/bandwidth.ts). */
  transfers?: TransferControl;
}

export class Replicator {
  private readonly o: ReplicatorOptions;
  private running: Promise<ReplicationReport> | undefined;
  private next: Promise<ReplicationReport> | undefined;
  private readonly reaching = new Map<string, Promise<boolean>>();

  constructor(options: ReplicatorOptions) {
    this.o = options;
  }

  /** The tier for one relative; its name is the PeerId, which is what placements record. */
  tierFor(member: FamilyMember): PeerTier {
    return new PeerTier({ name: member.peerId, peerId: peerIdFromString(member.peerId), node: this.o.host, transfers: this.o.transfers });
  }

  /**
   * Whether a relative answers now: connected (its last known addresses, or the
   * family DHT) and answering a ping. A connection can outlive the computer on the
   * other end (it went to sleep), so an open one is not taken for an answer; a
   * ping that fails closes it. An answer is what "last seen" records. Callers
   * asking at once (a pass and an audit) share one ping: libp2p allows one
   * outbound ping stream per connection and fails a second at once, which would
   * read as a relative that does not answer.
   */
  reach(member: FamilyMember): Promise<boolean> {
    const asking = this.reaching.get(member.peerId);
    if (asking) return asking;
    const answer = this.ping(member).finally(() => this.reaching.delete(member.peerId));
    this.reaching.set(member.peerId, answer);
    return answer;
  }

  private async ping(member: FamilyMember): Promise<boolean> {
    const peerId = peerIdFromString(member.peerId);
    const connected = this.o.host.getConnections(peerId).length > 0 || (await this.dial(member));
    if (!connected) return false;
    const deadline = AbortSignal.timeout(REACH_TIMEOUT_MS);
    try {
      await (this.o.host.services as { ping: Ping }).ping.ping(peerId, { signal: deadline });
    } catch {
      // Only a connection that stays silent is stale; one that refused is left to what else it carries (a pairing).
      if (deadline.aborted) await this.o.host.hangUp(peerId).catch(() => undefined);
      return false;
    }
    await this.o.roster.markSeen(member.peerId);
    return true;
  }

  private async dial(member: FamilyMember): Promise<boolean> {
    const peerId = peerIdFromString(member.peerId);
    try {
      const addrs = addressesToDial(member, this.o.roster.anchors());
      if (addrs.length) await this.o.host.peerStore.merge(peerId, { multiaddrs: addrs.map((a) => multiaddr(a)) });
      await this.o.host.dial(peerId, { signal: AbortSignal.timeout(REACH_TIMEOUT_MS) });
      return true;
    } catch {
      try {
        const found = await this.o.host.peerRouting.findPeer(peerId, { signal: AbortSignal.timeout(REACH_TIMEOUT_MS) });
        await this.o.host.peerStore.merge(peerId, { multiaddrs: found.multiaddrs });
        await this.o.host.dial(peerId, { signal: AbortSignal.timeout(REACH_TIMEOUT_MS) });
        return true;
      } catch {
        return false;
      }
    }
  }

  /**
   * Run a pass that starts after this call. Requests made while a pass runs share
   * one next pass, so bursts of events do not queue a pass each.
   */
  run(progress?: ProgressSink): Promise<ReplicationReport> {
    const start = (): Promise<ReplicationReport> => {
      this.running = this.pass(progress).finally(() => {
        this.running = undefined;
      });
      return this.running;
    };
    if (!this.running) return start();
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return start();
      });
    return this.next;
  }

  /** Settles once no pass runs or waits to run. */
  async idle(): Promise<void> {
    while (this.running || this.next) await Promise.allSettled([this.running, this.next]);
  }

  private async pass(progress?: ProgressSink): Promise<ReplicationReport> {
    const report: ReplicationReport = { placed: [], repaired: [], retired: 0, failed: [], catalogPushed: [], pending: 0, reached: [], placedOnTargets: [], sent: { objects: 0, bytes: 0, seconds: 0 } };
    const stopping = (): boolean => this.o.signal?.aborted === true;
    if (stopping()) return report;
    // One snapshot of the roster for the pass (reaching a relative rewrites it).
    const everyone = this.o.roster.members();
    const reached: FamilyMember[] = [];
    for (const m of everyone) if (await this.reach(m)) reached.push(m);
    report.reached = reached.map((m) => m.peerId);
    // A relay-only anchor stores nothing: it is reached (and alerted on) like any
    // relative, but gets neither copies nor the catalog.
    const members = everyone.filter((m) => m.relayOnly !== true);
    const online = reached.filter((m) => m.relayOnly !== true);
    const memberIds = new Set(members.map((m) => m.peerId));
    // Copies at a relative gone quiet for too long are kept but no longer trusted
    // to meet the policy, so another relative gets one.
    const now = Date.now();
    const trusted = new Set(members.filter((m) => online.includes(m) || (m.lastSeen !== null && now - Date.parse(m.lastSeen) < this.o.unreachableAfter()) || (m.lastSeen === null && now - Date.parse(m.pairedAt) < this.o.unreachableAfter())).map((m) => m.peerId));
    const policy = this.o.policy();
    const desired = Math.min(policy.peers, members.length);

    // Copies a relative's scrub found damaged no longer count: forget them, so this
    // pass puts a good copy there again.
    for (const member of online) {
      try {
        for (const id of await this.o.damagedAt(member.peerId)) {
          if ((await this.o.catalog.placements(id)).some((p) => p.target === member.peerId)) {
            await this.markDamaged(id, member.peerId);
            report.repaired.push({ id, peer: member.name, reason: 'scrub' });
          }
        }
      } catch (err) {
        this.o.log(`status of ${member.name} unavailable: ${(err as Error).message}`);
      }
    }

    const localTiers = this.o.localTiers();
    const done = { objects: 0 };
    const places = [...localTiers.filter((t) => t.kind === 'dir').map(tierPlace), ...online.map((m) => this.placeFor(m)), ...localTiers.filter((t) => t.kind === 's3' || t.kind === 'drive').map(tierPlace)];
    const result = await reconcile({
      catalog: this.o.catalog,
      policy,
      relatives: members.length,
      heldElsewhere: true,
      places,
      counts: (p) => trusted.has(p.target),
      forgets: (p) => p.tier === 'peer' && !memberIds.has(p.target),
      sources: (object) => objectSources(object, { outboxDir: this.o.outboxDir, localTiers, relatives: online.map((m) => this.tierFor(m)) }),
      settled: (object, peerCopies) => {
        if (peerCopies < desired) report.pending++;
        else this.dropOutbox(object.id);
        progress?.update({ phase: 'replicating', files: ++done.objects, bytes: 0 });
      },
      log: this.o.log,
      signal: this.o.signal,
    });
    for (const { id, place } of result.placed) {
      if (place.kind === 'peer') report.placed.push({ id, peer: place.label });
      else report.placedOnTargets.push({ id, target: place.name });
    }
    for (const { id, place, error } of result.failed) report.failed.push({ id, peer: place.label, error: error.message, ...(error instanceof RelativeError ? { reason: error.reason } : {}) });
    for (const { id, place } of result.unsourced) report.failed.push({ id, peer: place.label, error: new NoSourceError().message });
    for (const { place, reason } of result.unavailable) report.failed.push({ peer: place.label, error: reason });
    report.sent = result.sentToRelatives;
    if (report.sent.objects > 0) {
      const { objects, bytes, seconds } = report.sent;
      this.o.log(`sent ${objects} objects, ${bytes} bytes, to relatives in ${seconds.toFixed(3)} s (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`);
    }
    if (stopping()) return report;
    const usable = places.filter((p) => !result.unavailable.some((u) => u.place === p));
    const { retired, failed } = await retireCovered({ catalog: this.o.catalog, signal: this.o.signal }, usable, { dirTargets: localTiers.filter((t) => t.kind === 'dir').map((t) => t.name), peersWanted: desired });
    for (const { id, place, error } of failed) report.failed.push({ id, peer: place.label, error: error.message });
    report.retired = retired.length;
    for (const id of retired) this.dropOutbox(id);
    if (stopping()) return report;

    for (const member of online) {
      try {
        const pushed = await syncCatalogTo(this.o.catalogSync, peerIdFromString(member.peerId), this.o.catalog);
        report.catalogPushed.push({ peer: member.name, head: pushed.head.seq });
      } catch (err) {
        report.failed.push({ peer: member.name, error: `catalog push: ${(err as Error).message}` });
        this.o.log(`catalog push to ${member.name} failed: ${(err as Error).message}`);
      }
    }
    return report;
  }

  /**
   * A relative as a place for the reconciler. A source whose bytes the relative
   * refuses (EHASH) is a bad copy, reported when it is one of this home's own
   * targets; a relative whose disk is full, or that went offline, fails the put at
   * once (RelativeError): another copy would fare no better, and neither would the
   * host's other refusals (quota, a bad request).
   */
  private placeFor(member: FamilyMember): Place {
    const tier = this.tierFor(member);
    return {
      kind: 'peer',
      name: member.peerId,
      label: member.name,
      location: (id) => `peer:${member.name}/${id}`,
      send: async (object, source, signal) => ({ bytes: (await tier.send(object.id, source, signal)).sent }),
      delete: (id) => tier.delete(id),
      judge: (err, object, source) => {
        const remote = err instanceof PermanentTierError && err.cause instanceof RemoteObjectError ? err.cause : undefined;
        if (remote?.code === 'ENOSPC') throw new RelativeError('disk-full', `disk full at ${member.name}: ${remote.free ?? 'no'} bytes free`, { cause: err });
        const refusal = remote?.code;
        if (refusal !== undefined && refusal !== 'EHASH') throw err;
        if (refusal === undefined && this.o.host.getConnections(tier.peerId).length === 0) {
          throw new RelativeError('offline', `${member.name} went offline during the transfer (${(err as Error).message})`, { cause: err });
        }
        // A refusal or a file gone or short says something of the copy.
        const target = (source as Source).target;
        if (target && (refusal === 'EHASH' || lstatSync(target.location(object.id), { throwIfNoEntry: false })?.size !== object.size)) this.o.onReadFailure?.(target, object, err);
        return refusal === 'EHASH' ? 'bad-copy' : 'next';
      },
    };
  }

  /**
   * A relative's copy failed an audit or its own scrub: forget that placement, so
   * the next pass puts a good copy there (or elsewhere) again.
   */
  async markDamaged(id: string, peerId: string): Promise<void> {
    await this.o.catalog.append([{ k: 'unplace', id, target: peerId, time: Date.now() }]);
  }

  private dropOutbox(id: string): void {
    rmSync(join(this.o.outboxDir, id), { force: true });
  }
}

/** A put failed because of the relative itself, not the copy sent. */
class RelativeError extends Error {
  readonly reason: 'disk-full' | 'offline';
  constructor(reason: 'disk-full' | 'offline', message: string, options: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}
