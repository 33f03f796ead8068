// How Hearth starts its worker threads (the object encoder's stages, the scanner's
// walk and hash pool).
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkerOptions } from 'node:worker_threads';

/**
 * Each worker loads its TypeScript modules afresh, and Node's type stripper alone
 * cost a worker ~18 MB RSS and ~70 ms to start. With Node's compile cache (where
 * module.enableCompileCache() keeps it, unless the user chose a place or turned it
 * off) a worker whose modules are cached loads the stripper not at all: two encoder
 * workers took 72 MB instead of 107.
 *
 * Flags: workers inherit the process's, but one started under `node --input-type=module -e`
 * refuses to run a file (the eval code itself is never run in a worker), so only then
 * are they passed explicitly, without that one; an explicit list may not hold V8
 * flags (--expose-gc, --max-old-space-size), which inheriting them accepts.
 */
export function workerStartOptions(): Pick<WorkerOptions, 'env' | 'execArgv'> {
  const env = process.env.NODE_DISABLE_COMPILE_CACHE
    ? process.env
    : { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache') };
  if (!process.execArgv.some((arg) => arg === '--input-type' || arg.startsWith('--input-type='))) return { env };
  const execArgv: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const arg = process.execArgv[i]!;
    if (arg === '--input-type') i++;
    else if (!arg.startsWith('--input-type=')) execArgv.push(arg);
  }
  return { env, execArgv };
}
