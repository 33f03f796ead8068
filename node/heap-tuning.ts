// V8 heap settings for a process that moves gigabytes through libp2p: the daemon,
// and the bare-stream reference it is benchmarked against (test/bench); and a
// backup's or a restore's young generation (holdYoungGenerationSmall). Measured
// on 260 MB puts between two daemons on this 2-core machine (medians of 3):
//   as V8 sizes the heap:            peak RSS 240-270 MB each, CPU 1.0 s owner / 1.5 s host
//   young generation shrunk:         peak RSS 180-210 MB, CPU 1.3 s / 2.0 s
//   shrunk, old generation x2.5:     peak RSS 195-225 MB, CPU 0.65 s / 1.4 s
// - V8 doubles its young generation (up to 2 x 16 MB) whenever much of it survives
//   a scavenge, and never gives it back. While a process loads its modules nearly
//   everything survives, so the daemon had the largest young generation before it
//   did any work.
// - With a heap of ~20 MB, V8 grows the old generation's limit by a factor of
//   about 1.5 after each full collection, leaving ~10 MB of slack; incremental
//   marking starts whenever the slack is below what the young generation could
//   promote, so a receiving daemon ran a full mark-compact every ~50 ms (39 during
//   a 260 MB put). A fixed factor of 2.5 leaves room for the buffers in flight.
import { setFlagsFromString } from 'node:v8';
import { collectGarbage } from '../storage/collect-garbage.ts';

const OLD_GENERATION_GROWING_PERCENT = 150;

/** Once the process has loaded what it runs: shrink the young generation, keep it at that size, and set the old generation's growth. */
export function tuneHeapForTransfers(): void {
  keepYoungGenerationSmall();
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWING_PERCENT}`);
  shrinkYoungGeneration();
}

/** A memory-reducing full collection: the one kind that gives back young-generation space. */
function shrinkYoungGeneration(): void {
  collectGarbage({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

/**
 * The young generation's growth factor this process chose: V8's default (2) until a
 * daemon keeps it small. A daemon that let it grow back during a 2.6 GB transfer ran
 * 77 mark-compacts instead of a handful.
 */
let youngGenerationGrowth = 2;

function applyYoungGenerationGrowth(factor: number): void {
  setFlagsFromString(`--semi-space-growth-factor=${factor}`);
}

/** From now on, for the whole process. */
function keepYoungGenerationSmall(): void {
  youngGenerationGrowth = 1;
  applyYoungGenerationGrowth(1);
}

let held = false;

/**
 * Runs `work` (a backup, a restore), which may call holdYoungGenerationSmall(), then gives back
 * the young generation growth the process chose.
 */
export async function restoringYoungGeneration<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } finally {
    held = false;
    applyYoungGenerationGrowth(youngGenerationGrowth);
  }
}

/**
 * Keeps the young generation at its size until the surrounding
 * restoringYoungGeneration() ends: for a backup once it records or packs anything.
 * V8 doubles the young generation (up to 2 x 32 MB) whenever much of it survives a
 * scavenge, as a backup's scan batches, volume layouts and catalog appends do, and
 * never shrinks it back: with the old generation's slack that held a first backup of
 * 100,000 small files at ~400 MB; kept small, it peaks ~100 MB lower in the same
 * time. A scan that finds nothing new holds nothing, and there growth pays: the
 * walk's garbage is scavenged less often (100,000 unchanged files: 0.56-0.59 s
 * instead of 0.63-0.71, peak RSS ~147 MB instead of ~135).
 */
export function holdYoungGenerationSmall(): void {
  if (held) return;
  held = true;
  applyYoungGenerationGrowth(1);
}

/**
 * holdYoungGenerationSmall(), from its smallest size: for a restore, whose garbage
 * (decrypted chunks, streams, file handles) dies young but comes fast enough that V8
 * grows the young generation to its 2 x 16 MB and commits ~140 MB of heap for ~11 MB
 * live. Restoring 100,000 small files: peak RSS 342 -> 131 MB, 31.9 -> 26.5 s.
 */
export function holdYoungGenerationSmallest(): void {
  holdYoungGenerationSmall();
  shrinkYoungGeneration();
}
