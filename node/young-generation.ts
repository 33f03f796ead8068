// V8 doubles its young generation (up to 2 x 16 MB) whenever much of it survives a
// scavenge, and never gives it back. While a process loads its modules nearly
// everything survives, so a daemon has the largest young generation before it does
// any work; during a transfer it then fills with the wrappers of dead 64 KiB
// buffers between scavenges. Measured on 260 MB puts between two daemons: peak RSS
// 250-275 MB each as started, 195-215 MB with the young generation shrunk once the
// daemon is up and kept at that size (as a backup keeps it while it runs,
// node/backup.ts).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

interface GcOptions {
  type: 'major' | 'minor';
  execution: 'sync' | 'async';
  /** 'last-resort' collects with V8's memory-reducing flag, the one that shrinks the young generation. */
  flavor: 'regular' | 'last-resort';
}

/** For a process that has loaded what it runs: give back the young generation loading grew, and keep it small. */
export function shrinkYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  // Node has no call that collects garbage; a context created while --expose-gc is
  // set has the gc() function, which stays usable once the flag is off again.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options: GcOptions) => void;
  setFlagsFromString('--no-expose-gc');
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
