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
/** Used and expired invites are kept this long, so a late `hearth join` hears "used" or "expired" rather than "unknown". */
const SPENT_INVITE_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

export interface FamilyMember {
  /** Unique within the roster: `hearth peers rm NAME` uses it. */
  name: string;
  peerId: string;
  /** Last known addresses, without /p2p suffix. */
  addrs: string[];
  quotaTheyGrantUs: number;
  quotaWeGrantThem: number;
  pairedAt: string;
  lastSeen: string | null;
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

  isMember(peerId: string): boolean {
    return this.state.members.some((m) => m.peerId === peerId);
  }

  /** A stranger may connect (and then only pair) while an invite is outstanding or while we are joining it. */
  admitsStranger(peerId: string): boolean {
    return this.expected.has(peerId) || this.hasOutstandingInvite();
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
      draft.invites = draft.invites.filter((i) => isOutstanding(i, now) || spentAt(i) > now - SPENT_INVITE_RETENTION_MS);
      if (draft.invites.filter((i) => isOutstanding(i, now)).length >= MAX_OUTSTANDING_INVITES) {
        throw new Error(`this home already has ${MAX_OUTSTANDING_INVITES} unused invite codes: wait for some to expire`);
      }
      draft.invites.push(invite);
      return true;
    });
  }

  redeemInvite(inviteId: string, joiner: PairedPeer): Promise<RedeemOutcome> {
    return this.change((draft, now): RedeemOutcome => {
      const invite = draft.invites.find((i) => i.id === inviteId);
      // The same joiner again is a retry whose reply was lost: answer it again.
      if (invite?.usedBy === joiner.peerId) return { ok: true, ...upsertMember(draft, joiner, now) };
      if (!invite || invite.usedAt !== undefined) return { ok: false, reason: 'used' };
      if (Date.parse(invite.expiresAt) <= now) return { ok: false, reason: 'expired' };
      invite.usedAt = new Date(now).toISOString();
      invite.usedBy = joiner.peerId;
      return { ok: true, ...upsertMember(draft, joiner, now) };
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

  /** Forget a member (by name or PeerId); returns what was removed. */
  removeMember(peerIdOrName: string): Promise<FamilyMember> {
    return this.change((draft) => {
      const target = this.member(peerIdOrName);
      if (!target) throw new Error(`no family member is called ${peerIdOrName}: see \`hearth peers\``);
      draft.members = draft.members.filter((m) => m.peerId !== target.peerId);
      return target;
    });
  }

  /** Note that a member was just connected, and where it was seen. */
  markSeen(peerId: string, addrs?: string[]): Promise<void> {
    return this.change((draft, now) => {
      const member = draft.members.find((m) => m.peerId === peerId);
      if (!member) return undefined;
      member.lastSeen = new Date(now).toISOString();
      if (addrs && addrs.length > 0) member.addrs = addrs;
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

function spentAt(invite: StoredInvite): number {
  return invite.usedAt !== undefined ? Date.parse(invite.usedAt) : Date.parse(invite.expiresAt);
}

/** Add a paired home, or update it in place when its PeerId is already a member (a recovered home). */
function upsertMember(draft: RosterState, peer: PairedPeer, now: number): { relinked: boolean; name: string } {
  const at = new Date(now).toISOString();
  const existing = draft.members.find((m) => m.peerId === peer.peerId);
  if (existing) {
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
