// What a hostile or careless owner can make a host do, played with the project's
// own protocol clients against real hosts (libp2p nodes over 127.0.0.1, HostStore
// on disk): other bytes under a stored id (the delete delay's bypass), owner-chosen
// Merkle leaf sizes, and a host whose disk is full (a 40 MiB tmpfs as its home).
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Libp2p } from 'libp2p';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { requestAudit, type AuditAnswer } from '../protocol/audit.ts';
import { ObjectClient, RemoteObjectError } from '../protocol/object.ts';
import { hostedBytes } from '../storage/hoststore/host-store.ts';
import { forgetHash } from '../storage/hoststore/kept-hash.ts';
import { MerkleIndexBuilder } from '../storage/hoststore/merkle-index-file.ts';
import { damagedFor, scrubHostStore } from '../storage/hoststore/scrub.ts';
import type { ObjectSource } from '../storage/tier/tier.ts';
import { startAuditHost, type AuditHost } from './audit-fixture.ts';
import { declaredFor, introduce, startNode } from './object-protocol.fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const DAY = 24 * 60 * 60 * 1000;

function sourceOf(data: Buffer): ObjectSource {
  return { size: data.byteLength, open: (offset) => Readable.from([data.subarray(offset)], { objectMode: false }) };
}

/** What put() threw; fails the test when it did not throw. */
async function refusal(promise: Promise<unknown>): Promise<RemoteObjectError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(RemoteObjectError);
  return err as RemoteObjectError;
}

async function flipByte(path: string, at: number): Promise<void> {
  const handle = await open(path, 'r+');
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, at);
  byte[0]! ^= 0x40;
  await handle.write(byte, 0, 1, at);
  await handle.close();
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** A host (object and audit services) for one owner node, its clock and quota the test's. */
class Family {
  now = Date.UTC(2026, 11, 1);
  quota = Infinity;
  readonly log: string[] = [];
  home!: string;
  auditHost!: AuditHost;
  owner!: Libp2p;
  client!: ObjectClient;

  async start(home: string): Promise<void> {
    this.home = home;
    this.owner = await startNode(81);
    this.auditHost = await startAuditHost(82, () => [this.owner.peerId], home, undefined, {
      quotaFor: () => this.quota,
      now: () => this.now,
      log: (line) => this.log.push(line),
    });
    await introduce(this.owner, this.auditHost.node);
    this.client = new ObjectClient({ node: this.owner, peerId: this.auditHost.node.peerId, idleTimeout: 15_000 });
  }

  get store() {
    return this.auditHost.host.store;
  }

  get ownerId(): string {
    return this.owner.peerId.toString();
  }

  put(id: string, data: Buffer): Promise<unknown> {
    return this.client.put(id, sourceOf(data), declaredFor(data));
  }

  async stop(): Promise<void> {
    await this.auditHost?.stop();
    await this.owner?.stop();
  }
}

describe('a stored id keeps its bytes', () => {
  const family = new Family();
  let home: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'hearth-host-limits-'));
    Object.assign(family, new Family());
    await family.start(home);
  });
  afterEach(async () => {
    await family.stop();
    await rm(home, { recursive: true, force: true });
  });

  it('a compromised owner cannot wipe its copies by putting other bytes under their ids, deleted or not', async () => {
    const data = randomBytes(3 * MiB);
    await family.put('victim1', data);
    await family.put('victim2', data.subarray(0, 2 * MiB));
    const deleteAt = await family.client.delete('victim1');
    expect(deleteAt).toBe(family.now + 30 * DAY);
    const usage = await family.client.usage();

    for (const id of ['victim1', 'victim2']) {
      for (const other of [Buffer.alloc(0), randomBytes(2 * MiB), randomBytes(3 * MiB)]) {
        const err = await refusal(family.put(id, other));
        expect(err.code).toBe('EEXIST');
        expect(err.message).toMatch(new RegExp(`^object ${id} is already stored here with other content .*; object ids name their content`));
      }
    }
    expect((await buffer((await family.client.get('victim1')).stream)).equals(data)).toBe(true);
    expect((await buffer((await family.client.get('victim2')).stream)).equals(data.subarray(0, 2 * MiB))).toBe(true);
    expect(await family.client.stat('victim1')).toEqual({ name: 'victim1', size: data.byteLength, deleteAt });
    expect(await family.client.stat('victim2')).toEqual({ name: 'victim2', size: 2 * MiB });
    expect(await family.client.usage()).toEqual(usage);
    expect(await readdir(join(home, 'hosted', family.ownerId, 'partial'))).toEqual([]);
    expect(family.log.filter((line) => line.includes('refused: object victim'))).toHaveLength(6);

    // The delay still runs from the delete: the copy is there until it has passed.
    family.now = deleteAt! - 1;
    expect(await family.store.purgeExpired()).toEqual([]);
    expect((await family.client.stat('victim1')).size).toBe(data.byteLength);
  });

  it('a repair keeps the damaged copy until the new bytes verify, and leaves a pending deletion pending', async () => {
    const data = randomBytes(3 * MiB + 5);
    await family.put('rot1', data);
    const file = family.store.objectFile(family.ownerId, 'rot1');
    await flipByte(file, 2 * MiB);
    const damaged = await readFile(file);
    const { ino } = await stat(file);
    await scrubHostStore(family.store);
    expect(await damagedFor(family.store, family.ownerId)).toEqual(['rot1']);
    const deleteAt = await family.client.delete('rot1');

    // A repair sending bytes that are not the object's is refused; the host keeps what it had.
    const wrong = Buffer.from(data);
    wrong[100]! ^= 1;
    const err = await refusal(family.client.put('rot1', sourceOf(wrong), declaredFor(data)));
    expect(err.code).toBe('EHASH');
    expect((await readFile(file)).equals(damaged)).toBe(true);
    expect((await stat(file)).ino).toBe(ino);

    const repaired = await family.put('rot1', data);
    expect(repaired).toEqual({ offset: 0, sent: data.byteLength });
    expect((await buffer((await family.client.get('rot1')).stream)).equals(data)).toBe(true);
    expect(await family.client.stat('rot1')).toEqual({ name: 'rot1', size: data.byteLength, deleteAt });
    expect(await damagedFor(family.store, family.ownerId)).toEqual([]);
    expect((await family.client.usage()).used).toBe(hostedBytes(data.byteLength));
  });

  it("a repair's upload counts against the quota beside the damaged copy it replaces", async () => {
    const data = randomBytes(2 * MiB);
    family.quota = hostedBytes(data.byteLength) + MiB;
    await family.put('q1', data);
    await flipByte(family.store.objectFile(family.ownerId, 'q1'), 10);

    const err = await refusal(family.put('q1', data));
    expect(err.code).toBe('EQUOTA');
    expect(err.message).toMatch(/beside the damaged copy it repairs/);
    expect((await family.client.usage()).used).toBe(hostedBytes(data.byteLength));

    family.quota = 2 * hostedBytes(data.byteLength);
    await family.put('q1', data);
    expect((await buffer((await family.client.get('q1')).stream)).equals(data)).toBe(true);
    expect((await family.client.usage()).used).toBe(hostedBytes(data.byteLength));
  });
});

describe('one Merkle leaf size', () => {
  const family = new Family();
  let home: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'hearth-host-leaf-'));
    Object.assign(family, new Family());
    await family.start(home);
  });
  afterEach(async () => {
    await family.stop();
    await rm(home, { recursive: true, force: true });
  });

  it('puts and audits with any leaf size but 2 KiB are refused before any work, and the host keeps serving', async () => {
    const data = randomBytes(MiB + 77);
    for (const leafSize of [1, 1024, 4096, 65536]) {
      const err = await refusal(family.client.put('leafy', sourceOf(data), { merkleRoot: declaredFor(data, leafSize).merkleRoot, leafSize }));
      expect(err.code).toBe('EINVAL');
      expect(err.message).toBe(`object leafSize must be 2048 (the Merkle leaf every Hearth catalog records), got ${leafSize}`);
    }
    expect(existsSync(join(home, 'hosted'))).toBe(false);

    await family.put('leafy', data);
    const index = family.auditHost.index;
    const ask = (leafSize: number): Promise<AuditAnswer[]> =>
      collect(requestAudit(family.owner, family.auditHost.node.peerId, { seed: randomBytes(32), objects: [{ id: 'leafy', size: data.byteLength, leafSize, samples: 2 }] }));
    // At 1-byte leaves the host would index the object again, an index as large as the object.
    for (const leafSize of [1, 4096]) await expect(ask(leafSize)).rejects.toThrow();
    expect(index.counters).toMatchObject({ builds: 0, buildBytesRead: 0 });
    const [answer] = await ask(2048);
    expect('proofs' in answer! && answer.proofs).toHaveLength(2);
  });

  it("counts each object's Merkle index in usage, at what it occupies on disk", async () => {
    const size = 9 * MiB + 3;
    await family.put('sized', randomBytes(size));
    const indexBytes = (await stat(family.store.indexFile(family.ownerId, 'sized'))).size;
    expect(indexBytes).toBeGreaterThan(0);
    expect((await family.client.usage()).used).toBe(size + indexBytes);
    expect(hostedBytes(size)).toBe(size + indexBytes);
  });

  it('a put declaring a huge object costs the host a few pages of index memory, not the index', async () => {
    // 64 TiB: its index would be 32 GiB, which hosts used to allocate at the put's start.
    const size = 2 ** 46;
    const sent = randomBytes(3 * MiB);
    const stop = new AbortController();
    const source: ObjectSource = {
      size,
      open: () =>
        Readable.from(
          (async function* () {
            yield sent;
            await sleep(60_000, undefined, { signal: stop.signal }).catch(() => {});
          })(),
          { objectMode: false },
        ),
    };
    const putting = family.client.put('huge', source, { merkleRoot: '0'.repeat(64), leafSize: 2048 }, stop.signal).catch((e: unknown) => e);
    const partial = join(home, 'hosted', family.ownerId, 'partial', 'huge');
    let written = 0;
    for (let i = 0; i < 200 && written < sent.byteLength; i++) {
      await sleep(50);
      written = (await stat(partial).catch(() => ({ size: 0 }))).size;
    }
    stop.abort(new Error('test done'));
    await putting;
    expect(written).toBe(sent.byteLength);
    // The builder itself: a 1 PiB object's index, fed 8 MiB, holds one group per level.
    const before = process.memoryUsage().arrayBuffers;
    const builder = new MerkleIndexBuilder(2 ** 50, 2048, () => {});
    builder.update(randomBytes(8 * MiB));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * MiB);
    // The host serves the next put as before.
    await family.put('after', randomBytes(MiB));
  });
});

describe('a full disk at the host', () => {
  const family = new Family();
  let base: string;
  let home: string;
  let mounted = false;
  let fillers = 0;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'hearth-host-full-'));
    home = join(base, 'home');
    await mkdir(home);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', home], { stdio: 'pipe' });
      mounted = true;
    } catch (err) {
      console.warn(`skipping the full-disk tests: cannot mount a tmpfs (${(err as Error).message.split('\n')[0]})`);
    }
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [home]);
    await rm(base, { recursive: true, force: true });
  });
  beforeEach(async (ctx) => {
    if (!mounted) ctx.skip();
    Object.assign(family, new Family());
    await family.start(home);
  });
  afterEach(async () => {
    await family.stop();
    if (mounted) for (const name of await readdir(home)) await rm(join(home, name), { recursive: true, force: true });
  });

  /** Fill the disk with 1 MiB files (then smaller), leaving about `leave` bytes; returns their names. */
  async function fill(leave = 0): Promise<string[]> {
    const names: string[] = [];
    for (const piece of [MiB, 4 * KiB]) {
      for (let i = 0; i < 1024; i++) {
        const free = await freeBytes();
        if (free - piece < leave) break;
        const name = join(home, `filler-${fillers++}`);
        try {
          await writeFile(name, Buffer.alloc(piece, 1));
        } catch {
          await rm(name, { force: true });
          break;
        }
        names.push(name);
      }
    }
    return names;
  }

  async function freeBytes(): Promise<number> {
    const info = await statfs(home);
    return info.bavail * info.bsize;
  }

  it('refuses a put with "disk full" and the bytes free, logs it, and keeps no reservation', async () => {
    family.quota = hostedBytes(4 * MiB) + hostedBytes(20 * MiB) + 1000;
    const first = randomBytes(4 * MiB);
    await mkdir(join(home, 'hosted', family.ownerId, 'partial'), { recursive: true });
    const fillers = await fill();
    const err = await refusal(family.put('full1', first));
    expect(err.code).toBe('ENOSPC');
    expect(err.message).toMatch(/^disk full at the host: \d+ bytes free/);
    expect(err.free).toBeLessThan(64 * KiB);
    expect(family.log.some((line) => /^put of full1 from \S+ refused: disk full at the host/.test(line))).toBe(true);
    expect(await readdir(join(home, 'hosted', family.ownerId, 'partial'))).toEqual([]);
    expect((await family.client.usage()).used).toBe(0);

    // Space freed: puts that fit the quota are taken (a leaked reservation would refuse the second).
    for (const name of fillers) await rm(name);
    await family.put('full1', first);
    await family.put('full2', randomBytes(20 * MiB));
    expect((await family.client.usage()).used).toBe(family.quota - 1000);
  });

  it('an upload that fills the disk midway is answered "disk full", and its partial and reservation go', async () => {
    await family.put('small', randomBytes(MiB));
    const used = (await family.client.usage()).used;
    await fill(3 * MiB);
    const err = await refusal(family.put('big', randomBytes(12 * MiB)));
    expect(err.code).toBe('ENOSPC');
    expect(err.message).toMatch(/^disk full at the host: \d+ bytes free/);
    expect(await readdir(join(home, 'hosted', family.ownerId, 'partial'))).toEqual([]);
    expect((await family.client.usage()).used).toBe(used);
    expect(await freeBytes()).toBeGreaterThanOrEqual(2 * MiB);
    // The host still serves the owner.
    expect((await buffer((await family.client.get('small')).stream)).byteLength).toBe(MiB);
  });

  it('scrub reads and reports everything read-only when it cannot write its state', async () => {
    await family.put('s1', randomBytes(2 * MiB));
    await family.put('s2', randomBytes(2 * MiB));
    await flipByte(family.store.objectFile(family.ownerId, 's1'), 4096);
    // An object with no kept root: the scrub would keep the one it reads.
    await forgetHash(join(home, 'hosted'), family.ownerId, 's2');
    await fill();
    const report = await scrubHostStore(family.store);
    expect(report.unsaved).toMatch(/ENOSPC.*scrubbed read-only, results not recorded/);
    expect(report.objects).toBe(2);
    expect(report.adopted).toBe(1);
    expect(report.owners[0]!.damaged.map((d) => d.id)).toEqual(['s1']);
  });
});
