import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostStore } from '../storage/hoststore/host-store.ts';
import { keptHashPath, readKeptHash } from '../storage/hoststore/kept-hash.ts';
import { damagedFor, scrubHostStore, scrubStateFor, scrubStatePath, type ScrubClock } from '../storage/hoststore/scrub.ts';
import { declaredFor } from './object-protocol.fixture.ts';

const OWNER = '12D3KooWOwnerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const OTHER = '12D3KooWOtherBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const MiB = 1024 * 1024;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function put(store: HostStore, owner: string, id: string, data: Buffer): Promise<void> {
  const upload = await store.beginPut(owner, id, declaredFor(data));
  if (!upload.alreadyStored) await upload.write([data.subarray(upload.offset)]);
  await upload.finish();
}

async function flipByte(path: string, at: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0]! ^= 0x01;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}

/** A clock that only moves when the scrub sleeps; `onSleep` runs inside the first sleeps. */
function fakeClock(onSleep?: (ms: number) => Promise<void>): ScrubClock & { slept: number } {
  let now = Date.UTC(2026, 10, 1);
  const clock = {
    slept: 0,
    now: () => now,
    sleep: async (ms: number) => {
      clock.slept += ms;
      now += ms;
      await onSleep?.(ms);
    },
  };
  return clock;
}

describe('host scrub', () => {
  let home: string;
  let store: HostStore;
  const data = new Map<string, Buffer>();

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'hearth-scrub-'));
    store = new HostStore({ home, quotaFor: () => Infinity });
    data.clear();
    for (const [owner, id, size] of [
      [OWNER, 'aa01', 200_000],
      [OWNER, 'bb02', 3 * MiB + 17],
      [OWNER, 'cc03', 150_000],
      [OWNER, 'dd04', 0],
      [OTHER, 'ee05', 100_000],
    ] as const) {
      const bytes = randomBytes(size);
      data.set(id, bytes);
      await put(store, owner, id, bytes);
    }
  });

  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('keeps the verified hash of every published object', async () => {
    expect(await readKeptHash(join(home, 'hosted'), OWNER, 'bb02')).toEqual(declaredFor(data.get('bb02')!));
    expect(await readKeptHash(join(home, 'hosted'), OTHER, 'ee05')).toEqual(declaredFor(data.get('ee05')!));
    // Listing objects is unaffected by the kept hashes.
    const listed = [];
    for await (const o of store.list(OWNER)) listed.push(o.name);
    expect(listed).toEqual(['aa01', 'bb02', 'cc03', 'dd04']);
  });

  it('finds nothing in healthy objects', async () => {
    const report = await scrubHostStore(store);
    expect(report.objects).toBe(5);
    expect(report.bytes).toBe(200_000 + 3 * MiB + 17 + 150_000 + 100_000);
    expect(report.adopted).toBe(0);
    expect(report.owners.map((o) => [o.owner, o.objects, o.damaged])).toEqual([
      [OTHER, 1, []],
      [OWNER, 4, []],
    ]);
    expect(await damagedFor(store, OWNER)).toEqual([]);
    expect((await scrubStateFor(store, OWNER)).lastComplete).toMatchObject({ objects: 4, adopted: 0 });
  });

  it('finds a flipped byte and a truncated object, for their owner only', async () => {
    await flipByte(store.objectFile(OWNER, 'bb02'), 2 * MiB + 5);
    await truncate(store.objectFile(OWNER, 'cc03'), 100_000);
    const report = await scrubHostStore(store);
    const mine = report.owners.find((o) => o.owner === OWNER)!;
    expect(mine.damaged.map((d) => [d.id, d.reason])).toEqual([
      ['bb02', 'corrupted'],
      ['cc03', 'truncated'],
    ]);
    expect(mine.damaged[1]!.detail).toBe('100000 of its 150000 bytes are left');
    expect(report.owners.find((o) => o.owner === OTHER)!.damaged).toEqual([]);
    expect(await damagedFor(store, OWNER)).toEqual(['bb02', 'cc03']);
    expect(await damagedFor(store, OTHER)).toEqual([]);
  });

  it('keeps the damage list across restarts and clears an entry once the object is put again', async () => {
    await flipByte(store.objectFile(OWNER, 'aa01'), 0);
    await flipByte(store.objectFile(OWNER, 'cc03'), 149_999);
    await scrubHostStore(store);
    const state = JSON.parse(await readFile(scrubStatePath(store, OWNER), 'utf8'));
    expect(state.damaged.map((d: { id: string }) => d.id)).toEqual(['aa01', 'cc03']);

    const restarted = new HostStore({ home, quotaFor: () => Infinity });
    expect(await damagedFor(restarted, OWNER)).toEqual(['aa01', 'cc03']);
    // The owner repairs aa01 with the same bytes it first sent.
    await put(restarted, OWNER, 'aa01', data.get('aa01')!);
    expect(await readFile(restarted.objectFile(OWNER, 'aa01'))).toEqual(data.get('aa01'));
    expect(await damagedFor(restarted, OWNER)).toEqual(['cc03']);

    const again = await scrubHostStore(restarted);
    expect(again.owners.find((o) => o.owner === OWNER)!.damaged.map((d) => d.id)).toEqual(['cc03']);
    expect(JSON.parse(await readFile(scrubStatePath(store, OWNER), 'utf8')).damaged.map((d: { id: string }) => d.id)).toEqual(['cc03']);
  });

  it('adopts the hash of objects stored before hashes were kept, or kept in an older form, then judges them', async () => {
    await rm(join(home, 'hosted', OWNER, 'hashes'), { recursive: true });
    // The form kept before the Merkle root was: a whole-object SHA-256.
    await writeFile(keptHashPath(join(home, 'hosted'), OTHER, 'ee05'), JSON.stringify({ sha256: sha256(data.get('ee05')!), size: 100_000 }));
    const first = await scrubHostStore(store);
    expect(first.adopted).toBe(5);
    expect(first.owners.flatMap((o) => o.damaged)).toEqual([]);
    expect(await readKeptHash(join(home, 'hosted'), OWNER, 'cc03')).toEqual(declaredFor(data.get('cc03')!));
    expect(await readKeptHash(join(home, 'hosted'), OTHER, 'ee05')).toEqual(declaredFor(data.get('ee05')!));

    await flipByte(store.objectFile(OWNER, 'cc03'), 7);
    const second = await scrubHostStore(store);
    expect(second.adopted).toBe(0);
    expect(second.owners.find((o) => o.owner === OWNER)!.damaged.map((d) => [d.id, d.reason])).toEqual([['cc03', 'corrupted']]);
  });

  it('drops the kept hash and the damage entry of a purged object', async () => {
    let now = Date.UTC(2026, 10, 1);
    const timed = new HostStore({ home, quotaFor: () => Infinity, deleteDelay: 1000, now: () => now });
    await flipByte(timed.objectFile(OWNER, 'aa01'), 1);
    await scrubHostStore(timed);
    expect(await damagedFor(timed, OWNER)).toEqual(['aa01']);
    await timed.delete(OWNER, 'aa01');
    now += 1001;
    await timed.purgeExpired();
    expect(existsSync(keptHashPath(join(home, 'hosted'), OWNER, 'aa01'))).toBe(false);
    expect(await damagedFor(timed, OWNER)).toEqual([]);
  });

  it('skips objects whose deletion is pending', async () => {
    await flipByte(store.objectFile(OWNER, 'aa01'), 1);
    await store.delete(OWNER, 'aa01');
    const report = await scrubHostStore(store);
    expect(report.objects).toBe(4);
    expect(await damagedFor(store, OWNER)).toEqual([]);
  });

  it('reads no faster than the rate limit, pacing the whole scrub', async () => {
    const clock = fakeClock();
    const progress: number[] = [];
    const report = await scrubHostStore(store, { rateLimit: MiB, clock, onProgress: (p) => progress.push(p.bytes) });
    // The clock moves only in sleeps, so the scrub slept as long as reading at 1 MiB/s takes.
    expect(clock.slept).toBeCloseTo((report.bytes / MiB) * 1000, 0);
    expect(progress.at(-1)).toBe(report.bytes);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));

    const unlimited = fakeClock();
    await scrubHostStore(store, { clock: unlimited });
    expect(unlimited.slept).toBe(0);
  });

  it('does not blame a damaged copy that is replaced while it is being read', async () => {
    await flipByte(store.objectFile(OWNER, 'bb02'), 10);
    let readingBb02 = false;
    let repaired = false;
    // The owner's good copy lands between two 1 MiB reads of bb02 (ee05 and aa01 come before it).
    const clock = fakeClock(async () => {
      if (!readingBb02 || repaired) return;
      repaired = true;
      await put(store, OWNER, 'bb02', data.get('bb02')!);
    });
    const onProgress = (p: { owner: string; objects: number }) => {
      readingBb02 = p.owner === OWNER && p.objects === 2;
    };
    const report = await scrubHostStore(store, { rateLimit: 100 * MiB, clock, onProgress });
    expect(repaired).toBe(true);
    expect(report.owners.find((o) => o.owner === OWNER)!.damaged).toEqual([]);
    expect(await damagedFor(store, OWNER)).toEqual([]);
  });

  it('on abort keeps the damage found so far and the unchecked entries of the previous scrub', async () => {
    await flipByte(store.objectFile(OWNER, 'aa01'), 3);
    await flipByte(store.objectFile(OWNER, 'cc03'), 3);
    await scrubHostStore(store);
    expect(await damagedFor(store, OWNER)).toEqual(['aa01', 'cc03']);

    // Repair aa01, damage bb02, and stop the next scrub inside bb02 (after aa01 was judged).
    await put(store, OWNER, 'aa01', data.get('aa01')!);
    await flipByte(store.objectFile(OWNER, 'bb02'), 5);
    await flipByte(store.objectFile(OWNER, 'aa01'), 9);
    const controller = new AbortController();
    const stopped = scrubHostStore(store, {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.bytes > 100_000 + 200_000 + MiB) controller.abort(new Error('stop'));
      },
    });
    await expect(stopped).rejects.toThrow('stop');
    // aa01 was found damaged again in this pass; cc03 lies past the stop and keeps its entry.
    expect(await damagedFor(store, OWNER)).toEqual(['aa01', 'cc03']);
  });
});
