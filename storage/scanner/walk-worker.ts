// The walk (walk.ts) on its own thread, sent to the scanner in batches. A no-change
// scan of 100,000 files spends about as long in readdir and lstat as in comparing
// with the catalog; on two threads the two overlap. The walk runs ahead of the
// scanner by at most AHEAD batches.
import { parentPort, workerData } from 'node:worker_threads';
import { walkBatches } from './walk.ts';
import type { WalkMessage, WalkStart } from './walk-messages.ts';

const AHEAD = 4;

const port = parentPort!;
let unacknowledged = 0;
let resume: (() => void) | undefined;
port.on('message', () => {
  unacknowledged--;
  resume?.();
  resume = undefined;
});

for (const message of walkBatches(workerData as WalkStart)) {
  port.postMessage(message);
  if (++unacknowledged >= AHEAD) await new Promise<void>((resolve) => (resume = resolve));
}
port.postMessage({ kind: 'done' } satisfies WalkMessage);
