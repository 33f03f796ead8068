// A file over 4 GiB (sparse, so the test needs no 4 GiB of real data on the
// source side) goes into an ISO volume as a multi-extent file and restores
// byte-exact. Slow by nature: the whole 4.5 GiB is hashed, encrypted and decrypted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearthJson, hearthOk } from './helpers/cli.ts';
import { writeFile } from './helpers/library.ts';

const BIG = 4.5 * 2 ** 30;
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-big-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

describe('a file larger than 4 GiB', () => {
  it('is packed into a volume and restored byte-exact', async () => {
    const photos = join(work, 'videos');
    mkdirSync(photos);
    const big = join(photos, 'wedding.mkv');
    const fd = openSync(big, 'w');
    for (const at of [0, 2 ** 32 - 3, 2 ** 32 + 4096, BIG - 5]) writeSync(fd, Buffer.from('HEARTH'), 0, 6, at);
    closeSync(fd);
    writeFile(photos, 'small.jpg', 5000, 1);
    const home = join(work, 'home');
    hearthOk(home, ['init', '--json']);
    hearthOk(home, ['source', 'add', photos]);
    mkdirSync(join(work, 'disk'), { recursive: true });
    hearthOk(home, ['target', 'add', 'dir', join(work, 'disk')]);
    hearthOk(home, ['config', 'set', 'volume.size', '1GiB']);
    const report = hearthJson(home, ['backup', '--pack']);
    expect(report.ok).toBe(true);
    expect(report.volumes).toHaveLength(1);
    expect(report.volumes[0].bytes).toBeGreaterThan(BIG);

    const out = join(work, 'out');
    const res = hearthJson(home, ['restore', 'videos/wedding.mkv', '--to', out]);
    expect(res.failed).toEqual([]);
    const restored = join(out, 'videos', 'wedding.mkv');
    expect(statSync(restored).size).toBe(statSync(big).size);
    expect(await sha256File(restored)).toBe(await sha256File(big));
  }, 600_000);
});
