// Throughput of encodeObject: a file (default 1 GiB of random bytes, made once in the
// temp dir) encoded to a sink that discards. Not a test. Besides MB/s it prints the
// CPU seconds per GiB over all threads, which other load on the machine barely moves:
// two cores can do at most 2 / that GiB per second.
//   node test/bench/object-encode.bench.ts [size-MiB] [runs]
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { x25519PublicFromSecret } from '../../storage/keys.ts';
import { ObjectEncoderPool } from '../../storage/objects/encode.ts';

const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 3);
const size = sizeMiB * 1024 * 1024;
const input = join(tmpdir(), `hearth-bench-${sizeMiB}MiB.bin`);

if (!existsSync(input) || statSync(input).size !== size) {
  const out = createWriteStream(input);
  const block = randomBytes(16 * 1024 * 1024);
  for (let written = 0; written < size; written += block.length) {
    if (!out.write(block.subarray(0, Math.min(block.length, size - written)))) await once(out, 'drain');
  }
  out.end();
  await finished(out);
}

const recipient = x25519PublicFromSecret(randomBytes(32));
const pool = new ObjectEncoderPool();
for (let run = 1; run <= runs; run++) {
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const result = await pool.encode({ plaintext: createReadStream(input, { highWaterMark: 1024 * 1024 }), recipient, output: sink });
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuPerGiB = (cpu.user + cpu.system) / 1e6 / (size / 2 ** 30);
  console.log(
    `run ${run}: ${sizeMiB} MiB in ${seconds.toFixed(2)} s = ${(size / seconds / 1e6).toFixed(0)} MB/s, ${cpuPerGiB.toFixed(2)} CPU-s/GiB ` +
      `(root ${result.merkleRoot.slice(0, 16)}…, rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB)`,
  );
}
await pool.close();
