#!/usr/bin/env node
// The hearth command. Node's compile cache is turned on before the program's modules
// load, so a run whose modules are cached neither compiles nor type-strips them again.
// This entry is plain JavaScript because Node loads its TypeScript stripper for the
// first .ts file it reads, before any cache is on: ~20 MB and ~30 ms on every run.
// With no argument it honours NODE_COMPILE_CACHE and NODE_DISABLE_COMPILE_CACHE, and
// defaults to the directory the workers use (storage/objects/worker-options.ts):
// one cache for both.
import { enableCompileCache } from 'node:module';

enableCompileCache();
await import('./program.ts');
