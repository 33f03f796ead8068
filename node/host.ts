// The libp2p host of a home: TCP and circuit relay v2, Noise, Yamux, identify, ping
// and a private kad-dht, with the family as its only company. An anchor (a home
// relatives can dial) also runs a relay server for the family (docs/nat.md).
//
// Who gets in (docs/protocols.md, "Admission"):
// - The connection gater refuses, before any protocol runs, every PeerId that is
//   neither a family member nor an admitted stranger. A stranger is admitted
//   while this home has an unexpired, unused invite code outstanding (anyone may
//   be the one holding it), or while this home is dialling an inviter to join it.
// - An admitted stranger can only pair: every /hearth/ protocol other than
//   /hearth/pair/1 (the DHT included) is wrapped so a stream from a non-member is
//   reset before its handler runs, and the DHT never adds a non-member to its
//   routing table or hands one out. Identify and ping stay open: they reveal only
//   what the stranger already dialled.
// - A stranger that has not become a member within `strangerGraceMs` is
//   disconnected, so an open invite does not let connections linger.
import { createLibp2p, type ServiceFactoryMap } from 'libp2p';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { tcp } from '@libp2p/tcp';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { kadDHT, type KadDHT } from '@libp2p/kad-dht';
import { circuitRelayServer, circuitRelayTransport, type CircuitRelayService } from '@libp2p/circuit-relay-v2';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Connection, Libp2p, Libp2pEvents, PeerId, PeerInfo, ServiceMap, Startable, Stream, TypedEventTarget } from '@libp2p/interface';
import type { Registrar } from '@libp2p/interface-internal';
import type { Identify } from '@libp2p/identify';
import type { Ping } from '@libp2p/ping';

/**
 * The ping service, with room for two outbound pings per connection: libp2p's
 * connection monitor pings every connection every 10 s on the same protocol, and
 * with the default of one a Hearth ping that meets a heartbeat fails at once
 * (the relative reads as not answering) or makes the heartbeat fail, and the
 * monitor then aborts the connection. Hearth itself keeps at most one of its own
 * per relative (Replicator.reach); a relative accepts two inbound by default.
 */
export const familyPing = () => ping({ maxOutboundStreams: 2 });
import { PAIR_PROTOCOL } from '../protocol/pair.ts';
import { noiseCrypto } from './noise-crypto.ts';
import { anchorReservations, type AnchorCandidate, type AnchorReservations } from './anchors.ts';

export const HEARTH_PROTOCOL_PREFIX = '/hearth/';
export const DHT_PROTOCOL = '/hearth/kad/1.0.0';
/** What `hearth daemon` listens on when given no --listen. */
export const DAEMON_LISTEN_DEFAULT = ['/ip4/0.0.0.0/tcp/4001'];
export const STRANGER_GRACE_MS = 30_000;
/**
 * Most bytes a stream's receiver lets its sender have in flight (Yamux's default is
 * 16 MiB). A receiver slower than the link (a host storing an upload) kept that much
 * waiting long enough for V8 to promote it, and ran ~30 mark-compacts per GB; with
 * 2 MiB it ran ~1, at the same speed (2.6 GB puts and bare streams on loopback).
 */
export const STREAM_WINDOW = 2 * 1024 * 1024;

/** Who may connect: the family roster answers (node/family.ts). */
export interface FamilyGate {
  isMember(peerId: string): boolean;
  /** A not-yet-member that may connect, for /hearth/pair/1 only. */
  admitsStranger(peerId: string): boolean;
}

export interface HearthHostInit<S extends ServiceMap> {
  /** 32-byte Ed25519 seed (HomeKeys.ed25519Seed): the same seed gives the same PeerId. */
  seed: Uint8Array;
  listen: string[];
  /** Addresses to advertise instead of the listening ones (a forwarded port). */
  announce?: string[];
  gate: FamilyGate;
  /** Hearth's protocol services; every /hearth/ protocol but pair is family-only. */
  services?: ServiceFactoryMap<S>;
  /** Last known addresses of relatives, put in the peer store so they can be dialled by PeerId. */
  knownPeers?: ReadonlyArray<{ peerId: string; addrs: readonly string[] }>;
  strangerGraceMs?: number;
  /**
   * Run a circuit relay for the family (this home is an anchor: relatives can dial
   * it). Only members reserve, only member-to-member circuits are relayed, and those
   * have no data or time limit (docs/nat.md).
   */
  relay?: boolean;
  /** Anchors to keep a reservation on (up to two), best first; ignored when `relay` is set. */
  anchors?: () => readonly AnchorCandidate[];
  log?: (line: string) => void;
}

/** Reservations a family relay holds at most: a family is tens of homes, not a network. */
export const RELAY_MAX_RESERVATIONS = 64;

export interface HearthBaseServices {
  identify: Identify;
  ping: Ping;
  dht: KadDHT;
  familyGuard: FamilyGuard;
  /** Present when the home is an anchor. */
  relay?: CircuitRelayService;
  /** Present when the home is not an anchor. */
  anchors?: AnchorReservations;
}

export type HearthHost<S extends ServiceMap = ServiceMap> = Libp2p<S & HearthBaseServices>;

export async function createHearthHost<S extends ServiceMap = ServiceMap>(init: HearthHostInit<S>): Promise<HearthHost<S>> {
  if (init.seed.length !== 32) throw new Error('the libp2p identity seed must be 32 bytes');
  const privateKey = await generateKeyPairFromSeed('Ed25519', init.seed);
  const self = peerIdFromPrivateKey(privateKey);
  const { gate } = init;
  const admitted = (peerId: PeerId): boolean => {
    const id = peerId.toString();
    return gate.isMember(id) || gate.admitsStranger(id);
  };
  const refused = (peerId: PeerId): boolean => !admitted(peerId);
  const services = {
    ...init.services,
    identify: identify(),
    ping: familyPing(),
    dht: kadDHT({
      protocol: DHT_PROTOCOL,
      // Explicit: the default differs between the docs and the code.
      clientMode: false,
      // Keeps loopback and LAN addresses (a family shares a LAN more often than
      // not) but only for members: strangers never enter the routing table.
      peerInfoMapper: (peer: PeerInfo) => (gate.isMember(peer.id.toString()) || peer.id.equals(self) ? peer : { ...peer, multiaddrs: [] }),
    }),
    familyGuard: (components: FamilyGuardComponents) => new FamilyGuard(components, gate, init.strangerGraceMs ?? STRANGER_GRACE_MS),
    ...(init.relay
      ? { relay: circuitRelayServer({ reservations: { applyDefaultLimit: false, maxReservations: RELAY_MAX_RESERVATIONS } }) }
      : init.anchors
        ? { anchors: anchorReservations({ anchors: init.anchors, ...(init.log ? { log: init.log } : {}) }) }
        : {}),
  } as ServiceFactoryMap<S & HearthBaseServices>;
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: init.listen, ...(init.announce ? { announce: init.announce } : {}) },
    // Every home can dial a relative through an anchor's relay, and be dialled so.
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: STREAM_WINDOW } })],
    connectionGater: {
      denyDialPeer: refused,
      denyInboundEncryptedConnection: refused,
      denyOutboundEncryptedConnection: refused,
      // An anchor's relay serves the family only: members reserve, and a circuit
      // joins two members (a stranger cannot connect at all unless an invite is out).
      denyInboundRelayReservation: (peerId) => !gate.isMember(peerId.toString()),
      denyOutboundRelayedConnection: (source, destination) => !gate.isMember(source.toString()) || !gate.isMember(destination.toString()),
      denyInboundRelayedConnection: (relay, remote) => !gate.isMember(relay.toString()) || refused(remote),
    },
    services,
  });
  for (const peer of init.knownPeers ?? []) {
    if (peer.addrs.length > 0) await node.peerStore.merge(peerIdFromString(peer.peerId), { multiaddrs: peer.addrs.map((a) => multiaddr(a)) });
  }
  return node;
}

interface FamilyGuardComponents {
  registrar: Registrar;
  events: TypedEventTarget<Libp2pEvents>;
}

/**
 * Makes Hearth's protocols family-only. After every service has registered its
 * handler, each /hearth/ handler except pair is replaced by one that resets
 * streams from non-members; it also disconnects strangers that linger.
 * (libp2p 3.3.11's stream middleware is not used: it appends the handler to the
 * stored middleware list on every inbound stream, so handlers run repeatedly.)
 * Handlers registered after start are not wrapped, so register protocols as
 * services, and never call dht.setMode(): it would re-register the DHT unguarded.
 */
export class FamilyGuard implements Startable {
  private readonly components: FamilyGuardComponents;
  private readonly gate: FamilyGate;
  private readonly graceMs: number;
  private readonly strangerTimers = new Map<string, NodeJS.Timeout>();

  constructor(components: FamilyGuardComponents, gate: FamilyGate, graceMs: number) {
    this.components = components;
    this.gate = gate;
    this.graceMs = graceMs;
    this.onConnectionOpen = this.onConnectionOpen.bind(this);
    this.onConnectionClose = this.onConnectionClose.bind(this);
  }

  readonly [Symbol.toStringTag] = '@hearth/family-guard';

  start(): void {
    this.components.events.addEventListener('connection:open', this.onConnectionOpen);
    this.components.events.addEventListener('connection:close', this.onConnectionClose);
  }

  async afterStart(): Promise<void> {
    const { registrar } = this.components;
    const familyOnlyProtocols = registrar.getProtocols().filter((p) => p.startsWith(HEARTH_PROTOCOL_PREFIX) && p !== PAIR_PROTOCOL);
    for (const protocol of familyOnlyProtocols) {
      const { handler, options } = registrar.getHandler(protocol);
      const familyOnly = (stream: Stream, connection: Connection): void | Promise<void> => {
        if (!this.gate.isMember(connection.remotePeer.toString())) {
          stream.abort(new Error(`${protocol} is for family members only`));
          return;
        }
        return handler(stream, connection);
      };
      await registrar.handle(protocol, familyOnly, { ...options, force: true });
    }
  }

  stop(): void {
    this.components.events.removeEventListener('connection:open', this.onConnectionOpen);
    this.components.events.removeEventListener('connection:close', this.onConnectionClose);
    for (const timer of this.strangerTimers.values()) clearTimeout(timer);
    this.strangerTimers.clear();
  }

  private onConnectionOpen(event: CustomEvent<Connection>): void {
    const connection = event.detail;
    if (this.gate.isMember(connection.remotePeer.toString())) return;
    const timer = setTimeout(() => {
      this.strangerTimers.delete(connection.id);
      if (!this.gate.isMember(connection.remotePeer.toString())) connection.abort(new Error('pairing did not complete in time'));
    }, this.graceMs);
    timer.unref();
    this.strangerTimers.set(connection.id, timer);
  }

  private onConnectionClose(event: CustomEvent<Connection>): void {
    const timer = this.strangerTimers.get(event.detail.id);
    if (timer) clearTimeout(timer);
    this.strangerTimers.delete(event.detail.id);
  }
}
