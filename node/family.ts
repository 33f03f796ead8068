// The family roster: the homes this home is paired with, and the invite codes it
// has handed out. It is small (a family, not a network), read whole at start and
// rewritten whole on each change: family.json in the home, mode 0600, written to a
// temporary file, fsynced and renamed over the old one so a crash leaves either
// the old roster or the new one. Changes are serialised and the in-memory copy
// only changes once the file has.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PairedPeer, PairStore, RedeemOutcome, StoredInvite } from '../protocol/pair.ts';
import type { FamilyGate } from './host.ts';

export const ROSTER_FILE = 'family.json';
const ROSTER_VERSION = 1;
export const MAX_OUTSTANDING_INVITES = 64;
/**
 * Used and expired invites are kept this long, so a late `hearth join` hears "used"
 * or "expired" rather than "unknown"; pruneInvites() (run by the daemon on its
 * replication timer, and before each new invite) forgets them after that.
 */
export const SPENT_INVITE_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
/** How often a member's "last seen" alone is written to the file. */
const SEEN_WRITE_INTERVAL_MS = 60_000;

export interface FamilyMember {
  /** Unique within the roster: `hearth peers rm NAME` uses it. */
  name: string;
  peerId: string;
  /** Last known addresses, without /p2p suffix. */
  addrs: string[];
  quotaTheyGrantUs: number;
  quotaWeGrantThem: number;
  pairedAt: string;
  /** When it last answered anything (a ping, identify, a protocol reply); not when a connection opened. */
  lastSeen: string | null;
  /**
   * The invite this home redeemed when the member joined it (absent when this home
   * joined the member). Only that code, unexpired, answers a repeated join: a
   * removed member's old code never re-links it.
   */
  inviteId?: string;
  /** It runs a relay for its family (its identify lists the circuit relay hop protocol): an anchor (docs/nat.md). */
  anchor?: boolean;
  /** An anchor that stores nothing (`hearth daemon --relay-only`): never a place for copies. */
  relayOnly?: boolean;
}

/** What a member's identify says it is (daemon.ts reads it from the protocols it lists). */
export interface MemberRoles {
  anchor: boolean;
  relayOnly: boolean;
}

interface RosterState {
  version: number;
  members: FamilyMember[];
  invites: StoredInvite[];
}

export class FamilyRoster implements PairStore, FamilyGate {
  readonly file: string;
  private state: RosterState;
  private readonly now: () => Date;
  private queue: Promise<unknown> = Promise.resolve();
  /** Inviters this home is dialling to join (in memory: a join lasts seconds). */
  private readonly expected = new Map<string, number>();
  /** When each member's "last seen" was last written to the file. */
  private readonly seenWritten = new Map<string, number>();

  private constructor(file: string, state: RosterState, now: () => Date) {
    this.file = file;
    this.state = state;
    this.now = now;
  }

  static async open(home: string, options: { now?: () => Date } = {}): Promise<FamilyRoster> {
    const file = join(home, ROSTER_FILE);
    return new FamilyRoster(file, await load(file), options.now ?? (() => new Date()));
  }

  members(): readonly FamilyMember[] {
    return this.state.members;
  }

  /** A member by PeerId or by name. */
  member(peerIdOrName: string): FamilyMember | undefined {
    return this.state.members.find((m) => m.peerId === peerIdOrName) ?? this.state.members.find((m) => m.name === peerIdOrName);
  }

  /** Members that relay for the family, most recently seen first: where a home behind NAT keeps its reservations. */
  anchors(): FamilyMember[] {
    return this.state.members.filter((m) => m.anchor === true).sort((a, b) => (b.lastSeen ?? '').localeCompare(a.lastSeen ?? ''));
  }

  /** Members that may hold copies: all but relay-only anchors. */
  storageMembers(): FamilyMember[] {
    return this.state.members.filter((m) => m.relayOnly !== true);
  }

  isMember(peerId: string): boolean {
    return this.state.members.some((m) => m.peerId === peerId);
  }

  /** A stranger may connect (and then only pair) while an invite is outstanding or while we are joining it. */
  admitsStranger(peerId: string): boolean {
    return this.expected.has(peerId) || this.hasOutstandingInvite();
  }

  /** Whom the pair handler answers: members (a lost reply's retry) and, while a code is outstanding, anyone. */
  mayPair(peerId: string): boolean {
    return this.isMember(peerId) || this.hasOutstandingInvite();
  }

  hasOutstandingInvite(): boolean {
    const now = this.now().getTime();
    return this.state.invites.some((i) => isOutstanding(i, now));
  }

  invites(): readonly StoredInvite[] {
    return this.state.invites;
  }

  expectInviter(peerId: string): () => void {
    this.expected.set(peerId, (this.expected.get(peerId) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.expected.get(peerId) ?? 1) - 1;
      if (left > 0) this.expected.set(peerId, left);
      else this.expected.delete(peerId);
    };
  }

  async addInvite(invite: StoredInvite): Promise<void> {
    await this.change((draft, now) => {
      draft.invites = unspent(draft.invites, now);
      if (draft.invites.filter((i) => isOutstanding(i, now)).length >= MAX_OUTSTANDING_INVITES) {
        throw new Error(`this home already has ${MAX_OUTSTANDING_INVITES} unused invite codes: wait for some to expire`);
      }
      draft.invites.push(invite);
      return true;
    });
  }

  /** Forget used and expired codes older than SPENT_INVITE_RETENTION_MS; returns how many. */
  async pruneInvites(): Promise<number> {
    const now = this.now().getTime();
    const kept = unspent(this.state.invites, now);
    if (kept.length === this.state.invites.length) return 0;
    return this.change((draft, at) => {
      const before = draft.invites.length;
      draft.invites = unspent(draft.invites, at);
      return before - draft.invites.length;
    });
  }

  redeemInvite(inviteId: string, joiner: PairedPeer): Promise<RedeemOutcome> {
    return this.change((draft, now): RedeemOutcome => {
      const invite = draft.invites.find((i) => i.id === inviteId);
      if (!invite) return { ok: false, reason: 'used' };
      // Expiry first: past it a code links nobody, not even the home that used it.
      if (Date.parse(invite.expiresAt) <= now) return { ok: false, reason: 'expired' };
      if (invite.usedAt !== undefined) {
        // The member that joined with this very code, asking again, is a retry whose
        // reply was lost: answer it again. Anyone else, a removed member included, is refused.
        const member = draft.members.find((m) => m.peerId === joiner.peerId);
        if (invite.usedBy !== joiner.peerId || member?.inviteId !== invite.id) return { ok: false, reason: 'used' };
        return { ok: true, ...upsertMember(draft, joiner, now, invite.id) };
      }
      invite.usedAt = new Date(now).toISOString();
      invite.usedBy = joiner.peerId;
      return { ok: true, ...upsertMember(draft, joiner, now, invite.id) };
    });
  }

  /** Members a recovered home's backup names, added as they were (last seen: unknown) unless already here. */
  restoreMembers(members: ReadonlyArray<Omit<FamilyMember, 'lastSeen'>>): Promise<string[]> {
    return this.change((draft) => {
      const added = members.filter((m) => !draft.members.some((d) => d.peerId === m.peerId));
      for (const m of added) draft.members.push({ ...m, name: uniqueName(draft.members, m.name), lastSeen: null });
      return added.map((m) => m.name);
    });
  }

  recordPeer(peer: PairedPeer): Promise<{ relinked: boolean; name: string }> {
    return this.change((draft, now) => upsertMember(draft, peer, now));
  }

  /**
   * Forget a member (by name or PeerId); returns what was removed. From then on the
   * gater refuses its PeerId (unless a code is outstanding, and then it may only
   * pair, with a new code); the caller closes its open connections.
   */
  removeMember(peerIdOrName: string): Promise<FamilyMember> {
    return this.change((draft) => {
      const target = this.member(peerIdOrName);
      if (!target) throw new Error(`no family member is called ${peerIdOrName}: see \`hearth peers\``);
      draft.members = draft.members.filter((m) => m.peerId !== target.peerId);
      return target;
    });
  }

  /**
   * Note that a member just answered (a ping, identify, a protocol reply), and
   * where it listens. The roster in memory has it at once; the file is rewritten
   * (and fsynced) at most once a minute per member while its addresses stay the
   * same, since replication asks every few minutes: a crash loses at most that
   * minute of "last seen".
   */
  markSeen(peerId: string, addrs?: string[], roles?: MemberRoles): Promise<void> {
    const known = this.state.members.find((m) => m.peerId === peerId);
    if (!known) return Promise.resolve();
    const now = this.now().getTime();
    const sameAddrs = !addrs?.length || addrs.join(' ') === known.addrs.join(' ');
    const sameRoles = roles === undefined || (roles.anchor === (known.anchor === true) && roles.relayOnly === (known.relayOnly === true));
    const written = this.seenWritten.get(peerId) ?? -Infinity;
    if (sameAddrs && sameRoles && now - written < SEEN_WRITE_INTERVAL_MS) {
      known.lastSeen = new Date(now).toISOString();
      return Promise.resolve();
    }
    this.seenWritten.set(peerId, now);
    return this.change((draft, at) => {
      const member = draft.members.find((m) => m.peerId === peerId);
      if (!member) return undefined;
      member.lastSeen = new Date(at).toISOString();
      if (addrs && addrs.length > 0) member.addrs = addrs;
      if (roles) {
        // Absent rather than false, so a roster without anchors reads as before.
        for (const role of ['anchor', 'relayOnly'] as const) {
          if (roles[role]) member[role] = true;
          else delete member[role];
        }
      }
      return undefined;
    });
  }

  /**
   * Run one change on a copy of the roster and, unless it returns an outcome that
   * refuses (`ok: false`), write the copy and make it current.
   */
  private change<T>(apply: (draft: RosterState, now: number) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const draft = structuredClone(this.state);
      const result = apply(draft, this.now().getTime());
      if ((result as { ok?: unknown } | undefined)?.ok === false) return result;
      await save(this.file, draft);
      this.state = draft;
      return result;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

function isOutstanding(invite: StoredInvite, now: number): boolean {
  return invite.usedAt === undefined && Date.parse(invite.expiresAt) > now;
}

/** The invites worth keeping at `now`: outstanding ones, and spent ones within the retention. */
function unspent(invites: readonly StoredInvite[], now: number): StoredInvite[] {
  return invites.filter((i) => isOutstanding(i, now) || spentAt(i) > now - SPENT_INVITE_RETENTION_MS);
}

function spentAt(invite: StoredInvite): number {
  return invite.usedAt !== undefined ? Date.parse(invite.usedAt) : Date.parse(invite.expiresAt);
}

/** Add a paired home, or update it in place when its PeerId is already a member (a recovered home). */
function upsertMember(draft: RosterState, peer: PairedPeer, now: number, inviteId?: string): { relinked: boolean; name: string } {
  const at = new Date(now).toISOString();
  const existing = draft.members.find((m) => m.peerId === peer.peerId);
  if (existing) {
    if (inviteId !== undefined) existing.inviteId = inviteId;
    // The family already knows this home by its name; a re-link keeps it.
    if (peer.addrs.length > 0) existing.addrs = peer.addrs;
    existing.quotaTheyGrantUs = peer.quotaTheyGrantUs;
    existing.quotaWeGrantThem = peer.quotaWeGrantThem;
    existing.lastSeen = at;
    return { relinked: true, name: existing.name };
  }
  const name = uniqueName(draft.members, peer.name);
  draft.members.push({
    name,
    peerId: peer.peerId,
    addrs: peer.addrs,
    quotaTheyGrantUs: peer.quotaTheyGrantUs,
    quotaWeGrantThem: peer.quotaWeGrantThem,
    pairedAt: at,
    lastSeen: at,
    ...(inviteId !== undefined ? { inviteId } : {}),
  });
  return { relinked: false, name };
}

function uniqueName(members: readonly FamilyMember[], wanted: string): string {
  const taken = new Set(members.map((m) => m.name));
  if (!taken.has(wanted)) return wanted;
  for (let n = 2; n <= members.length + 1; n++) {
    if (!taken.has(`${wanted}-${n}`)) return `${wanted}-${n}`;
  }
  return `${wanted}-${members.length + 2}`;
}

async function load(file: string): Promise<RosterState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: ROSTER_VERSION, members: [], invites: [] };
    throw err;
  }
  let state: RosterState;
  try {
    state = JSON.parse(text) as RosterState;
  } catch {
    throw new Error(`family roster ${file} is damaged (not JSON): restore it from a backup or re-pair with \`hearth join\``);
  }
  if (state.version !== ROSTER_VERSION || !Array.isArray(state.members) || !Array.isArray(state.invites)) {
    throw new Error(`family roster ${file} has an unknown layout (version ${String(state.version)}): update Hearth`);
  }
  return state;
}

async function save(file: string, state: RosterState): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  // The rename is durable only once the directory entry is.
  const dir = await open(join(file, '..'), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
