// Anchors: relatives' homes that can be dialled (an announced address) and run a
// circuit relay for their family (docs/nat.md). A home behind NAT keeps a
// reservation on up to two of them, so relatives reach it at
// <anchor address>/p2p/<anchor>/p2p-circuit/p2p/<home>.
//
// Reservations are made on anchors named by the roster (a "configured" relay in
// circuit-relay-v2's terms), never by relay discovery: discovery walks the DHT in a
// loop that spins when the family's routing table is empty, and would take any
// relay. An anchor is dialled first and only listened on once connected, because a
// listen that fails leaves its listener behind in libp2p's transport manager.
import { peerIdFromString } from '@libp2p/peer-id';
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr';
import type { Libp2pEvents, PeerId, Startable, TypedEventTarget } from '@libp2p/interface';
import type { ConnectionManager, TransportManager } from '@libp2p/interface-internal';

/** Reservations a home keeps at most (issue 14: "each home keeps reservations on up to two"). */
export const MAX_ANCHOR_RESERVATIONS = 2;
/** How often a home without its reservations tries its anchors again. */
export const ANCHOR_RETRY_MS = 60_000;
const ANCHOR_DIAL_TIMEOUT_MS = 10_000;

export interface AnchorCandidate {
  peerId: string;
  /** Its direct addresses, without /p2p. */
  addrs: readonly string[];
}

export interface AnchorReservationsInit {
  /** The family's anchors, best first (node/family.ts: FamilyRoster.anchors). */
  anchors(): readonly AnchorCandidate[];
  log?: (line: string) => void;
  retryMs?: number;
}

interface AnchorComponents {
  transportManager: TransportManager;
  connectionManager: ConnectionManager;
  events: TypedEventTarget<Libp2pEvents>;
}

/**
 * Where to dial a relative: its own last known addresses (direct ones first), then
 * through each family anchor, since a relative behind NAT keeps a reservation on
 * the family's anchors, which may have changed since it last told us where it is.
 */
export function addressesToDial(member: AnchorCandidate, anchors: readonly AnchorCandidate[]): string[] {
  const viaAnchors = anchors
    .filter((a) => a.peerId !== member.peerId)
    .flatMap((a) => a.addrs.filter((addr) => !addr.includes('/p2p-circuit')).map((addr) => `${addr}/p2p/${a.peerId}/p2p-circuit`));
  return [...new Set([...member.addrs, ...viaAnchors])];
}

export class AnchorReservations implements Startable {
  private readonly components: AnchorComponents;
  private readonly init: AnchorReservationsInit;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The last failure logged per anchor: an anchor that stays away is logged once, not every minute. */
  private readonly failures = new Map<string, string>();

  constructor(components: AnchorComponents, init: AnchorReservationsInit) {
    this.components = components;
    this.init = init;
    this.onConnect = this.onConnect.bind(this);
  }

  readonly [Symbol.toStringTag] = '@hearth/anchor-reservations';

  start(): void {
    this.stopped = false;
  }

  afterStart(): void {
    this.components.events.addEventListener('peer:connect', this.onConnect);
    this.timer = setInterval(() => this.ensure(), this.init.retryMs ?? ANCHOR_RETRY_MS);
    this.timer.unref();
    this.ensure();
  }

  stop(): void {
    this.stopped = true;
    this.components.events.removeEventListener('peer:connect', this.onConnect);
    if (this.timer) clearInterval(this.timer);
  }

  /** The anchors this home holds a reservation on now. */
  reservedOn(): string[] {
    return this.init.anchors().map((a) => a.peerId).filter((id) => this.hasReservation(id));
  }

  /** Make reservations until MAX_ANCHOR_RESERVATIONS are held or every anchor was tried; one pass at a time. */
  ensure(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    let held = this.reservedOn().length;
    for (const anchor of this.init.anchors()) {
      if (held >= MAX_ANCHOR_RESERVATIONS || this.stopped) return;
      if (this.hasReservation(anchor.peerId)) continue;
      try {
        await this.reserve(anchor);
        this.failures.delete(anchor.peerId);
        held++;
      } catch (err) {
        const why = (err as Error).message;
        if (this.failures.get(anchor.peerId) !== why) this.init.log?.(`no relay reservation on anchor ${anchor.peerId}: ${why}`);
        this.failures.set(anchor.peerId, why);
      }
    }
  }

  private async reserve(anchor: AnchorCandidate): Promise<void> {
    const id = peerIdFromString(anchor.peerId);
    const direct = anchor.addrs.filter((a) => !a.includes('/p2p-circuit')).map((a) => multiaddr(a).encapsulate(`/p2p/${anchor.peerId}`));
    const connection = await this.components.connectionManager.openConnection(direct.length > 0 ? direct : id, { signal: AbortSignal.timeout(ANCHOR_DIAL_TIMEOUT_MS) });
    // A reservation is only as good as the connection it was made on: never over a relay.
    if (connection.remoteAddr.toString().includes('/p2p-circuit')) throw new Error('it is reachable only through a relay itself');
    const at = connection.remoteAddr.decapsulateCode(CODE_P2P).encapsulate(`/p2p/${anchor.peerId}/p2p-circuit`);
    await this.components.transportManager.listen([at]);
  }

  private hasReservation(peerId: string): boolean {
    const marker = `/p2p/${peerId}/p2p-circuit`;
    return this.components.transportManager.getAddrs().some((a) => a.toString().includes(marker));
  }

  private onConnect(event: CustomEvent<PeerId>): void {
    const id = event.detail.toString();
    if (this.init.anchors().some((a) => a.peerId === id) && !this.hasReservation(id)) void this.ensure();
  }
}

export function anchorReservations(init: AnchorReservationsInit): (components: AnchorComponents) => AnchorReservations {
  return (components) => new AnchorReservations(components, init);
}
