// A full garbage collection on demand, for a run that knows when much of what it held
// has just died. Node has no call for it; a context created while --expose-gc is set
// has the gc() function, which stays usable once the flag is off again.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
    setFlagsFromString('--no-expose-gc');
  }
  gc();
}
