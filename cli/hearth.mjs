#!/usr/bin/env node
// The hearth command. Node's compile cache is turned on before the program's modules
// load, so a run whose modules are cached neither compiles nor type-strips them again.
// This entry is plain JavaScript because Node loads its TypeScript stripper for the
// first .ts file it reads, before any cache is on: ~20 MB and ~30 ms on every run.
// With no argument it honours NODE_COMPILE_CACHE and NODE_DISABLE_COMPILE_CACHE, and
// defaults to the directory the workers use (storage/objects/worker-options.ts):
// one cache for both.
// The version check comes first and the module is loaded dynamically: an older Node
// would otherwise fail at link time with a SyntaxError and a stack instead of one line.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `hearth: error: Node.js ${process.versions.node} is too old: hearth needs Node.js >= 22.12 (24 recommended); ` +
      'run it through npm (npm start, npm run hearth -- ARGS), which uses the Node 24 that npm install brought\n',
  );
  process.exit(1);
}
const { enableCompileCache } = await import('node:module');
enableCompileCache();
await import('./program.ts');
