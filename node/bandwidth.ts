// The daemon's bandwidth caps for object transfers to and from relatives
// (net.upload.limit, net.download.limit), lifted during the full-speed hours of
// net.fullSpeed (local time, e.g. 22:00-07:00 overnight). docs/bandwidth.md.
import { TokenBucket } from '../protocol/rate-limit.ts';
import type { TransferControl } from '../protocol/object.ts';
import { parseRate } from './units.ts';

/** A window of local time, in minutes since midnight; end < start wraps midnight. */
export interface TimeWindow {
  start: number;
  end: number;
}

/**
 * "22:00-07:00" or several, comma-separated ("22:00-07:00,12:00-13:30"); "off"
 * or empty: none. A window that starts and ends at the same minute is refused:
 * "all day" is a limit of none.
 */
export function parseWindows(text: string, key = 'net.fullSpeed'): TimeWindow[] {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed === 'off') return [];
  return trimmed.split(',').map((part) => {
    const m = /^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$/.exec(part.trim());
    const [h1, m1, h2, m2] = m ? m.slice(1).map(Number) : [NaN, NaN, NaN, NaN];
    const minutes = (h: number, min: number): number => (h <= 23 && min <= 59 ? h * 60 + min : NaN);
    const window = { start: minutes(h1!, m1!), end: minutes(h2!, m2!) };
    if (!m || Number.isNaN(window.start) || Number.isNaN(window.end) || window.start === window.end) {
      throw new Error(`${key} "${part.trim()}" is not a time window: use local times "HH:MM-HH:MM" like 22:00-07:00 (comma-separated for several), or off`);
    }
    return window;
  });
}

export function inWindows(windows: readonly TimeWindow[], at: Date): boolean {
  const m = at.getHours() * 60 + at.getMinutes();
  return windows.some((w) => (w.start < w.end ? m >= w.start && m < w.end : m >= w.start || m < w.end));
}

export interface NetSettings {
  get(key: string): string;
}

/** The net.* settings in force now: parsed again only when their text changes. */
class NetPolicy {
  readonly #settings: () => NetSettings;
  readonly #now: () => Date;
  readonly #parsed = new Map<string, { text: string; value: unknown }>();

  constructor(settings: () => NetSettings, now: () => Date) {
    this.#settings = settings;
    this.#now = now;
  }

  /** Bytes per second allowed now in one direction; 0 = unlimited. */
  rate(key: 'net.upload.limit' | 'net.download.limit'): number {
    const limit = this.#value(key, parseRate);
    return limit > 0 && inWindows(this.#value('net.fullSpeed', parseWindows), this.#now()) ? 0 : limit;
  }

  #value<T>(key: string, parse: (text: string) => T): T {
    const text = this.#settings().get(key);
    const cached = this.#parsed.get(key);
    if (cached?.text === text) return cached.value as T;
    const value = parse(text);
    this.#parsed.set(key, { text, value });
    return value;
  }
}

export interface BandwidthOptions {
  /** The home's settings as they are now (config.json re-read when it changed). */
  settings: () => NetSettings;
  /** Local time, for net.fullSpeed; for tests. */
  now?: () => Date;
  transferred?: TransferControl['transferred'];
}

/** The token buckets every object transfer of the daemon shares, one per direction. */
export function bandwidthControl(options: BandwidthOptions): TransferControl {
  const policy = new NetPolicy(options.settings, options.now ?? (() => new Date()));
  return {
    upload: new TokenBucket(() => policy.rate('net.upload.limit')),
    download: new TokenBucket(() => policy.rate('net.download.limit')),
    ...(options.transferred ? { transferred: options.transferred } : {}),
  };
}
