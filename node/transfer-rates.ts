// The measured rate of the last transfers to and from each relative, for
// `hearth peers`. Kept in memory: a restarted daemon shows none until it moves data.
import type { TransferControl } from '../protocol/object.ts';

/**
 * Transfers that follow one another this closely count as one run: a pass sends
 * many objects back to back, and one small object's rate alone says little.
 */
const RUN_GAP_MS = 2000;

export interface TransferRun {
  bytes: number;
  seconds: number;
  bytesPerSecond: number;
  /** When its last transfer ended (ISO). */
  at: string;
}

type Direction = 'to' | 'from';

export class TransferRates {
  readonly #runs = new Map<string, { startedAt: number; endedAt: number; bytes: number }>();

  /** For TransferControl.transferred; times from performance.now(). */
  readonly record: NonNullable<TransferControl['transferred']> = (peer, direction, bytes, startedAt, endedAt) => {
    const key = `${direction} ${peer}`;
    const run = this.#runs.get(key);
    if (run && startedAt - run.endedAt <= RUN_GAP_MS) {
      run.bytes += bytes;
      run.startedAt = Math.min(run.startedAt, startedAt);
      run.endedAt = Math.max(run.endedAt, endedAt);
    } else {
      this.#runs.set(key, { startedAt, endedAt, bytes });
    }
  };

  /** The last run of transfers with this relative in this direction, or null when there was none. */
  last(peer: string, direction: Direction): TransferRun | null {
    const run = this.#runs.get(`${direction} ${peer}`);
    if (!run) return null;
    const seconds = Math.max(run.endedAt - run.startedAt, 1) / 1000;
    return { bytes: run.bytes, seconds, bytesPerSecond: Math.round(run.bytes / seconds), at: new Date(performance.timeOrigin + run.endedAt).toISOString() };
  }

  forget(peer: string): void {
    for (const direction of ['to', 'from'] as const) this.#runs.delete(`${direction} ${peer}`);
  }
}
