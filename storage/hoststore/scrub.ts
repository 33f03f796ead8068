// The host's scrub: re-read every object relatives keep here, hash it into its
// Merkle root, and compare with the root its put verified (kept-hash.ts). What differs is damage on this
// disk; it is recorded per owner in <home>/hosted/<owner>/scrub.json, which the
// owner reads back through /hearth/status/1 and repairs by putting the object
// again. On a disk that takes no writes (full, or read-only) it still reads and
// reports everything, and says what it could not record. Format and reasoning:
// docs/scrub-and-drift.md.
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MERKLE_LEAF_SIZE, MerkleBuilder } from '../merkle.ts';
import type { HostStore } from './host-store.ts';
import { keepHash, readKeptHash, writeFileAtomic, type KeptHash } from './kept-hash.ts';

const READ_CHUNK = 1024 * 1024;
const STATE_VERSION = 1;

export type DamageReason = 'corrupted' | 'truncated' | 'grown' | 'unreadable';

export interface DamagedObject {
  id: string;
  reason: DamageReason;
  /** One line for a person: what was found. */
  detail: string;
  /** ms since the epoch. */
  detectedAt: number;
  /**
   * Inode of the damaged file when found. A successful re-put publishes the object
   * by renaming a new file into place, so a different inode means the entry is stale.
   */
  ino: number;
}

export interface ScrubTotals {
  /** Objects read (pending deletions are skipped: their owner has let them go). */
  objects: number;
  bytes: number;
  /** Objects stored before hashes were kept: hashed now and kept, not judged. */
  adopted: number;
}

export interface OwnerScrub extends ScrubTotals {
  owner: string;
  damaged: DamagedObject[];
}

export interface ScrubReport extends ScrubTotals {
  startedAt: number;
  finishedAt: number;
  owners: OwnerScrub[];
  /**
   * Set when the disk refused a write (full, over quota, read-only): the scrub
   * ran read-only, and what it found is in this report but not recorded for the
   * owners (or, for adopted objects, their roots not kept). The first such error.
   */
  unsaved?: string;
}

export interface ScrubProgress extends ScrubTotals {
  owner: string;
  /** Damaged objects found so far in this scrub, all owners. */
  damaged: number;
  /** Bytes of all objects to read, counted before reading starts. */
  totalBytes: number;
}

/** Time for the scrub: injectable so tests check throttling without waiting. */
export interface ScrubClock {
  /** ms since the epoch. */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface ScrubOptions {
  /** Called after every object and every READ_CHUNK of a large one; the caller throttles its display. */
  onProgress?: (progress: ScrubProgress) => void;
  /** Aborting persists what was found so far and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Most bytes per second to read, so a NAS disk stays usable; default unlimited. */
  rateLimit?: number;
  clock?: ScrubClock;
}

/** What scrub.json holds for one owner. */
export interface OwnerScrubState {
  version: number;
  /** The last scrub that read every object of the owner. */
  lastComplete?: { startedAt: number; finishedAt: number } & ScrubTotals;
  damaged: DamagedObject[];
}

const SYSTEM_CLOCK: ScrubClock = {
  now: Date.now,
  sleep: (ms, signal) => sleep(ms, undefined, { signal }),
};

/**
 * Scrub every owner's objects, one at a time, reading each once in 1 MiB chunks
 * (memory stays flat in object size and count, apart from the damage lists).
 */
export async function scrubHostStore(store: HostStore, options: ScrubOptions = {}): Promise<ScrubReport> {
  const clock = options.clock ?? SYSTEM_CLOCK;
  const startedAt = clock.now();
  const owners = await store.owners();
  let totalBytes = 0;
  for (const owner of owners) {
    for await (const object of store.list(owner)) if (object.deleteAt === undefined) totalBytes += object.size;
  }
  const report: ScrubReport = { startedAt, finishedAt: startedAt, objects: 0, bytes: 0, adopted: 0, owners: [] };
  const reader = new ThrottledReader(clock, options.rateLimit, options.signal);
  let damagedSoFar = 0;
  const progress = (owner: string, extraBytes = 0) =>
    options.onProgress?.({ owner, objects: report.objects, bytes: report.bytes + extraBytes, adopted: report.adopted, damaged: damagedSoFar, totalBytes });

  for (const owner of owners) {
    const result: OwnerScrub = { owner, objects: 0, bytes: 0, adopted: 0, damaged: [] };
    const ownerStartedAt = clock.now();
    let checkedThrough: string | undefined;
    try {
      for await (const object of store.list(owner)) {
        options.signal?.throwIfAborted();
        if (object.deleteAt !== undefined) continue;
        const outcome = await checkObject(store, owner, object.name, reader, (bytes) => progress(owner, bytes), report);
        checkedThrough = object.name;
        if (outcome.kind === 'gone') continue;
        result.objects++;
        result.bytes += outcome.bytes;
        report.objects++;
        report.bytes += outcome.bytes;
        if (outcome.kind === 'adopted') {
          result.adopted++;
          report.adopted++;
        } else if (outcome.kind === 'damaged') {
          result.damaged.push({ ...outcome.damage, detectedAt: clock.now() });
          damagedSoFar++;
        }
        progress(owner);
      }
    } catch (err) {
      // Keep what this pass found; entries past the last object checked are not re-judged yet.
      await unlessReadOnly(report, () => saveInterrupted(store, owner, result.damaged, checkedThrough));
      throw err;
    }
    const { damaged, ...totals } = result;
    await unlessReadOnly(report, () => saveState(store, owner, { version: STATE_VERSION, lastComplete: { startedAt: ownerStartedAt, finishedAt: clock.now(), ...totals }, damaged }));
    report.owners.push(result);
  }
  report.finishedAt = clock.now();
  return report;
}

/**
 * The owner's objects that the last scrub found damaged and that have not been
 * put again since (the ids the owner should repair).
 */
export async function damagedFor(store: HostStore, owner: string): Promise<string[]> {
  return (await scrubStateFor(store, owner)).damaged.map((d) => d.id);
}

/** The owner's scrub record, damage already put again or purged left out. */
export async function scrubStateFor(store: HostStore, owner: string): Promise<OwnerScrubState> {
  const state = await loadState(store, owner);
  const live: DamagedObject[] = [];
  for (const entry of state.damaged) {
    const info = await statIfExists(store.objectFile(owner, entry.id));
    if (info?.ino === entry.ino) live.push(entry);
  }
  return { ...state, damaged: live };
}

export function scrubStatePath(store: HostStore, owner: string): string {
  return join(store.root, owner, 'scrub.json');
}

type Outcome =
  | { kind: 'ok' | 'adopted'; bytes: number }
  | { kind: 'damaged'; bytes: number; damage: Omit<DamagedObject, 'detectedAt'> }
  | { kind: 'gone' };

async function checkObject(store: HostStore, owner: string, id: string, reader: ThrottledReader, onBytes: (bytes: number) => void, report: ScrubReport): Promise<Outcome> {
  const path = store.objectFile(owner, id);
  const kept = await readKeptHash(store.root, owner, id);
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (isNotFound(err)) return { kind: 'gone' };
    throw err;
  }
  let ino: number;
  let read: HashedBytes;
  try {
    ino = (await handle.stat()).ino;
    // An object with no kept root is adopted with the leaf size every owner uses.
    read = await reader.hash(handle, kept?.leafSize ?? MERKLE_LEAF_SIZE, onBytes);
  } finally {
    await handle.close();
  }
  // A put that publishes this id meanwhile renames a new file into place and
  // rewrites the kept hash: judge only bytes that are still the stored object.
  const replaced = async (): Promise<boolean> =>
    (await statIfExists(path))?.ino !== ino || !sameHash(kept, await readKeptHash(store.root, owner, id));

  if ('error' in read) {
    if (await replaced()) return { kind: 'gone' };
    return { kind: 'damaged', bytes: read.bytes, damage: { id, ino, reason: 'unreadable', detail: `read failed after ${read.bytes} bytes: ${read.error.code ?? read.error.message}` } };
  }
  if (kept === undefined) {
    if (await replaced()) return { kind: 'gone' };
    await unlessReadOnly(report, () => keepHash(store.root, owner, id, { merkleRoot: read.merkleRoot, leafSize: read.leafSize, size: read.bytes }, 'ifAbsent'));
    return { kind: 'adopted', bytes: read.bytes };
  }
  if (read.merkleRoot === kept.merkleRoot && read.bytes === kept.size) return { kind: 'ok', bytes: read.bytes };
  if (await replaced()) return { kind: 'gone' };
  return { kind: 'damaged', bytes: read.bytes, damage: { id, ino, ...describeDamage(kept, read) } };
}

function describeDamage(kept: KeptHash, read: { merkleRoot: string; bytes: number }): { reason: DamageReason; detail: string } {
  if (read.bytes < kept.size) return { reason: 'truncated', detail: `${read.bytes} of its ${kept.size} bytes are left` };
  if (read.bytes > kept.size) return { reason: 'grown', detail: `${read.bytes} bytes where ${kept.size} were stored` };
  return { reason: 'corrupted', detail: `its bytes have Merkle root ${read.merkleRoot} but ${kept.merkleRoot} was stored` };
}

type HashedBytes = { merkleRoot: string; leafSize: number; bytes: number } | { error: NodeJS.ErrnoException; bytes: number };

/** Reads files in chunks into one reused buffer, never faster than the rate limit. */
class ThrottledReader {
  readonly #clock: ScrubClock;
  readonly #rate: number | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #buffer = Buffer.allocUnsafe(READ_CHUNK);
  #start: number | undefined;
  #total = 0;

  constructor(clock: ScrubClock, rate: number | undefined, signal: AbortSignal | undefined) {
    if (rate !== undefined && !(rate > 0)) throw new Error(`scrub rate limit must be a positive number of bytes per second, got ${rate}`);
    this.#clock = clock;
    this.#rate = rate;
    this.#signal = signal;
  }

  /** The file's Merkle root, read to its end; a read error is returned, not thrown (the disk is what is being checked). */
  async hash(handle: FileHandle, leafSize: number, onBytes: (bytes: number) => void): Promise<HashedBytes> {
    const tree = new MerkleBuilder(leafSize);
    let bytes = 0;
    for (;;) {
      this.#signal?.throwIfAborted();
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(this.#buffer, 0, READ_CHUNK, bytes));
      } catch (err) {
        return { error: err as NodeJS.ErrnoException, bytes };
      }
      if (bytesRead === 0) return { merkleRoot: tree.digest(), leafSize, bytes };
      tree.update(this.#buffer.subarray(0, bytesRead));
      bytes += bytesRead;
      onBytes(bytes);
      await this.#throttle(bytesRead);
    }
  }

  // Paces the whole scrub, not each object: sleep until the bytes read so far fit the rate.
  async #throttle(bytesRead: number): Promise<void> {
    if (this.#rate === undefined) return;
    this.#start ??= this.#clock.now();
    this.#total += bytesRead;
    const due = this.#start + (this.#total / this.#rate) * 1000;
    const wait = due - this.#clock.now();
    if (wait > 0) await this.#clock.sleep(wait, this.#signal);
  }
}

async function loadState(store: HostStore, owner: string): Promise<OwnerScrubState> {
  let text: string;
  try {
    text = await readFile(scrubStatePath(store, owner), 'utf8');
  } catch (err) {
    if (isNotFound(err)) return { version: STATE_VERSION, damaged: [] };
    throw err;
  }
  // Written whole by rename, so only a foreign or newer file fails here. The status
  // answer must not fail with it: treat it as no known damage until the next scrub rewrites it.
  try {
    const state = JSON.parse(text) as OwnerScrubState;
    if (state.version === STATE_VERSION && Array.isArray(state.damaged)) return state;
  } catch {
    // fall through
  }
  return { version: STATE_VERSION, damaged: [] };
}

async function saveState(store: HostStore, owner: string, state: OwnerScrubState): Promise<void> {
  await writeFileAtomic(scrubStatePath(store, owner), `${JSON.stringify(state, null, 1)}\n`, { sync: true });
}

/** Objects are listed in id order, so entries past `checkedThrough` were not looked at in this pass. */
async function saveInterrupted(store: HostStore, owner: string, found: DamagedObject[], checkedThrough: string | undefined): Promise<void> {
  const previous = await loadState(store, owner);
  const unchecked = previous.damaged.filter((d) => checkedThrough === undefined || d.id > checkedThrough);
  if (found.length === 0 && unchecked.length === previous.damaged.length) return;
  await saveState(store, owner, { ...previous, damaged: [...found, ...unchecked].sort((a, b) => (a.id < b.id ? -1 : 1)) });
}

/** Run a write; one the disk refuses (full, over quota, read-only) turns the scrub read-only instead of failing it. */
async function unlessReadOnly(report: ScrubReport, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT' && code !== 'EROFS') throw err;
    report.unsaved ??= `${(err as Error).message}; scrubbed read-only, results not recorded for the owners`;
  }
}

function sameHash(a: KeptHash | undefined, b: KeptHash | undefined): boolean {
  return a?.merkleRoot === b?.merkleRoot && a?.leafSize === b?.leafSize && a?.size === b?.size;
}

async function statIfExists(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}
