// The daemon's timetable: the daily backup and the monthly audit, at local wall-clock
// times. A home is a computer that gets switched off, so the scheduler remembers in
// schedule.json when each job last ran and, when it starts, runs once any job whose
// time passed while it was down (like anacron). Time comes from an injectable clock,
// so tests drive weeks of schedule without waiting. A job whose run could not do
// everything (a relative asleep during the monthly audit) asks to be retried: it is
// run again every `retry.everyMs` with what it left over, until `retry.forMs` after
// the scheduled run began, and then waits for its next scheduled time. Pending
// retries are kept in schedule.json, so a restart does not lose them.
import { join } from 'node:path';
import { readStateFile, writeFileAtomicSync } from './atomic-file.ts';

export type Schedule =
  | { kind: 'off' }
  | { kind: 'daily'; hour: number; minute: number }
  | { kind: 'monthly'; day: number; hour: number; minute: number };

/**
 * "off", "HH:MM" (every day) or "D HH:MM" (day D of every month, 1-31; a month
 * without day D uses its last day). Local time.
 */
export function parseSchedule(text: string, key = 'schedule'): Schedule {
  const trimmed = text.trim();
  if (trimmed === 'off') return { kind: 'off' };
  const m = /^(?:(\d{1,2})\s+)?(\d{1,2}):(\d{2})$/.exec(trimmed);
  const hour = m ? Number(m[2]) : NaN;
  const minute = m ? Number(m[3]) : NaN;
  const day = m?.[1] === undefined ? undefined : Number(m[1]);
  if (!m || hour > 23 || minute > 59 || (day !== undefined && (day < 1 || day > 31))) {
    throw new Error(`${key} "${text}" is not a schedule: use "HH:MM" for every day (like 02:00), "D HH:MM" for a day of the month (like "1 02:30"), or "off"`);
  }
  return day === undefined ? { kind: 'daily', hour, minute } : { kind: 'monthly', day, hour, minute };
}

/** The occurrence in the day or month `index` steps from the one containing `t` (local time). */
function occurrence(schedule: Exclude<Schedule, { kind: 'off' }>, t: number, index: number): number {
  const d = new Date(t);
  if (schedule.kind === 'daily') {
    return new Date(d.getFullYear(), d.getMonth(), d.getDate() + index, schedule.hour, schedule.minute).getTime();
  }
  const month = new Date(d.getFullYear(), d.getMonth() + index, 1);
  const lastDay = new Date(month.getFullYear(), month.getMonth() + 1, 0).getDate();
  return new Date(month.getFullYear(), month.getMonth(), Math.min(schedule.day, lastDay), schedule.hour, schedule.minute).getTime();
}

/** The latest scheduled time at or before `t`; undefined when off. */
export function previousTime(schedule: Schedule, t: number): number | undefined {
  if (schedule.kind === 'off') return undefined;
  const here = occurrence(schedule, t, 0);
  return here <= t ? here : occurrence(schedule, t, -1);
}

/** The first scheduled time after `t`; undefined when off. */
export function nextTime(schedule: Schedule, t: number): number | undefined {
  if (schedule.kind === 'off') return undefined;
  const here = occurrence(schedule, t, 0);
  return here > t ? here : occurrence(schedule, t, 1);
}

export interface Clock {
  now(): number;
  /** Call `fire` once after `ms` milliseconds; the returned function cancels it. */
  setTimer(fire: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fire, ms) => {
    const timer = setTimeout(fire, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

export interface ScheduledJob {
  name: string;
  /** The schedule's text (see parseSchedule), read at every wake-up so config changes apply. */
  schedule: () => string;
  /**
   * A scheduled run gets no argument; a retry gets the `retry` its previous run
   * resolved with. Resolving with `{ retry: X }` (X JSON-serialisable) asks for a
   * retry, when the job has a retry policy.
   */
  run: (retry?: unknown) => Promise<unknown>;
  /** Read at every retry, so config changes apply. */
  retry?: { everyMs: () => number; forMs: () => number };
}

export interface SchedulerOptions {
  /** The home's state directory: schedule.json lives there. */
  home: string;
  jobs: ScheduledJob[];
  clock?: Clock;
  /** A job that threw or rejected, or whose schedule setting is invalid. */
  onFailure?: (job: string, error: Error) => void;
  log?: (line: string) => void;
  /**
   * Longest sleep between looks at the clock (default 15 minutes). Timers measure
   * elapsed time, which stops while a machine is suspended and ignores clock
   * changes; waking regularly bounds how late a job can start after either.
   */
  maxSleepMs?: number;
}

export interface JobStatus {
  name: string;
  schedule: string;
  running: boolean;
  /** ISO times; nextRun is absent when the job is off or its schedule is invalid. */
  nextRun?: string;
  lastRun?: string;
  lastFinished?: string;
  lastError?: string;
  /** ISO time of the next retry of the last run, when it left work over. */
  retryAt?: string;
}

interface JobRecord {
  /** The schedule text the times below belong to. */
  schedule: string;
  /** Scheduled times before this are not caught up: the job was not scheduled so then. */
  trackedSince: string;
  /** When the last completed run started (ISO). */
  lastRun?: string;
  lastFinished?: string;
  lastError?: string;
  /** Work the last run left over, and when to try it again (until `until`). */
  retry?: { state: unknown; at: string; until: string };
}

interface ScheduleStateFile {
  version: 1;
  jobs: Record<string, JobRecord>;
}

export const SCHEDULE_STATE_FILE = 'schedule.json';
const DEFAULT_MAX_SLEEP_MS = 15 * 60_000;

export class Scheduler {
  private readonly file: string;
  private readonly jobs: ScheduledJob[];
  private readonly clock: Clock;
  private readonly onFailure: (job: string, error: Error) => void;
  private readonly log: (line: string) => void;
  private readonly maxSleepMs: number;
  private readonly state: ScheduleStateFile;
  private readonly running = new Map<string, Promise<void>>();
  /** Invalid schedule texts already reported, so a bad setting is reported once, not at every wake-up. */
  private readonly reportedInvalid = new Map<string, string>();
  private cancelTimer: (() => void) | undefined;
  private started = false;

  constructor(options: SchedulerOptions) {
    this.file = join(options.home, SCHEDULE_STATE_FILE);
    this.jobs = options.jobs;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? (() => {});
    this.onFailure = options.onFailure ?? (() => {});
    this.maxSleepMs = options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS;
    this.state = this.load();
  }

  /** Run what is overdue (once per job), then keep time. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.wake();
  }

  /** Stop starting jobs; resolves when the jobs already running have finished. */
  async stop(): Promise<void> {
    this.started = false;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    await Promise.all(this.running.values());
  }

  /** Look at the clock again now, e.g. after a schedule setting changed. */
  reschedule(): void {
    if (this.started) this.wake();
  }

  /** The next scheduled time of a job (ms since the epoch), or undefined when it is off. */
  nextRun(name: string): number | undefined {
    const schedule = this.scheduleOf(this.job(name));
    return schedule && nextTime(schedule, this.clock.now());
  }

  status(): JobStatus[] {
    return this.jobs.map((job) => {
      const record = this.state.jobs[job.name];
      const next = this.nextRun(job.name);
      return {
        name: job.name,
        schedule: job.schedule(),
        running: this.running.has(job.name),
        nextRun: next === undefined ? undefined : new Date(next).toISOString(),
        lastRun: record?.lastRun,
        lastFinished: record?.lastFinished,
        lastError: record?.lastError,
        retryAt: record?.retry?.at,
      };
    });
  }

  private job(name: string): ScheduledJob {
    const job = this.jobs.find((j) => j.name === name);
    if (!job) throw new Error(`no scheduled job named "${name}": known jobs are ${this.jobs.map((j) => j.name).join(', ')}`);
    return job;
  }

  private scheduleOf(job: ScheduledJob): Schedule | undefined {
    const text = job.schedule();
    try {
      return parseSchedule(text, `schedule.${job.name}`);
    } catch (err) {
      if (this.reportedInvalid.get(job.name) !== text) {
        this.reportedInvalid.set(job.name, text);
        this.report(job.name, err as Error);
      }
      return undefined;
    }
  }

  private wake(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    if (!this.started) return;
    const now = this.clock.now();
    let wakeAt = now + this.maxSleepMs;
    for (const job of this.jobs) {
      const schedule = this.scheduleOf(job);
      if (!schedule) continue;
      const record = this.track(job, now);
      if (schedule.kind === 'off') continue;
      const due = previousTime(schedule, now)!;
      if (!this.running.has(job.name)) {
        if (due > servedUntil(record)) this.launch(job, now);
        else if (record.retry && Date.parse(record.retry.at) <= now) this.launch(job, now, record.retry);
      }
      wakeAt = Math.min(wakeAt, nextTime(schedule, now)!);
      if (record.retry && !this.running.has(job.name)) wakeAt = Math.min(wakeAt, Math.max(now, Date.parse(record.retry.at)));
    }
    this.cancelTimer = this.clock.setTimer(() => this.wake(), Math.max(0, wakeAt - now));
  }

  /** A job seen for the first time, or under a new schedule (including off → on), is caught up only from now on. */
  private track(job: ScheduledJob, now: number): JobRecord {
    const text = job.schedule().trim();
    const known = this.state.jobs[job.name];
    if (known && known.schedule === text) return known;
    const record: JobRecord = { ...known, schedule: text, trackedSince: new Date(now).toISOString() };
    this.state.jobs[job.name] = record;
    this.save();
    return record;
  }

  /** A scheduled run, or (with `retry`) a retry of the last one's leftovers, which keeps its start time. */
  private launch(job: ScheduledJob, startedAt: number, retry?: JobRecord['retry']): void {
    this.log(`scheduled ${job.name} ${retry ? 'retrying what its last run left over' : 'starting'}`);
    const run = (async () => {
      let error: Error | undefined;
      let result: unknown;
      try {
        result = await job.run(retry?.state);
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
      }
      const record = this.state.jobs[job.name]!;
      if (!retry) record.lastRun = new Date(startedAt).toISOString();
      record.lastFinished = new Date(this.clock.now()).toISOString();
      if (error) record.lastError = error.message;
      else delete record.lastError;
      this.planRetry(job, record, result, retry ? Date.parse(retry.until) : undefined);
      this.save();
      this.running.delete(job.name);
      if (error) this.report(job.name, error);
      else this.log(`scheduled ${job.name} finished`);
      // A scheduled time that passed while this run was busy is caught up now, once.
      this.wake();
    })();
    this.running.set(job.name, run);
  }

  /** Keep the leftovers a run resolved with for a retry, unless its retry window has closed. */
  private planRetry(job: ScheduledJob, record: JobRecord, result: unknown, until: number | undefined): void {
    delete record.retry;
    const state = (result as { retry?: unknown } | undefined)?.retry;
    if (!job.retry || state === undefined) return;
    const now = this.clock.now();
    const end = until ?? Date.parse(record.lastRun!) + job.retry.forMs();
    const at = now + job.retry.everyMs();
    if (at > end) {
      this.log(`scheduled ${job.name} gives up on what is left until its next scheduled run`);
      return;
    }
    record.retry = { state, at: new Date(at).toISOString(), until: new Date(end).toISOString() };
  }

  private report(job: string, error: Error): void {
    this.log(`scheduled ${job} failed: ${error.message}`);
    try {
      this.onFailure(job, error);
    } catch (err) {
      this.log(`reporting the failure of ${job} failed: ${(err as Error).message}`);
    }
  }

  private load(): ScheduleStateFile {
    return readStateFile<ScheduleStateFile>(
      this.file,
      () => ({ version: 1, jobs: {} }),
      (parsed) => typeof parsed.jobs === 'object' && parsed.jobs !== null,
      (reason) => this.log(`schedule state ${this.file} is unreadable (${reason}): starting afresh, missed runs are not caught up`),
    );
  }


  /** A failed write is logged, not thrown: the timetable keeps running from memory and the next save retries. */
  private save(): void {
    try {
      writeFileAtomicSync(this.file, JSON.stringify(this.state, null, 2) + '\n');
    } catch (err) {
      this.log(`could not write schedule state ${this.file} (${(err as Error).message}): after a restart a run may be repeated or missed`);
    }
  }
}

function servedUntil(record: JobRecord): number {
  return Math.max(Date.parse(record.trackedSince), record.lastRun ? Date.parse(record.lastRun) : -Infinity);
}
