// A garbage collection on demand, for a run that knows when much of what it held
// has just died. Node has no call for it; a context created while --expose-gc is set
// has the gc() function, which stays usable once the flag is off again.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface GcOptions {
  type: 'major' | 'minor';
  execution: 'sync' | 'async';
  /** 'last-resort' collects with V8's memory-reducing flag, the one that shrinks the young generation. */
  flavor: 'regular' | 'last-resort';
}

let gc: ((options?: Partial<GcOptions>) => void) | undefined;

/** A full, synchronous collection unless `options` say otherwise. */
export function collectGarbage(options?: Partial<GcOptions>): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as (options?: Partial<GcOptions>) => void;
    setFlagsFromString('--no-expose-gc');
  }
  // gc(undefined) is not gc(): V8 takes any argument as options, whose defaults are no full collection
  // (the small-set backup peaked at 265 MB instead of 174 with it).
  if (options) gc(options);
  else gc();
}
