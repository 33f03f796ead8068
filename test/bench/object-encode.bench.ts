// Throughput of encodeObject: a file (default 1 GiB of random bytes, made once in the
// temp dir) encoded to a sink that discards. Not a test. Besides MB/s it prints the
// CPU seconds per GiB over all threads, which other load on the machine barely moves:
// two cores can do at most 2 / that GiB per second.
// With --fill the plaintext is read with synchronous reads straight into the
// encoder's buffers (a PlaintextSource, as the ISO writer provides) instead of a stream.
//   node test/bench/object-encode.bench.ts [size-MiB] [runs] [--fill]
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, createReadStream, createWriteStream, existsSync, openSync, readSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { x25519PublicFromSecret } from '../../storage/keys.ts';
import { ObjectEncoderPool, type PlaintextSource } from '../../storage/objects/encode.ts';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const fill = process.argv.includes('--fill');
const sizeMiB = Number(args[0] ?? 1024);
const runs = Number(args[1] ?? 3);
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
  const fd = fill ? openSync(input, 'r') : -1;
  const plaintext = fill ? fileSource(fd) : createReadStream(input, { highWaterMark: 1024 * 1024 });
  const result = await pool.encode({ plaintext, recipient, output: sink });
  if (fill) closeSync(fd);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuPerGiB = (cpu.user + cpu.system) / 1e6 / (size / 2 ** 30);
  console.log(
    `run ${run}${fill ? ' (fill)' : ''}: ${sizeMiB} MiB in ${seconds.toFixed(2)} s = ${(size / seconds / 1e6).toFixed(0)} MB/s, ${cpuPerGiB.toFixed(2)} CPU-s/GiB ` +
      `(root ${result.merkleRoot.slice(0, 16)}…, rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB)`,
  );
}
await pool.close();

function fileSource(fd: number): PlaintextSource {
  return {
    fill(target) {
      let at = 0;
      for (let n = 1; n > 0 && at < target.length; at += n) n = readSync(fd, target, at, target.length - at, null);
      return at;
    },
  };
}
