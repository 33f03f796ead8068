// The copy this home keeps of each relative's catalog log, so an owner that loses
// its home can pull its log back (DESIGN.md, "Catalog"). The records stay sealed:
// a host holds no catalog key and checks only what the owner's PeerId lets it
// check: the owner's signature and the hash chain. Every accepted push extends the
// held log; nothing here ever shortens or rewrites it.
//
// LevelDB under <home>/hosted-catalogs, string keys:
//   h!<owner PeerId>                 {"seq","hash","bytes"} (JSON): the held head and total record bytes
//   r!<owner PeerId>!<seq, 14 hex>   envelope bytes, exactly as the owner signed them
// 14 zero-padded hex digits hold any safe integer, so keys sort in seq order.
// An append writes its records and the new head in one batch: a crash leaves the
// log either before or after the whole push.
//
// A copy is bounded by what the caller allows (HostCatalogAppendOptions.maxBytes:
// the daemon passes the quota it grants the owner less the owner's objects here):
// a push that would take the held bytes past it is refused whole.
import { join } from 'node:path';
import { Level } from 'level';
import { peerIdFromString } from '@libp2p/peer-id';
import {
  CatalogChainError, ZERO_HASH, decodeEnvelope, envelopeHash, envelopeSignatureValid, verifyEnvelopeAppend,
  type ChainHead, type Envelope,
} from '../catalog/envelope.ts';

export const HOSTED_CATALOGS_DIR = 'hosted-catalogs';

export function hostedCatalogsPath(home: string): string {
  return join(home, HOSTED_CATALOGS_DIR);
}

export interface HostCatalogAppendOptions {
  /**
   * The held record the pushed ones follow (the host head the owner was told).
   * With it, a push that would leave the owner's log shorter than the held copy is
   * refused as a rollback, even when every record it carries is already held.
   */
  from?: ChainHead;
  /** Most envelope bytes the owner's held log may reach; a push past it throws CatalogQuotaError. */
  maxBytes?: number;
}

/** A push that would take an owner's catalog copy past what the host allows it. */
export class CatalogQuotaError extends Error {
  /** Bytes held before the push, and what the push would have made them. */
  readonly held: number;
  readonly wanted: number;
  readonly maxBytes: number;
  constructor(owner: string, held: number, wanted: number, maxBytes: number) {
    super(`this catalog push would make the copy of ${owner}'s catalog ${wanted} bytes, over the ${Math.max(0, maxBytes)} bytes its quota leaves it here (${held} held): ask the host for more quota or free space first`);
    this.name = 'CatalogQuotaError';
    this.held = held;
    this.wanted = wanted;
    this.maxBytes = maxBytes;
  }
}

export interface HostCatalogAppendResult {
  head: ChainHead;
  /** Records stored by this call; records already held are not counted. */
  added: number;
}

interface OwnerLog {
  head: ChainHead;
  bytes: number;
  publicKey: Uint8Array;
}

export class HostCatalogStore {
  private readonly db: Level<string, Buffer>;
  private readonly owners = new Map<string, OwnerLog>();
  /** Appends to one owner's log run one at a time; reads need no turn (LevelDB snapshots). */
  private readonly queues = new Map<string, Promise<unknown>>();

  private constructor(db: Level<string, Buffer>) {
    this.db = db;
  }

  /** Open (creating) the store in `dir`, usually hostedCatalogsPath(home). */
  static async open(dir: string): Promise<HostCatalogStore> {
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
      throw new Error(locked
        ? `hosted catalogs at ${dir} are in use by another Hearth process: stop it first`
        : `cannot open the hosted catalogs at ${dir}: ${(err as Error).message}`, { cause: err });
    }
    return new HostCatalogStore(db);
  }

  async close(): Promise<void> {
    await Promise.all(this.queues.values());
    await this.db.close();
  }

  /** The last record held for `owner`; seq 0 and ZERO_HASH when none. */
  async head(owner: string): Promise<ChainHead> {
    return { ...(await this.log(owner)).head };
  }

  /** Bytes of `owner`'s records held here. */
  async bytes(owner: string): Promise<number> {
    return (await this.log(owner)).bytes;
  }

  /**
   * Verify and store records of `owner`'s log, in order, all or nothing. A record
   * already held is accepted unchanged when byte-identical. Throws
   * CatalogChainError: 'malformed'; 'signature' (not signed by the owner's key);
   * 'gap'; 'fork' (differs from the held record of the same seq, or follows a
   * record other than the held one); 'replay' (a record repeated out of order, or,
   * with options.from, a push that would roll the held log back). Throws
   * CatalogQuotaError when the new records would take the held bytes past
   * options.maxBytes (records already held cost nothing).
   */
  append(owner: string, envelopes: readonly Uint8Array[], options: HostCatalogAppendOptions = {}): Promise<HostCatalogAppendResult> {
    return this.exclusive(owner, async () => {
      const log = await this.log(owner);
      const held = log.head;
      const decoded = envelopes.map((bytes) => decodeEnvelope(bytes));
      let chain = options.from ? await this.checkFrom(owner, log, options.from, envelopes.length) : await this.startOf(owner, log, decoded[0]?.seq);
      const heldSeqs = decoded.filter((envelope) => envelope.seq <= held.seq).map((envelope) => envelope.seq);
      const heldRecords = await this.db.getMany(heldSeqs.map((seq) => recordKey(owner, seq)));
      const heldBytes = new Map(heldSeqs.map((seq, i) => [seq, heldRecords[i]]));
      const ops: Array<{ type: 'put'; key: string; value: Buffer }> = [];
      let bytes = log.bytes;
      for (const [i, envelope] of decoded.entries()) {
        const envelopeBytes = envelopes[i]!;
        if (envelope.seq <= held.seq) {
          chain = checkHeld(owner, log.publicKey, chain, envelope, envelopeBytes, heldBytes.get(envelope.seq));
          continue;
        }
        chain = verifyEnvelopeAppend(log.publicKey, chain, envelopeBytes);
        ops.push({ type: 'put', key: recordKey(owner, chain.seq), value: Buffer.from(envelopeBytes) });
        bytes += envelopeBytes.byteLength;
      }
      if (ops.length === 0) return { head: { ...held }, added: 0 };
      if (options.maxBytes !== undefined && bytes > options.maxBytes) throw new CatalogQuotaError(owner, log.bytes, bytes, options.maxBytes);
      await this.db.batch([...ops, { type: 'put', key: headKey(owner), value: encodeOwnerHead(chain, bytes) }], { sync: true });
      this.owners.set(owner, { head: chain, bytes, publicKey: log.publicKey });
      return { head: { ...chain }, added: ops.length };
    });
  }

  /**
   * `owner`'s records from `fromSeq` to `toSeq` (default: the head when called),
   * read from a LevelDB iterator one at a time, so memory does not grow with the log.
   */
  async *read(owner: string, fromSeq = 1, toSeq?: number): AsyncIterable<Buffer> {
    const { head } = await this.log(owner);
    const last = Math.min(toSeq ?? head.seq, head.seq);
    const first = Math.max(1, fromSeq);
    if (first > last) return;
    yield* this.db.values({ gte: recordKey(owner, first), lte: recordKey(owner, last) });
  }

  private exclusive<T>(owner: string, work: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(owner) ?? Promise.resolve()).then(work);
    const settled = run.catch(() => undefined);
    this.queues.set(owner, settled);
    // The family is small, but a finished queue need not stay in the map.
    void settled.then(() => {
      if (this.queues.get(owner) === settled) this.queues.delete(owner);
    });
    return run;
  }

  private async log(owner: string): Promise<OwnerLog> {
    const cached = this.owners.get(owner);
    if (cached) return cached;
    const publicKey = ownerPublicKey(owner);
    const stored = await this.db.get(headKey(owner));
    const log = stored ? { ...decodeOwnerHead(stored), publicKey } : { head: { seq: 0, hash: ZERO_HASH }, bytes: 0, publicKey };
    // An append may have finished while this read was waiting; its state is newer.
    const raced = this.owners.get(owner);
    if (raced) return raced;
    this.owners.set(owner, log);
    return log;
  }

  /** Hash of the held record `seq` (ZERO_HASH for 0); the head's without a read. */
  private async heldHash(owner: string, log: OwnerLog, seq: number): Promise<string> {
    if (seq === 0) return ZERO_HASH;
    if (seq === log.head.seq) return log.head.hash;
    const bytes = await this.db.get(recordKey(owner, seq));
    if (!bytes) throw new Error(`the hosted catalog of ${owner} is damaged: record ${seq} of ${log.head.seq} is missing`);
    return envelopeHash(bytes);
  }

  private async checkFrom(owner: string, log: OwnerLog, from: ChainHead, count: number): Promise<ChainHead> {
    const held = log.head;
    if (from.seq > held.seq) {
      throw new CatalogChainError('gap', from.seq + 1, `the push follows record ${from.seq}, but this host holds ${owner}'s catalog only up to record ${held.seq}: ask for the host's head and push from there`);
    }
    if ((await this.heldHash(owner, log, from.seq)) !== from.hash) {
      throw new CatalogChainError('fork', from.seq, `the push follows a record ${from.seq} other than the one this host holds for ${owner}: the owner's log forked; refuse it`);
    }
    if (from.seq + count < held.seq) {
      throw new CatalogChainError('replay', from.seq + count, `the push would leave ${owner}'s catalog at record ${from.seq + count}, but this host already holds records up to ${held.seq}: a host never rolls a log back; recover the missing records from it instead`);
    }
    return from;
  }

  /** Without a stated `from`, the pushed records follow the held record before the first of them. */
  private async startOf(owner: string, log: OwnerLog, firstSeq: number | undefined): Promise<ChainHead> {
    if (firstSeq === undefined || firstSeq > log.head.seq) return log.head;
    const before = firstSeq - 1;
    return { seq: before, hash: await this.heldHash(owner, log, before) };
  }
}

/**
 * A pushed record at a position already held must be that very record (else the
 * owner's log forked), and come where the push's chain has reached.
 */
function checkHeld(owner: string, publicKey: Uint8Array, chain: ChainHead, envelope: Envelope, bytes: Uint8Array, held: Buffer | undefined): ChainHead {
  const { seq } = envelope;
  if (!envelopeSignatureValid(publicKey, envelope)) {
    throw new CatalogChainError('signature', seq, `catalog record ${seq} has a bad signature: it was not signed by ${owner}'s key; refuse it`);
  }
  if (!held) throw new Error(`the hosted catalog of ${owner} is damaged: record ${seq} is missing`);
  if (!held.equals(bytes)) {
    throw new CatalogChainError('fork', seq, `catalog record ${seq} differs from the record ${seq} this host already holds for ${owner}: the owner's log forked; refuse it`);
  }
  if (seq <= chain.seq) {
    throw new CatalogChainError('replay', seq, `catalog record ${seq} is a replay: the push had already reached record ${chain.seq}; refuse it`);
  }
  if (seq > chain.seq + 1) {
    throw new CatalogChainError('gap', seq, `catalog record ${seq} leaves a gap: record ${chain.seq + 1} must come first`);
  }
  return { seq, hash: envelopeHash(held) };
}

/** The owner's raw Ed25519 public key, which its PeerId embeds. */
function ownerPublicKey(owner: string): Uint8Array {
  let publicKey;
  try {
    publicKey = peerIdFromString(owner).publicKey;
  } catch {
    throw new Error(`'${owner.slice(0, 80)}' is not a PeerId: hosted catalogs are kept per owner PeerId`);
  }
  if (publicKey?.type !== 'Ed25519') throw new Error(`${owner} is not an Ed25519 PeerId: Hearth owners sign their catalogs with Ed25519`);
  return publicKey.raw;
}

function seqRange(first: number, last: number): number[] {
  const out: number[] = [];
  for (let seq = first; seq <= last; seq++) out.push(seq);
  return out;
}

function headKey(owner: string): string {
  return `h!${owner}`;
}

function recordKey(owner: string, seq: number): string {
  return `r!${owner}!${seq.toString(16).padStart(14, '0')}`;
}

function encodeOwnerHead(head: ChainHead, bytes: number): Buffer {
  return Buffer.from(JSON.stringify({ seq: head.seq, hash: head.hash, bytes }), 'utf8');
}

function decodeOwnerHead(value: Buffer): { head: ChainHead; bytes: number } {
  const { seq, hash, bytes } = JSON.parse(value.toString('utf8')) as { seq: number; hash: string; bytes: number };
  return { head: { seq, hash }, bytes };
}
