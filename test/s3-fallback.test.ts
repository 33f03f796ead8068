// policy.cold fallback through real processes: a volume gets a cold copy on S3 only
// once fewer than policy.peers relatives have held it for policy.fallbackAfter; with
// the relative back, later volumes stay off S3. The S3 server (fauxqs with the
// archive layer) runs in this process, so every CLI call here is asynchronous.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hearthAsync, hearthAsyncOk } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';
import { coldS3Suite, type ColdS3 } from './helpers/cold-s3.ts';

let work: string;
let s3: ColdS3;
const daemons: RunningDaemon[] = [];
coldS3Suite('hearth-fallback-', (w, s) => {
  work = w;
  s3 = s;
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
});

const ok = hearthAsyncOk;

type ObjectEntry = { id: string; kind: string; placements: Array<{ tier: string; target: string }> };
const objects = async (home: string): Promise<ObjectEntry[]> => JSON.parse(await ok(home, ['objects', '--json'])) as ObjectEntry[];
const coldIds = async (home: string): Promise<string[]> => (await objects(home)).filter((o) => o.placements.some((p) => p.tier === 's3')).map((o) => o.id).sort();
const volumeIds = async (home: string): Promise<string[]> => (await objects(home)).filter((o) => o.kind === 'volume').map((o) => o.id).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function homeWith(name: string, settings: Record<string, string>): Promise<{ home: string; photos: string }> {
  const home = join(work, name);
  const photos = join(work, `photos-${name}`);
  writeFile(photos, 'a/one.jpg', 300_000, 1);
  await ok(home, ['init']);
  await ok(home, ['source', 'add', photos]);
  await ok(home, ['target', 'add', 's3', '--bucket', 'family', '--prefix', name, '--endpoint', s3.endpoint, '--path-style', '--storage-class', 'DEEP_ARCHIVE']);
  for (const [k, v] of Object.entries({ 'volume.size': '1MiB', 'policy.fallbackAfter': '2s', ...settings })) await ok(home, ['config', 'set', k, v]);
  return { home, photos };
}

describe('policy.cold fallback', () => {
  it('without relatives: a volume goes cold once policy.fallbackAfter has passed, not before; never means never', async () => {
    const { home } = await homeWith('alone', {});
    mkdirSync(join(work, 'usb-alone'), { recursive: true });
    await ok(home, ['target', 'add', 'dir', join(work, 'usb-alone')]);
    await ok(home, ['backup', '--pack']);
    const volumes = await volumeIds(home);
    expect(volumes.length).toBeGreaterThan(0);
    expect(await coldIds(home)).toEqual([]);
    await sleep(2100);
    await ok(home, ['backup']);
    expect(await coldIds(home)).toEqual(volumes);

    const never = await homeWith('never', { 'policy.cold': 'never' });
    mkdirSync(join(work, 'usb-never'), { recursive: true });
    await ok(never.home, ['target', 'add', 'dir', join(work, 'usb-never')]);
    await ok(never.home, ['backup', '--pack']);
    await sleep(2100);
    await ok(never.home, ['backup']);
    expect(await coldIds(never.home)).toEqual([]);
  });

  it('with a relative: volumes it holds stay off S3; while it is away new volumes go cold; once it is back they do not', async () => {
    const a = await homeWith('A', { 'policy.peers': '1' });
    const bHome = join(work, 'B');
    await ok(bHome, ['init']);
    const da = await startDaemon(a.home);
    daemons.push(da);
    let db = await startDaemon(bHome);
    daemons.push(db);
    const { code } = JSON.parse(await ok(a.home, ['invite', '--name', 'B', '--json'])) as { code: string };
    await ok(bHome, ['join', code, '--name', 'A']);

    await ok(a.home, ['backup', '--pack']);
    const first = await volumeIds(a.home);
    await sleep(2100);
    await ok(a.home, ['replicate']);
    expect(await coldIds(a.home)).toEqual([]);

    await db.stop();
    writeFile(a.photos, 'b/two.jpg', 300_000, 2);
    await ok(a.home, ['backup', '--pack']);
    const second = (await volumeIds(a.home)).filter((id) => !first.includes(id));
    expect(second.length).toBeGreaterThan(0);
    expect(await coldIds(a.home)).toEqual([]);
    await sleep(2100);
    await ok(a.home, ['replicate']);
    expect(await coldIds(a.home)).toEqual(second);

    db = await startDaemon(bHome);
    daemons.push(db);
    await ok(a.home, ['replicate']);
    writeFile(a.photos, 'c/three.jpg', 300_000, 3);
    await ok(a.home, ['backup', '--pack']);
    await sleep(2100);
    await ok(a.home, ['replicate']);
    expect(await coldIds(a.home)).toEqual(second);
  });
});
