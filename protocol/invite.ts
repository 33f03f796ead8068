// The invite code a home prints with `hearth invite` and a relative pastes into
// `hearth join`. It is a compact binary record in bech32m text (prefix "hearth1"):
// one alphabet with no look-alike characters, case-insensitive, and a checksum
// that catches typos before anything is dialled. Format: docs/invite-code.md.
import { base58, bech32m } from '@scure/base';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';

export const INVITE_PREFIX = 'hearth';
export const INVITE_VERSION = 1;
export const INVITE_SECRET_BYTES = 16;
export const MAX_INVITE_ADDRS = 8;
export const MAX_INVITE_NAME_BYTES = 64;

const BECH32_ALPHABET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const FLAG_NAME = 1;
const FLAG_QUOTA = 2;
const CODE_P2P = 421;

export interface Invite {
  /** The inviter's PeerId (base58btc text). */
  inviter: string;
  /** Where to dial the inviter, without a /p2p suffix. */
  addrs: string[];
  secret: Buffer;
  expiresAt: Date;
  /** How the inviter calls itself, shown to the joiner. */
  inviterName?: string;
  /** Bytes the inviter offers to store for the joiner. */
  quota?: number;
}

export type InviteErrorKind = 'malformed' | 'damaged' | 'expired';

export class InviteCodeError extends Error {
  readonly kind: InviteErrorKind;
  constructor(kind: InviteErrorKind, message: string) {
    super(message);
    this.name = 'InviteCodeError';
    this.kind = kind;
  }
}

function malformed(detail: string): InviteCodeError {
  return new InviteCodeError('malformed', `invite code is malformed (${detail}): copy the whole code that \`hearth invite\` printed`);
}

function damaged(): InviteCodeError {
  return new InviteCodeError('damaged', 'invite code is damaged (checksum mismatch): copy it again');
}

export function encodeInvite(invite: Invite): string {
  const peerIdBytes = peerIdBytesOf(invite.inviter);
  if (invite.secret.length !== INVITE_SECRET_BYTES) throw new Error(`invite secret must be ${INVITE_SECRET_BYTES} bytes`);
  if (invite.addrs.length === 0) throw new Error('an invite needs at least one address the joiner can dial');
  if (invite.addrs.length > MAX_INVITE_ADDRS) throw new Error(`an invite carries at most ${MAX_INVITE_ADDRS} addresses`);
  const name = invite.inviterName === undefined ? undefined : Buffer.from(invite.inviterName, 'utf8');
  if (name && (name.length === 0 || name.length > MAX_INVITE_NAME_BYTES)) throw new Error(`invite name must be 1..${MAX_INVITE_NAME_BYTES} bytes`);
  const parts: Uint8Array[] = [
    Uint8Array.of(INVITE_VERSION, (name ? FLAG_NAME : 0) | (invite.quota !== undefined ? FLAG_QUOTA : 0), peerIdBytes.length),
    peerIdBytes,
    invite.secret,
    u32(Math.floor(invite.expiresAt.getTime() / 1000)),
  ];
  if (invite.quota !== undefined) parts.push(uvarint(invite.quota));
  if (name) parts.push(Uint8Array.of(name.length), name);
  parts.push(Uint8Array.of(invite.addrs.length));
  for (const addr of invite.addrs) {
    const bytes = multiaddr(addr).bytes;
    if (bytes.length > 255) throw new Error(`address ${addr} is too long for an invite code`);
    parts.push(Uint8Array.of(bytes.length), bytes);
  }
  return bech32m.encode(INVITE_PREFIX, bech32m.toWords(Buffer.concat(parts)), false);
}

/**
 * Parse a pasted code. Whitespace (line wrapping) is ignored and case does not
 * matter. Throws InviteCodeError with one line saying what is wrong.
 */
export function parseInvite(text: string, now: Date = new Date()): Invite {
  const code = text.replace(/\s+/g, '').toLowerCase();
  if (!code.startsWith(`${INVITE_PREFIX}1`)) throw malformed(`it must start with "${INVITE_PREFIX}1"`);
  const body = code.slice(INVITE_PREFIX.length + 1);
  if (body.length < 8) throw malformed('it is too short');
  const stray = [...body].find((c) => !BECH32_ALPHABET.includes(c));
  // A character outside the alphabet is a typo (b, i, o and 1 never appear), so
  // it is reported like any other corruption.
  if (stray !== undefined) throw damaged();
  let bytes: Buffer;
  try {
    const decoded = bech32m.decode(code as `${string}1${string}`, false);
    bytes = Buffer.from(bech32m.fromWords(decoded.words));
  } catch {
    throw damaged();
  }
  const invite = decodeBody(bytes);
  if (invite.expiresAt.getTime() <= now.getTime()) {
    throw new InviteCodeError('expired', `invite code expired at ${invite.expiresAt.toISOString()}: ask for a new one (\`hearth invite\`)`);
  }
  return invite;
}

function decodeBody(bytes: Buffer): Invite {
  const reader = new Reader(bytes);
  const version = reader.u8();
  if (version !== INVITE_VERSION) throw malformed(`version ${version} is not supported by this Hearth; update Hearth`);
  const flags = reader.u8();
  const inviter = peerIdText(reader.take(reader.u8()));
  const secret = Buffer.from(reader.take(INVITE_SECRET_BYTES));
  const expiresAt = new Date(reader.u32() * 1000);
  const quota = flags & FLAG_QUOTA ? reader.uvarint() : undefined;
  let inviterName: string | undefined;
  if (flags & FLAG_NAME) {
    const nameBytes = reader.take(reader.u8());
    inviterName = new TextDecoder('utf-8', { fatal: true }).decode(nameBytes);
  }
  const count = reader.u8();
  if (count === 0 || count > MAX_INVITE_ADDRS) throw malformed(`it lists ${count} addresses`);
  const addrs: string[] = [];
  for (let i = 0; i < count; i++) {
    const raw = reader.take(reader.u8());
    try {
      addrs.push(multiaddr(raw).toString());
    } catch {
      throw malformed(`address ${i + 1} is not a multiaddr`);
    }
  }
  if (!reader.done()) throw malformed('it has trailing bytes');
  return { inviter, addrs, secret, expiresAt, ...(inviterName !== undefined ? { inviterName } : {}), ...(quota !== undefined ? { quota } : {}) };
}

/**
 * The addresses worth putting in an invite or telling a relative: no /p2p suffix,
 * no wildcard or link-local addresses; routable ones first, then addresses through
 * an anchor's relay (`…/p2p/<anchor>/p2p-circuit`, for a home behind NAT), loopback
 * only when there is nothing else (a home tested on one machine).
 */
export function selectDialable(addrs: readonly Multiaddr[]): string[] {
  const candidates = addrs
    .map(withoutOwnPeerId)
    .filter((ma) => {
      const host = ma.getComponents()[0]?.value ?? '';
      return host !== '0.0.0.0' && host !== '::' && !host.startsWith('169.254.') && !host.toLowerCase().startsWith('fe80:');
    })
    .map((ma) => ma.toString());
  const isRelayed = (a: string): boolean => a.includes('/p2p-circuit');
  const isLoopback = (a: string): boolean => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/');
  const direct = candidates.filter((a) => !isRelayed(a) && !isLoopback(a));
  const relayed = candidates.filter((a) => isRelayed(a) && !isLoopback(a));
  const chosen = direct.length + relayed.length > 0 ? [...direct, ...relayed] : candidates.filter((a) => !isRelayed(a));
  return [...new Set(chosen)].slice(0, MAX_INVITE_ADDRS);
}

/** Drops a trailing /p2p/<peer> only: a relayed address keeps its anchor's. */
function withoutOwnPeerId(ma: Multiaddr): Multiaddr {
  const components = ma.getComponents();
  return components.at(-1)?.code === CODE_P2P ? multiaddr(components.slice(0, -1)) : ma;
}

function peerIdBytesOf(peerId: string): Uint8Array {
  return peerIdFromString(peerId).toMultihash().bytes;
}

function peerIdText(bytes: Uint8Array): string {
  try {
    // A PeerId's text form is the base58btc of its multihash bytes.
    return peerIdFromString(base58.encode(bytes)).toString();
  } catch {
    throw malformed('the inviter PeerId is not valid');
  }
}

function u32(value: number): Uint8Array {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

// Unsigned LEB128 for values up to 2^53, with arithmetic instead of bit operators
// (which would truncate to 32 bits).
function uvarint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`quota must be a whole number of bytes, got ${value}`);
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) + 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return Uint8Array.from(out);
}

class Reader {
  private offset = 0;
  private readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  take(length: number): Uint8Array {
    if (this.offset + length > this.bytes.length) throw malformed('it is truncated');
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  u32(): number {
    return Buffer.from(this.take(4)).readUInt32BE();
  }
  uvarint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      value += (byte % 0x80) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) break;
        return value;
      }
      scale *= 0x80;
    }
    throw malformed('the quota field is out of range');
  }
  done(): boolean {
    return this.offset === this.bytes.length;
  }
}
