// Recorded times against the log's order. The log's order decides what is newest;
// a record's time only says which records `--at T` includes: every record up to the
// last one (in log order) dated at or before T. So a record dated in the future (its
// clock ran ahead) never outlives a later one, and `--at` moves forward through the
// log as T grows. The `t` index keeps exactly the records that can be that last
// one: a record hides every earlier one dated at or after it (docs/catalog-format.md).
//
// The same pass notes when the clock went back: a record dated well before the one
// before it means that earlier one was dated in the future. `hearth status` flags it.
import type { BatchOp, CatalogDb } from './indexer.ts';
import { SPACE, readU64, timeOfTimelineKey, timelineKey, writeU64 } from './layout.ts';

/** A record's times: `time` the earliest of its entries', `clock` the latest reading of the clock among them. */
export interface RecordTime {
  seq: number;
  time?: number;
  clock?: number;
}

/**
 * Kinds whose time is the clock when the entry was written. A file version or
 * deletion carries its run's start time instead, so a long run is no clock jump.
 */
const CLOCK_KINDS = new Set(['run', 'object', 'place', 'unplace', 'retire']);

/** A record dated more than this before the previous one counts as the clock going back. */
export const CLOCK_TOLERANCE_MS = 60_000;

export interface DatedRecord {
  seq: number;
  time: number;
}

export interface ClockStats {
  /** The latest-dated record. */
  newest?: DatedRecord;
  /** The last record with a clock reading. */
  last?: DatedRecord;
  /** Records dated more than CLOCK_TOLERANCE_MS before the one before them. */
  stepsBack: number;
  /** The last such step: the record dated ahead, and the one after it that showed it. */
  lastStepBack?: { ahead: DatedRecord; next: DatedRecord };
}

export interface ClockFlag extends DatedRecord {
  /** 'after-next': dated after a record that follows it; 'after-now': dated after the present. */
  reason: 'after-next' | 'after-now';
  next?: DatedRecord;
}

export function recordTimes(inputs: ReadonlyArray<{ seq: number; payload: { k: string } }>): RecordTime[] {
  const out: RecordTime[] = [];
  for (const { seq, payload } of inputs) {
    if (out.at(-1)?.seq !== seq) out.push({ seq });
    const record = out.at(-1)!;
    const time = (payload as { time?: unknown }).time;
    if (typeof time !== 'number' || !Number.isFinite(time) || time < 0) continue;
    record.time = Math.min(record.time ?? Infinity, time);
    if (CLOCK_KINDS.has(payload.k)) record.clock = Math.max(record.clock ?? -Infinity, time);
  }
  return out;
}

/** The `t` entries a batch of records dated from `from` on can hide, oldest first. */
export async function loadTimelineTail(db: CatalogDb, from: number): Promise<DatedRecord[]> {
  const out: DatedRecord[] = [];
  const end = Buffer.of(SPACE.timeline + 1);
  for await (const [key, value] of db.iterator({ gte: timelineKey(Math.floor(from)), lt: end })) {
    out.push({ time: timeOfTimelineKey(key), seq: readU64(value, 0) });
  }
  return out;
}

/**
 * Add records (in log order) to the timeline whose tail (every entry dated at or
 * after their earliest time) is `tail`, which this updates in place.
 */
export function extendTimeline(tail: DatedRecord[], records: readonly RecordTime[], write: (op: BatchOp) => void): void {
  for (const { seq, time } of records) {
    if (time === undefined) continue;
    const at = Math.floor(time);
    while (tail.length > 0 && tail.at(-1)!.time >= at) write({ type: 'del', key: timelineKey(tail.pop()!.time) });
    const value = Buffer.allocUnsafe(8);
    writeU64(value, 0, seq);
    write({ type: 'put', key: timelineKey(at), value });
    tail.push({ time: at, seq });
  }
}

/** The last record dated at or before `at`, 0 when there is none. */
export async function lastRecordAt(db: CatalogDb, at: number): Promise<number> {
  if (!(at >= 0)) return 0;
  const bound = timelineKey(Math.min(Math.floor(at), Number.MAX_SAFE_INTEGER));
  const found = await db.values({ gte: Buffer.of(SPACE.timeline), lte: bound, reverse: true, limit: 1 }).all();
  return found[0] ? readU64(found[0], 0) : 0;
}

export function noteClock(clock: ClockStats, records: readonly RecordTime[]): void {
  for (const { seq, clock: time } of records) {
    if (time === undefined) continue;
    const dated = { seq, time };
    if (clock.last && time < clock.last.time - CLOCK_TOLERANCE_MS) {
      clock.stepsBack++;
      clock.lastStepBack = { ahead: clock.last, next: dated };
    }
    clock.last = dated;
    if (!clock.newest || time >= clock.newest.time) clock.newest = dated;
  }
}

/** Records dated in the future: after a record that follows them, or after `now`. */
export function clockFlags(clock: ClockStats, now: number): ClockFlag[] {
  const out: ClockFlag[] = [];
  if (clock.lastStepBack) out.push({ ...clock.lastStepBack.ahead, reason: 'after-next', next: clock.lastStepBack.next });
  if (clock.newest && clock.newest.time > now + CLOCK_TOLERANCE_MS) out.push({ ...clock.newest, reason: 'after-now' });
  return out;
}
