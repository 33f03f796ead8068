// 100,000 file records: appended in batches of 1,000 sharing signed records, as the
// backup engine does, then read back through latest() in path order. Prints the rates; asserts only results.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { deriveKeys } from '../storage/keys.ts';
import { comparePaths } from '../storage/paths.ts';
import { Catalog, type FilePayload } from '../storage/catalog/catalog.ts';

const RECORDS = 100_000;
const BATCH = 1_000;
const tmp = mkdtempSync(join(tmpdir(), 'hearth-catalog-scale-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function record(i: number): FilePayload {
  // Photo-library shaped paths: 100 folders of 1,000 files, written in a shuffled order.
  const n = (i * 7919) % RECORDS;
  return {
    k: 'file', source: 'photos', path: `${2000 + (n % 25)}/album ${Math.floor(n / 1000)}/IMG_${String(n).padStart(6, '0')}.jpg`,
    type: 'file', size: 2_000_000 + n, mtimeMs: 1.7e12 + n * 1000.5, ctimeMs: 1.7e12 + n * 1000.25, ino: 1_000_000 + n,
    mode: 0o100644, uid: 1000, gid: 1000, hash: createHash('sha256').update(`photo ${n}`).digest('hex'), time: 1.75e12,
  };
}

it(`appends ${RECORDS} file records in batches of ${BATCH} and lists them in path order`, async () => {
  const catalog = await Catalog.open(join(tmp, 'catalog'), deriveKeys(randomBytes(32)));
  try {
    const batches = Array.from({ length: RECORDS / BATCH }, (_, b) => Array.from({ length: BATCH }, (_, i) => record(b * BATCH + i)));
    let started = performance.now();
    for (const batch of batches) await catalog.append(batch, { group: true });
    const appendSeconds = (performance.now() - started) / 1000;
    expect(catalog.stats().files.count).toBe(RECORDS);

    started = performance.now();
    let count = 0;
    let previous: string | undefined;
    let ordered = true;
    for await (const file of catalog.latest('photos')) {
      if (previous !== undefined && comparePaths(previous, file.path) >= 0) ordered = false;
      previous = file.path;
      count++;
    }
    const latestSeconds = (performance.now() - started) / 1000;
    expect(count).toBe(RECORDS);
    expect(ordered).toBe(true);

    started = performance.now();
    const verified = await catalog.verify();
    const verifySeconds = (performance.now() - started) / 1000;
    expect(verified).toEqual({ ok: true, records: catalog.head().seq });

    started = performance.now();
    let unpacked = 0;
    for await (const _ of catalog.unpacked()) unpacked++;
    const unpackedSeconds = (performance.now() - started) / 1000;
    expect(unpacked).toBe(RECORDS);

    started = performance.now();
    await catalog.rebuild();
    const rebuildSeconds = (performance.now() - started) / 1000;
    expect(catalog.stats().files.count).toBe(RECORDS);

    const rate = (seconds: number) => `${Math.round(RECORDS / seconds).toLocaleString('en')} records/s (${seconds.toFixed(2)} s)`;
    console.log([
      `append ${RECORDS} in batches of ${BATCH}: ${rate(appendSeconds)}`,
      `latest() iteration: ${rate(latestSeconds)}`,
      `unpacked() iteration: ${rate(unpackedSeconds)}`,
      `verify(): ${rate(verifySeconds)}`,
      `rebuild(): ${rate(rebuildSeconds)}`,
    ].join('\n'));
  } finally {
    await catalog.close();
  }
});
