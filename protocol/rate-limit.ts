// Bandwidth caps for bulk transfers: one token bucket per direction, shared by
// every transfer of the daemon in that direction (docs/bandwidth.md). A transfer
// takes tokens slice by slice before it sends or reads on, so at most the chunk in
// hand waits here: a sender holds the chunk it read, a receiver leaves the rest in
// the stream, which StreamReader pauses once its high-water mark is reached.
import { setTimeout as sleep } from 'node:timers/promises';

export interface RateLimit {
  /** Wait until `bytes` more may pass. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
  /** The most bytes to pass at once, so that each wait stays short (Infinity when unlimited). */
  slice(): number;
}

/** No cap: what a transfer without limits uses. */
export const UNLIMITED: RateLimit = { take: async () => {}, slice: () => Infinity };

/**
 * Tokens a bucket gathers while idle, in seconds of its rate: short, so a cap
 * holds over a transfer of a few seconds, not only on average over minutes.
 */
const BURST_SECONDS = 0.1;
/** A slice is what passes in this long at the rate, so waits stay this short. */
const SLICE_SECONDS = 0.05;
const MIN_SLICE = 16 * 1024;

export interface TokenBucketOptions {
  /** Milliseconds, monotonic; for tests. */
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * A token bucket that may go into debt: a take of more than the tokens there are
 * passes after the debt's worth of time, and the next take waits behind it. So
 * concurrent transfers share the rate, whatever size their chunks are. `rate` is
 * asked at every take (bytes per second, 0 = unlimited), so a changed setting or
 * a full-speed window applies at once.
 */
export class TokenBucket implements RateLimit {
  readonly #rate: () => number;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  #tokens = 0;
  #at: number;

  constructor(rate: () => number, options: TokenBucketOptions = {}) {
    this.#rate = rate;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? ((ms, signal) => sleep(ms, undefined, { signal }));
    this.#at = this.#now();
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const rate = this.#rate();
    const now = this.#now();
    const elapsed = Math.max(0, now - this.#at) / 1000;
    this.#at = now;
    if (!(rate > 0)) {
      // Lifted: nobody owes anything when a cap comes back.
      this.#tokens = 0;
      return;
    }
    this.#tokens = Math.min(rate * BURST_SECONDS, this.#tokens + elapsed * rate) - bytes;
    if (this.#tokens >= 0) return;
    try {
      await this.#sleep((-this.#tokens / rate) * 1000, signal);
    } catch (err) {
      // Bytes that never passed are owed by nobody.
      this.#tokens += bytes;
      throw err;
    }
  }

  slice(): number {
    const rate = this.#rate();
    return rate > 0 ? Math.max(MIN_SLICE, Math.floor(rate * SLICE_SECONDS)) : Infinity;
  }
}

/** Take `chunk`'s worth from `limit` in slices, handing each slice on once it may pass. */
export async function* limited(chunk: Uint8Array, limit: RateLimit, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const slice = limit.slice();
  for (let at = 0; at < chunk.byteLength; at += slice) {
    const part = slice >= chunk.byteLength ? chunk : chunk.subarray(at, at + slice);
    await limit.take(part.byteLength, signal);
    yield part;
  }
}
