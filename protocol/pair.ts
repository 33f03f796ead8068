// /hearth/pair/1: a relative's home joins the family with a one-time invite code.
// Shaped like js-libp2p's ping service: a versioned protocol id, limits, and the
// handler (inviter side) next to the client (joiner side, join()).
//
// The joiner proves it holds the code's secret inside the Noise channel without
// sending it: proof = HMAC-SHA256(SHA-256(secret), label || inviter PeerId ||
// joiner PeerId). Noise has already authenticated both PeerIds, and binding the
// proof to both means a code cannot be relayed: a man in the middle would have to
// present the joiner's PeerId, which it cannot without the joiner's key.
// Wire format and flow: docs/protocols.md.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface';
import type { AddressManager, ConnectionManager, Registrar } from '@libp2p/interface-internal';
import { encodeInvite, parseInvite, selectDialable, type Invite } from './invite.ts';
import { asRecord, wholeNumber, jsonFrames, ProtocolMessageError } from './json-frames.ts';

export const PAIR_PROTOCOL = '/hearth/pair/1';
export const DEFAULT_INVITE_TTL_MS = 24 * 60 * 60 * 1000;
export const MAX_PEER_NAME_LENGTH = 64;
const MAX_PEER_ADDRS = 16;
const MAX_ADDR_LENGTH = 300;
const PROOF_LABEL = Buffer.from('hearth/pair/1 proof\0');
/** How long a refused stranger's connection may take to close cleanly (the refusal in flight) before it is reset. */
const STRANGER_CLOSE_MS = 2000;

export const PAIR_LIMITS = {
  maxMessageBytes: 8 * 1024,
  timeoutMs: 20_000,
  /** One proof per stranger connection: a second stream at once is refused, and the first one's failure ends the connection. */
  maxInboundStreams: 1,
  maxOutboundStreams: 4,
};

/** A code this home handed out, as the inviter keeps it. */
export interface StoredInvite {
  id: string;
  /**
   * Hex SHA-256 of the secret: the key of the joiner's proof, so as good as the code
   * while the code is outstanding (docs/invite-code.md says what keeping it protects).
   */
  secretHash: string;
  /** What the inviter will call the joiner; the joiner's own name when absent. */
  name?: string;
  /** Bytes the inviter grants the joiner. */
  quota: number;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
  usedBy?: string;
}

/** A home on the other end of a pairing, as this home records it. */
export interface PairedPeer {
  peerId: string;
  name: string;
  addrs: string[];
  quotaTheyGrantUs: number;
  quotaWeGrantThem: number;
}

export type InviteRefusal = 'unknown' | 'used' | 'expired';

export type RedeemOutcome = { ok: true; relinked: boolean; name: string } | { ok: false; reason: Exclude<InviteRefusal, 'unknown'> };

/** What the pair service needs from the family roster (node/family.ts implements it). */
export interface PairStore {
  addInvite(invite: StoredInvite): Promise<void>;
  invites(): readonly StoredInvite[];
  /**
   * In one step: re-check that the invite is unused and unexpired, mark it used by
   * the joiner, and record the joiner (or update it when it is already a member).
   */
  redeemInvite(inviteId: string, joiner: PairedPeer): Promise<RedeemOutcome>;
  /** Record the home we joined, or update it when it is already a member. */
  recordPeer(peer: PairedPeer): Promise<{ relinked: boolean; name: string }>;
  /** Let the gater admit this not-yet-member until the returned function is called. */
  expectInviter(peerId: string): () => void;
  /**
   * Whether the pair handler answers this peer now: a member (repeating a join whose
   * reply was lost), or anyone while one of this home's codes is unused and unexpired.
   */
  mayPair(peerId: string): boolean;
  isMember(peerId: string): boolean;
}

export interface PairServiceInit {
  store: PairStore;
  /** How this home calls itself; sent to the other side. */
  selfName(): string;
  now?: () => Date;
  timeoutMs?: number;
  maxMessageBytes?: number;
  maxInboundStreams?: number;
  maxOutboundStreams?: number;
}

export interface PairComponents {
  peerId: PeerId;
  registrar: Registrar;
  connectionManager: ConnectionManager;
  addressManager: AddressManager;
}

export interface InviteOptions {
  /** What this home will call the joiner. */
  name?: string;
  /** Bytes this home grants the joiner. */
  quota: number;
  ttlMs?: number;
}

export interface JoinOffer {
  /** What this home will call the inviter; the inviter's own name when absent. */
  name?: string;
  /** Bytes this home grants the inviter. */
  quota: number;
  signal?: AbortSignal;
}

export interface JoinResult {
  peerId: string;
  name: string;
  quotaTheyGrantUs: number;
  quotaWeGrantThem: number;
  /** This home's PeerId was already in the inviter's family (a recovered home). */
  relinked: boolean;
  /** Set when the two homes' clocks differ by more than a minute: by how much. */
  clockWarning?: string;
}

/**
 * 'not-admitted': the inviter's gater closed the connection. It admits strangers
 * only while one of its codes is unused and unexpired, so the joiner cannot be
 * told which of used, expired or unknown applies.
 */
export type PairRefusal = InviteRefusal | 'not-admitted';

export class PairRefusedError extends Error {
  readonly reason: PairRefusal;
  constructor(reason: PairRefusal, message: string) {
    super(message);
    this.name = 'PairRefusedError';
    this.reason = reason;
  }
}

interface PairRequest {
  proof: Buffer;
  name: string;
  quota: number;
  addrs: string[];
}

/** `time`: the inviter's clock when it answered (ISO), so a joiner can tell how far the two clocks differ. */
type PairReply = { ok: true; name: string; quota: number; relinked: boolean; time?: string } | { ok: false; reason: InviteRefusal; error: string; time?: string };

export class PairService implements Startable {
  readonly protocol = PAIR_PROTOCOL;
  private readonly components: PairComponents;
  private readonly store: PairStore;
  private readonly selfName: () => string;
  private readonly now: () => Date;
  private readonly timeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly maxInboundStreams: number;
  private readonly maxOutboundStreams: number;

  constructor(components: PairComponents, init: PairServiceInit) {
    this.components = components;
    this.store = init.store;
    this.selfName = init.selfName;
    this.now = init.now ?? (() => new Date());
    this.timeoutMs = init.timeoutMs ?? PAIR_LIMITS.timeoutMs;
    this.maxMessageBytes = init.maxMessageBytes ?? PAIR_LIMITS.maxMessageBytes;
    this.maxInboundStreams = init.maxInboundStreams ?? PAIR_LIMITS.maxInboundStreams;
    this.maxOutboundStreams = init.maxOutboundStreams ?? PAIR_LIMITS.maxOutboundStreams;
    this.handlePair = this.handlePair.bind(this);
  }

  readonly [Symbol.toStringTag] = '@hearth/pair';

  async start(): Promise<void> {
    await this.components.registrar.handle(this.protocol, this.handlePair, {
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxOutboundStreams,
    });
  }

  async stop(): Promise<void> {
    await this.components.registrar.unhandle(this.protocol);
  }

  /** Make a one-time code and remember its secret's hash until it is used or expires. */
  async invite(options: InviteOptions): Promise<{ code: string; invite: Invite }> {
    if (options.name !== undefined) peerName(options.name, 'the name for the invited home');
    wholeNumber(options.quota, 'the quota for the invited home');
    peerName(this.selfName(), "this home's name");
    const addrs = selectDialable(this.components.addressManager.getAddresses());
    if (addrs.length === 0) throw new Error('this home has no address a relative could dial: start it with --listen');
    const secret = randomBytes(16);
    const now = this.now();
    // Whole seconds, as the code carries them, so both sides agree on the expiry.
    const expiresAt = new Date(Math.floor((now.getTime() + (options.ttlMs ?? DEFAULT_INVITE_TTL_MS)) / 1000) * 1000);
    const invite: Invite = { inviter: this.components.peerId.toString(), addrs, secret, expiresAt, inviterName: this.selfName(), quota: options.quota };
    const code = encodeInvite(invite);
    await this.store.addInvite({
      id: randomUUID(),
      secretHash: proofKey(secret).toString('hex'),
      ...(options.name !== undefined ? { name: options.name } : {}),
      quota: options.quota,
      createdAt: now.toISOString(),
      expiresAt: expiresAt.toISOString(),
    });
    return { code, invite };
  }

  /** Join the family of the home that made `code`. Records the inviter only once it accepted. */
  async join(code: string, offer: JoinOffer): Promise<JoinResult> {
    // The code's expiry is the inviter's to judge, by the clock that made it: a code
    // that looks expired here is still offered, and a refusal says how far the clocks differ.
    const invite = parseInvite(code, new Date(0));
    const expiredHere = invite.expiresAt.getTime() <= this.now().getTime();
    if (offer.name !== undefined) peerName(offer.name, 'the name for the inviting home');
    wholeNumber(offer.quota, 'the quota for the inviting home');
    peerName(this.selfName(), "this home's name");
    const self = this.components.peerId;
    if (invite.inviter === self.toString()) {
      throw new Error('this invite code was made by this home: run `hearth join` on the home that should join');
    }
    const inviter = peerIdFromString(invite.inviter);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = offer.signal ? AbortSignal.any([offer.signal, timeout]) : timeout;
    const wasConnected = this.components.connectionManager.getConnections(inviter).length > 0;
    const release = this.store.expectInviter(invite.inviter);
    let connection: Connection | undefined;
    try {
      const dialable = invite.addrs.map((a) => multiaddr(a).encapsulate(`/p2p/${invite.inviter}`));
      connection = await this.components.connectionManager.openConnection(dialable, { signal }).catch((err: unknown) => {
        throw new Error(`cannot reach the inviting home at ${invite.addrs.join(', ')}: check that its daemon runs and the code is unused and unexpired (${(err as Error).message})`);
      });
      const reply = await this.exchange(connection, {
        proof: pairProof(proofKey(invite.secret), inviter, self),
        name: this.selfName(),
        quota: offer.quota,
        addrs: selectDialable(this.components.addressManager.getAddresses()),
      }, signal).catch((err: unknown) => {
        if (err instanceof ProtocolMessageError || offer.signal?.aborted) throw err;
        if (timeout.aborted) throw new Error(`the inviting home did not answer within ${this.timeoutMs / 1000} s: try again`);
        if (expiredHere) throw new PairRefusedError('expired', `invite code expired at ${invite.expiresAt.toISOString()} by this computer's clock (now ${this.now().toISOString()}), and the inviting home refused it too: ask for a new one; if it is fresh, one of the two clocks is wrong`);
        throw new PairRefusedError('not-admitted', `the inviting home closed the connection: this code was already used or has expired (or it runs no Hearth): ask for a new one (${(err as Error).message})`);
      });
      if (!reply.ok) {
        const skew = reply.reason === 'expired' && reply.time !== undefined ? clockSkew(this.now().getTime(), Date.parse(reply.time)) : undefined;
        throw new PairRefusedError(reply.reason, skew ? `${reply.error} (${skew}; codes expire by the inviting home's clock)` : reply.error);
      }
      const recorded = await this.store.recordPeer({
        peerId: invite.inviter,
        name: offer.name ?? reply.name,
        addrs: invite.addrs,
        quotaTheyGrantUs: reply.quota,
        quotaWeGrantThem: offer.quota,
      });
      const skew = reply.time !== undefined ? clockSkew(this.now().getTime(), Date.parse(reply.time)) : undefined;
      return { peerId: invite.inviter, name: recorded.name, quotaTheyGrantUs: reply.quota, quotaWeGrantThem: offer.quota, relinked: reply.relinked, ...(skew ? { clockWarning: skew } : {}) };
    } finally {
      release();
      // The pairing connection began as a stranger's, which the DHT ignored; the
      // next dial, as a member, puts the relative in the routing table.
      if (connection && !wasConnected) await connection.close().catch(() => undefined);
    }
  }

  private async exchange(connection: Connection, request: PairRequest, signal: AbortSignal): Promise<PairReply> {
    const stream = await connection.newStream(this.protocol, { signal });
    try {
      const frames = jsonFrames(stream, this.maxMessageBytes);
      await frames.write({ ...request, proof: request.proof.toString('hex') }, signal);
      const reply = parsePairReply(await frames.read(signal));
      await stream.close({ signal });
      return reply;
    } catch (err) {
      stream.abort(err as Error);
      throw err;
    }
  }

  /**
   * A stranger gets one proof per connection: a stream when no code is outstanding
   * (it connected while one was, and it has since been used or expired), a refused
   * proof, or a malformed request ends its connection, not only the stream.
   */
  private async handlePair(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const joiner = connection.remotePeer;
    const cutStranger = async (why: string): Promise<void> => {
      if (this.store.isMember(joiner.toString())) return;
      await connection.close({ signal: AbortSignal.timeout(STRANGER_CLOSE_MS) }).catch(() => connection.abort(new Error(why)));
    };
    if (!this.store.mayPair(joiner.toString())) {
      stream.abort(new Error('this home has no invite code outstanding'));
      await cutStranger('this home has no invite code outstanding');
      return;
    }
    let accepted = false;
    try {
      const frames = jsonFrames(stream, this.maxMessageBytes);
      const request = parsePairRequest(await frames.read(signal));
      const reply = await this.answer(request, joiner);
      accepted = reply.ok;
      await frames.write({ ...reply, time: this.now().toISOString() }, signal);
      await stream.close({ signal });
      // The joiner closes its side once it has read the reply; closing the
      // connection before that could cut the refusal off.
      if (!accepted) await remoteClosed(stream, STRANGER_CLOSE_MS);
    } catch (err) {
      stream.abort(err as Error);
    }
    if (!accepted) await cutStranger('pairing refused');
  }

  private async answer(request: PairRequest, joiner: PeerId): Promise<PairReply> {
    const self = this.components.peerId;
    const invite = this.store.invites().find((candidate) =>
      timingSafeEqual(pairProof(Buffer.from(candidate.secretHash, 'hex'), self, joiner), request.proof));
    if (!invite) {
      return refusal('unknown', 'the inviting home does not know this invite code (made by another home, or removed): ask for a new one');
    }
    const outcome = await this.store.redeemInvite(invite.id, {
      peerId: joiner.toString(),
      name: invite.name ?? request.name,
      addrs: request.addrs,
      quotaTheyGrantUs: request.quota,
      quotaWeGrantThem: invite.quota,
    });
    if (!outcome.ok) {
      return outcome.reason === 'used'
        ? refusal('used', 'this invite code was already used (codes work once): ask for a new one')
        : refusal('expired', `this invite code expired at ${invite.expiresAt}: ask for a new one`);
    }
    return { ok: true, name: this.selfName(), quota: invite.quota, relinked: outcome.relinked };
  }
}

export function pairService(init: PairServiceInit): (components: PairComponents) => PairService {
  return (components) => new PairService(components, init);
}

/** Resolves when both ends of `stream` are closed, or after `ms`. */
async function remoteClosed(stream: Stream, ms: number): Promise<void> {
  if (stream.status === 'closed' || stream.status === 'aborted' || stream.status === 'reset') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    stream.addEventListener('close', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** Clocks within this of each other are taken to agree (the reply's own trip included). */
const CLOCK_TOLERANCE_MS = 60_000;

/** "this computer's clock is 2 h 5 min ahead of the inviting home's", or undefined when they agree. */
function clockSkew(here: number, there: number): string | undefined {
  const offset = here - there;
  if (!Number.isFinite(offset) || Math.abs(offset) <= CLOCK_TOLERANCE_MS) return undefined;
  const minutes = Math.round(Math.abs(offset) / 60_000);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const parts = [days && `${days} d`, hours && `${hours} h`, minutes % 60 && `${minutes % 60} min`].filter(Boolean).join(' ');
  return `the clocks differ: this computer's clock is ${parts} ${offset > 0 ? 'ahead of' : 'behind'} the inviting home's`;
}

function refusal(reason: InviteRefusal, error: string): PairReply {
  return { ok: false, reason, error };
}

function proofKey(secret: Buffer): Buffer {
  return createHash('sha256').update(secret).digest();
}

function pairProof(key: Buffer, inviter: PeerId, joiner: PeerId): Buffer {
  return createHmac('sha256', key)
    .update(PROOF_LABEL)
    .update(inviter.toMultihash().bytes)
    .update(joiner.toMultihash().bytes)
    .digest();
}

export function parsePairRequest(value: unknown): PairRequest {
  const message = asRecord(value, 'pair request');
  const proof = typeof message.proof === 'string' && /^[0-9a-f]{64}$/.test(message.proof) ? Buffer.from(message.proof, 'hex') : undefined;
  if (!proof) throw new ProtocolMessageError('pair request: proof must be 64 hex digits');
  return { proof, name: peerName(message.name), quota: wholeNumber(message.quota, 'pair request: quota'), addrs: peerAddrs(message.addrs) };
}

export function parsePairReply(value: unknown): PairReply {
  const message = asRecord(value, 'pair reply');
  if (message.ok === true) {
    if (typeof message.relinked !== 'boolean') throw new ProtocolMessageError('pair reply: relinked must be true or false');
    return { ok: true, name: peerName(message.name), quota: wholeNumber(message.quota, 'pair reply: quota'), relinked: message.relinked, ...replyTime(message.time) };
  }
  const reason = message.reason;
  if (message.ok !== false || (reason !== 'unknown' && reason !== 'used' && reason !== 'expired') || typeof message.error !== 'string') {
    throw new ProtocolMessageError('pair reply is neither an acceptance nor a refusal');
  }
  return { ok: false, reason, error: message.error.slice(0, 300), ...replyTime(message.time) };
}

/** Hearth before 0.1 sent no time; a malformed one is ignored like an absent one. */
function replyTime(value: unknown): { time?: string } {
  return typeof value === 'string' && value.length <= 40 && Number.isFinite(Date.parse(value)) ? { time: value } : {};
}

function peerName(value: unknown, what = 'pair message: name'): string {
  // Names end up in terminals and file names; control characters are refused.
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_PEER_NAME_LENGTH || /\p{Cc}/u.test(value)) {
    throw new ProtocolMessageError(`${what} must be 1..${MAX_PEER_NAME_LENGTH} printable characters`);
  }
  return value;
}

function peerAddrs(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > MAX_PEER_ADDRS) {
    throw new ProtocolMessageError(`pair request: addrs must be a list of at most ${MAX_PEER_ADDRS} multiaddrs`);
  }
  return value.map((addr) => {
    if (typeof addr !== 'string' || addr.length > MAX_ADDR_LENGTH) throw new ProtocolMessageError('pair request: each address must be a multiaddr string');
    try {
      return multiaddr(addr).toString();
    } catch {
      throw new ProtocolMessageError(`pair request: ${addr.slice(0, 80)} is not a multiaddr`);
    }
  });
}
