// The scheduler driven by a fake clock: weeks and months pass in milliseconds,
// nothing sleeps. Local times are checked in a zone with DST, away from its change
// days, and then across them.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../node/config.ts';
import { nextTime, parseSchedule, previousTime, Scheduler, type Clock, type ScheduledJob } from '../node/scheduler.ts';

const ZONE = 'America/New_York';
let savedTz: string | undefined;

beforeAll(() => {
  savedTz = process.env.TZ;
  process.env.TZ = ZONE;
});

afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

/** Local wall-clock time in ZONE → ms. */
function local(y: number, month: number, d: number, h = 0, min = 0): number {
  return new Date(y, month - 1, d, h, min).getTime();
}

function show(t: number): string {
  const d = new Date(t);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** Lets the promise chains a fired timer started run to their next real wait. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

class FakeClock implements Clock {
  private t: number;
  private timers: Array<{ at: number; fire: () => void }> = [];
  /** Every delay the scheduler asked for, to check it never sleeps past maxSleep. */
  readonly delays: number[] = [];

  constructor(start: number) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(fire: () => void, ms: number): () => void {
    this.delays.push(ms);
    const timer = { at: this.t + ms, fire };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Move time forward to `target`, firing due timers in order. */
  async advanceTo(target: number): Promise<void> {
    for (let fired = 0; fired < 100_000; fired++) {
      const due = this.timers.filter((x) => x.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fire();
      await settle();
    }
    this.t = target;
    await settle();
  }

  pending(): number {
    return this.timers.length;
  }
}

let home: string;
let schedulers: Scheduler[];

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'hearth-sched-'));
  schedulers = [];
});

afterEach(async () => {
  for (const s of schedulers) await s.stop();
  rmSync(home, { recursive: true, force: true });
});

interface Recorder {
  job: ScheduledJob;
  runs: number[];
}

function recorder(name: string, clock: FakeClock, schedule: { text: string }): Recorder {
  const runs: number[] = [];
  return { runs, job: { name, schedule: () => schedule.text, run: async () => void runs.push(clock.now()) } };
}

function scheduler(clock: FakeClock, jobs: ScheduledJob[], onFailure?: (job: string, error: Error) => void): Scheduler {
  const s = new Scheduler({ home, jobs, clock, onFailure, maxSleepMs: 15 * 60_000 });
  schedulers.push(s);
  return s;
}

describe('schedule texts', () => {
  it('parses daily, monthly and off, and names the setting in errors', () => {
    expect(parseSchedule('02:00')).toEqual({ kind: 'daily', hour: 2, minute: 0 });
    expect(parseSchedule(' 1 02:30 ')).toEqual({ kind: 'monthly', day: 1, hour: 2, minute: 30 });
    expect(parseSchedule('off')).toEqual({ kind: 'off' });
    for (const bad of ['24:00', '2:60', '0 02:00', '32 02:00', 'daily', '02:00:00', '']) {
      expect(() => parseSchedule(bad, 'schedule.backup')).toThrow(/^schedule\.backup ".*" is not a schedule: use "HH:MM"/);
    }
  });

  it('are settings with the documented defaults, checked when set', () => {
    const config = Config.load(join(home, 'config.json'));
    expect(config.get('schedule.backup')).toBe('02:00');
    expect(config.get('schedule.audit')).toBe('1 02:30');
    expect(() => config.set('schedule.audit', '1st 02:30')).toThrow(/^schedule\.audit "1st 02:30" is not a schedule/);
    config.set('schedule.backup', 'off');
    expect(config.get('schedule.backup')).toBe('off');
  });

  it('finds the previous and next local times', () => {
    const daily = parseSchedule('02:00');
    expect(show(nextTime(daily, local(2026, 6, 10, 1, 59))!)).toBe('2026-06-10 02:00');
    expect(show(nextTime(daily, local(2026, 6, 10, 2, 0))!)).toBe('2026-06-11 02:00');
    expect(show(previousTime(daily, local(2026, 6, 10, 2, 0))!)).toBe('2026-06-10 02:00');
    expect(show(previousTime(daily, local(2026, 6, 10, 1, 59))!)).toBe('2026-06-09 02:00');
    expect(show(previousTime(daily, local(2026, 7, 1, 1, 0))!)).toBe('2026-06-30 02:00');
    const monthly = parseSchedule('31 02:30');
    expect(show(nextTime(monthly, local(2026, 1, 31, 3))!)).toBe('2026-02-28 02:30');
    expect(show(nextTime(monthly, local(2026, 2, 28, 3))!)).toBe('2026-03-31 02:30');
    expect(show(previousTime(monthly, local(2026, 1, 15))!)).toBe('2025-12-31 02:30');
    expect(nextTime(parseSchedule('off'), 0)).toBeUndefined();
  });
});

describe('Scheduler', () => {
  it('runs the backup at 02:00 local every day, once a day', async () => {
    const clock = new FakeClock(local(2026, 6, 1, 12));
    const backup = recorder('backup', clock, { text: '02:00' });
    const s = scheduler(clock, [backup.job]);
    s.start();
    await settle();
    expect(backup.runs).toEqual([]); // first start: nothing to catch up
    expect(show(s.nextRun('backup')!)).toBe('2026-06-02 02:00');
    await clock.advanceTo(local(2026, 6, 8, 12));
    expect(backup.runs.map(show)).toEqual([2, 3, 4, 5, 6, 7, 8].map((d) => `2026-06-0${d} 02:00`));
    expect(Math.max(...clock.delays)).toBeLessThanOrEqual(15 * 60_000);
    expect(show(s.nextRun('backup')!)).toBe('2026-06-09 02:00');
  });

  it('runs the audit on the 1st of each month at 02:30 local', async () => {
    const clock = new FakeClock(local(2026, 4, 15, 9));
    const audit = recorder('audit', clock, { text: '1 02:30' });
    const backup = recorder('backup', clock, { text: '02:00' });
    const s = scheduler(clock, [backup.job, audit.job]);
    s.start();
    await clock.advanceTo(local(2026, 8, 20));
    expect(audit.runs.map(show)).toEqual(['2026-05-01 02:30', '2026-06-01 02:30', '2026-07-01 02:30', '2026-08-01 02:30']);
    // Every day from April 16 to August 19, 02:00 each time (no DST change in between).
    expect(show(backup.runs[0]!)).toBe('2026-04-16 02:00');
    expect(show(backup.runs.at(-1)!)).toBe('2026-08-19 02:00');
    expect(backup.runs.slice(1).every((t, i) => t - backup.runs[i]! === 86_400_000)).toBe(true);
    expect(show(s.nextRun('audit')!)).toBe('2026-09-01 02:30');
  });

  it('catches up exactly once after a week of downtime, and not again after a restart', async () => {
    const clock = new FakeClock(local(2026, 6, 1, 12));
    const backup = recorder('backup', clock, { text: '02:00' });
    const audit = recorder('audit', clock, { text: '1 02:30' });
    const first = scheduler(clock, [backup.job, audit.job]);
    first.start();
    await clock.advanceTo(local(2026, 6, 2, 12));
    expect(backup.runs.map(show)).toEqual(['2026-06-02 02:00']);
    await first.stop();

    // Down from June 2 noon to June 9 09:00: seven 02:00s missed.
    await clock.advanceTo(local(2026, 6, 9, 9));
    expect(clock.pending()).toBe(0);
    const second = scheduler(clock, [backup.job, audit.job]);
    second.start();
    await settle();
    expect(backup.runs.map(show)).toEqual(['2026-06-02 02:00', '2026-06-09 09:00']);
    expect(audit.runs).toEqual([]);
    await clock.advanceTo(local(2026, 6, 9, 23));
    expect(backup.runs).toHaveLength(2);
    await clock.advanceTo(local(2026, 6, 10, 3));
    expect(backup.runs.map(show).slice(2)).toEqual(['2026-06-10 02:00']);
    await second.stop();

    // Restarted the same day after the run: nothing to catch up.
    const third = scheduler(clock, [backup.job, audit.job]);
    third.start();
    await clock.advanceTo(local(2026, 6, 10, 20));
    expect(backup.runs).toHaveLength(3);
    await third.stop();

    // Down across the 1st of July: the audit is caught up once too.
    await clock.advanceTo(local(2026, 7, 3, 8));
    const fourth = scheduler(clock, [backup.job, audit.job]);
    fourth.start();
    await settle();
    expect(audit.runs.map(show)).toEqual(['2026-07-03 08:00']);
    expect(backup.runs.map(show).slice(3)).toEqual(['2026-07-03 08:00']);

    const state = JSON.parse(readFileSync(join(home, 'schedule.json'), 'utf8'));
    expect(state.version).toBe(1);
    expect(state.jobs.backup.lastRun).toBe(new Date(local(2026, 7, 3, 8)).toISOString());
  });

  it('never overlaps a slow job, and catches up once when it finishes', async () => {
    const clock = new FakeClock(local(2026, 6, 1, 12));
    let running = 0;
    let mostAtOnce = 0;
    const starts: number[] = [];
    const finishers: Array<() => void> = [];
    const slow: ScheduledJob = {
      name: 'backup',
      schedule: () => '02:00',
      run: async () => {
        starts.push(clock.now());
        running++;
        mostAtOnce = Math.max(mostAtOnce, running);
        await new Promise<void>((resolve) => finishers.push(resolve));
        running--;
      },
    };
    const s = scheduler(clock, [slow]);
    s.start();
    await clock.advanceTo(local(2026, 6, 2, 2));
    expect(starts).toHaveLength(1);
    expect(s.status()[0]!.running).toBe(true);
    // Still running through three more 02:00s.
    await clock.advanceTo(local(2026, 6, 5, 10));
    expect(starts).toHaveLength(1);
    finishers.shift()!();
    await settle();
    await settle();
    expect(starts.map(show)).toEqual(['2026-06-02 02:00', '2026-06-05 10:00']);
    finishers.shift()!();
    await clock.advanceTo(local(2026, 6, 6, 1));
    expect(starts).toHaveLength(2);
    await clock.advanceTo(local(2026, 6, 6, 3));
    expect(starts).toHaveLength(3);
    finishers.shift()!();
    await settle();
    expect(mostAtOnce).toBe(1);
  });

  it('reports failures and keeps to the timetable', async () => {
    const clock = new FakeClock(local(2026, 6, 1, 12));
    const failures: Array<[string, string]> = [];
    let attempts = 0;
    const flaky: ScheduledJob = {
      name: 'backup',
      schedule: () => '02:00',
      run: async () => {
        attempts++;
        if (attempts === 1) throw new Error('source /photos is not mounted');
      },
    };
    const s = scheduler(clock, [flaky], (job, error) => failures.push([job, error.message]));
    s.start();
    await clock.advanceTo(local(2026, 6, 2, 12));
    expect(failures).toEqual([['backup', 'source /photos is not mounted']]);
    expect(s.status()[0]).toMatchObject({ name: 'backup', lastError: 'source /photos is not mounted', running: false });
    await clock.advanceTo(local(2026, 6, 3, 12));
    expect(attempts).toBe(2);
    expect(failures).toHaveLength(1);
    expect(s.status()[0]!.lastError).toBeUndefined();
  });

  it('off disables a job; turning it on starts from the next time, without catching up', async () => {
    const clock = new FakeClock(local(2026, 6, 1, 12));
    const setting = { text: 'off' };
    const backup = recorder('backup', clock, setting);
    const s = scheduler(clock, [backup.job]);
    s.start();
    await clock.advanceTo(local(2026, 6, 11, 12));
    expect(backup.runs).toEqual([]);
    expect(s.nextRun('backup')).toBeUndefined();
    expect(s.status()[0]!.nextRun).toBeUndefined();

    setting.text = '03:00';
    s.reschedule();
    await settle();
    expect(backup.runs).toEqual([]);
    await clock.advanceTo(local(2026, 6, 12, 4));
    expect(backup.runs.map(show)).toEqual(['2026-06-12 03:00']);

    // Off again: no more runs.
    setting.text = 'off';
    await clock.advanceTo(local(2026, 6, 20, 4));
    expect(backup.runs).toHaveLength(1);
  });

  it('picks up a changed time within its longest sleep', async () => {
    const clock = new FakeClock(local(2026, 6, 1, 12));
    const setting = { text: '02:00' };
    const backup = recorder('backup', clock, setting);
    scheduler(clock, [backup.job]).start();
    await clock.advanceTo(local(2026, 6, 1, 22));
    setting.text = '23:00';
    await clock.advanceTo(local(2026, 6, 2, 12));
    expect(backup.runs.map(show)).toEqual(['2026-06-01 23:00']);
  });

  it('reports an invalid schedule once instead of running', async () => {
    const clock = new FakeClock(local(2026, 6, 1, 12));
    const failures: string[] = [];
    const backup = recorder('backup', clock, { text: '2am' });
    const s = scheduler(clock, [backup.job], (_job, error) => failures.push(error.message));
    s.start();
    await clock.advanceTo(local(2026, 6, 3, 12));
    expect(backup.runs).toEqual([]);
    expect(failures).toEqual(['schedule.backup "2am" is not a schedule: use "HH:MM" for every day (like 02:00), "D HH:MM" for a day of the month (like "1 02:30"), or "off"']);
  });

  it('runs once a day across the DST changes', async () => {
    const clock = new FakeClock(local(2026, 3, 6, 12));
    const spring = recorder('backup', clock, { text: '02:30' });
    scheduler(clock, [spring.job]).start();
    await clock.advanceTo(local(2026, 3, 10, 12));
    // 02:30 does not exist on March 8 (clocks jump 02:00 → 03:00): it runs at 03:30.
    expect(spring.runs.map(show)).toEqual(['2026-03-07 02:30', '2026-03-08 03:30', '2026-03-09 02:30', '2026-03-10 02:30']);
    await schedulers[0]!.stop();

    const autumnClock = new FakeClock(local(2026, 10, 30, 12));
    const autumn = recorder('audit', autumnClock, { text: '01:30' });
    scheduler(autumnClock, [autumn.job]).start();
    await autumnClock.advanceTo(local(2026, 11, 3, 12));
    // 01:30 happens twice on November 1 (clocks go back 02:00 → 01:00): one run.
    expect(autumn.runs.map(show)).toEqual(['2026-10-31 01:30', '2026-11-01 01:30', '2026-11-02 01:30', '2026-11-03 01:30']);
  });
});

describe('retries of what a run left over', () => {
  it('a job that leaves work over is run again hourly with it for a day, then waits for its next scheduled time; a restart keeps the plan', async () => {
    const clock = new FakeClock(local(2026, 6, 30, 12));
    const calls: Array<{ at: string; retry: unknown }> = [];
    /** Like the audit: relative "c" sleeps all along, "b" wakes at the 3rd retry. */
    const job: ScheduledJob = {
      name: 'audit',
      schedule: () => '1 02:30',
      retry: { everyMs: () => 3_600_000, forMs: () => 24 * 3_600_000 },
      run: async (retry) => {
        calls.push({ at: show(clock.now()), retry });
        const asked = (retry as string[] | undefined) ?? ['a', 'b', 'c'];
        const left = asked.filter((r) => r === 'c' || (r === 'b' && calls.length < 4));
        return left.length ? { retry: left } : {};
      },
    };
    const first = scheduler(clock, [job]);
    first.start();
    await clock.advanceTo(local(2026, 7, 1, 5, 45));
    expect(calls.map((c) => c.at)).toEqual(['2026-07-01 02:30', '2026-07-01 03:30', '2026-07-01 04:30', '2026-07-01 05:30']);
    expect(calls.map((c) => c.retry)).toEqual([undefined, ['b', 'c'], ['b', 'c'], ['b', 'c']]);
    expect(first.status()[0]!.retryAt).toBe(new Date(local(2026, 7, 1, 6, 30)).toISOString());
    await first.stop();

    // The daemon restarts at 07:00: the pending retry is caught up at once, then hourly.
    await clock.advanceTo(local(2026, 7, 1, 7));
    const second = scheduler(clock, [job]);
    second.start();
    await settle();
    expect(calls.at(-1)).toEqual({ at: '2026-07-01 07:00', retry: ['c'] });
    await clock.advanceTo(local(2026, 7, 3));
    const retries = calls.slice(1);
    // Within 24 h of 02:30: the last retry is at or before July 2, 02:30.
    expect(retries.at(-1)!.at).toBe('2026-07-02 02:00');
    expect(retries.length).toBeLessThanOrEqual(24);
    expect(second.status()[0]!.retryAt).toBeUndefined();
    const lastRun = second.status()[0]!.lastRun;
    expect(lastRun).toBe(new Date(local(2026, 7, 1, 2, 30)).toISOString());
    // Next month starts afresh with everyone.
    await clock.advanceTo(local(2026, 8, 1, 3));
    expect(calls.filter((c) => c.at === '2026-08-01 02:30')).toEqual([{ at: '2026-08-01 02:30', retry: undefined }]);
  });
});
