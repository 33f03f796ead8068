// Retries a tier's transient failures (a dropped connection, a busy NAS) with
// exponential backoff, in the spirit of restic's retry backend. Permanent errors
// (isPermanent) fail at once: retrying a full disk or a missing object only delays
// the message the user needs.
import { setTimeout as sleep } from 'node:timers/promises';
import { isPermanent } from './tier.ts';
import type { ByteRange, ObjectInfo, ObjectSource, PutReceipt, Tier } from './tier.ts';
import type { Readable } from 'node:stream';

export interface RetryEvent {
  operation: 'put' | 'get' | 'stat' | 'list' | 'delete';
  object?: string;
  /** The attempt that just failed, from 1. */
  attempt: number;
  error: unknown;
  delayMs: number;
}

export interface RetryOptions {
  /** Tries in all, the first included. */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (event: RetryEvent) => void;
}

export class RetryTier implements Tier {
  readonly kind: Tier['kind'];
  readonly name: string;
  private readonly inner: Tier;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;

  constructor(inner: Tier, options: RetryOptions = {}) {
    this.inner = inner;
    this.kind = inner.kind;
    this.name = inner.name;
    this.attempts = Math.max(1, options.attempts ?? 5);
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.onRetry = options.onRetry;
  }

  location(name: string): string {
    return this.inner.location(name);
  }

  put(name: string, source: ObjectSource, signal?: AbortSignal): Promise<PutReceipt | void> {
    // Each attempt hands the inner tier the source, which opens it afresh from byte 0.
    return this.retry('put', name, signal, () => this.inner.put(name, source, signal));
  }

  /** Retries opening the stream; a failure after bytes have flowed reaches the reader. */
  get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return this.retry('get', name, signal, () => this.inner.get(name, range, signal));
  }

  stat(name: string): Promise<ObjectInfo> {
    return this.retry('stat', name, undefined, () => this.inner.stat(name));
  }

  /**
   * Retries until the first object arrives; a listing that fails later is not
   * restarted, since the caller has already seen part of it.
   */
  async *list(): AsyncIterable<ObjectInfo> {
    const iterator = await this.retry('list', undefined, undefined, async () => {
      const it = this.inner.list()[Symbol.asyncIterator]();
      return { it, first: await it.next() };
    });
    try {
      for (let step = iterator.first; !step.done; step = await iterator.it.next()) {
        yield step.value;
      }
    } finally {
      // A caller that stops early must still release the inner listing (open directories, requests).
      await iterator.it.return?.();
    }
  }

  delete(name: string): Promise<void> {
    return this.retry('delete', name, undefined, () => this.inner.delete(name));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  removeTempFiles(olderThanMs: number): Promise<number> {
    return this.inner.removeTempFiles?.(olderThanMs) ?? Promise.resolve(0);
  }

  private async retry<T>(operation: RetryEvent['operation'], object: string | undefined, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      signal?.throwIfAborted();
      try {
        return await attempt();
      } catch (error) {
        if (n >= this.attempts || isPermanent(error) || signal?.aborted) throw error;
        const delayMs = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (n - 1));
        this.onRetry?.({ operation, object, attempt: n, error, delayMs });
        // An abort ends the sleep early; the check at the top of the loop then throws its reason.
        await sleep(delayMs, undefined, { signal }).catch(() => {});
      }
    }
  }
}
