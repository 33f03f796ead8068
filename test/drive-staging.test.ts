// Google Drive as the staging tier, through the real CLI and daemons against the
// Drive emulator (the real googleapis client; HEARTH_TEST_GOOGLE points Hearth at it):
// policy.staging drive puts staged blobs on Drive and a volume retires them there;
// with a relative away past policy.fallbackAfter blobs go to Drive, and leave it
// once the relative holds them; a home whose only place is Drive recovers from the
// phrase and a new Google sign-in alone, byte-exact, through the catalog on Drive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearthAsync, madeDir } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { snapshotTree, writeFile } from './helpers/library.ts';
import { guardChildren, guardLoopback, startDriveEmulator, type DriveEmulator } from './helpers/drive-emulator.ts';
import { signedIn } from './helpers/google-signin.ts';

let work: string;
let emu: DriveEmulator;
let guard: ReturnType<typeof guardLoopback>;
let childGuard: ReturnType<typeof guardChildren>;
let clientFile: string;
const daemons: RunningDaemon[] = [];

beforeAll(async () => {
  guard = guardLoopback();
  work = mkdtempSync(join(tmpdir(), 'hearth-dstage-'));
  emu = await startDriveEmulator();
  emu.addClient('desktop-2.apps.googleusercontent.com', 'GOCSPX-two');
  clientFile = join(work, 'client_secret.json');
  writeFileSync(clientFile, JSON.stringify({ installed: { client_id: 'desktop-2.apps.googleusercontent.com', client_secret: 'GOCSPX-two' } }));
  process.env.HEARTH_TEST_GOOGLE = emu.url;
  childGuard = guardChildren(work);
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  delete process.env.HEARTH_TEST_GOOGLE;
  await emu.stop();
  guard.restore();
  const children = childGuard.violations();
  childGuard.restore();
  rmSync(work, { recursive: true, force: true });
  expect(guard.violations).toEqual([]);
  expect(children).toEqual([]);
});

async function ok(home: string, args: string[]): Promise<string> {
  const r = await hearthAsync(home, args);
  if (r.code !== 0) throw new Error(`hearth ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

type ObjectEntry = { id: string; kind: string; placements: Array<{ tier: string; target: string; location: string }> };
const objects = async (home: string): Promise<ObjectEntry[]> => JSON.parse(await ok(home, ['objects', '--json'])) as ObjectEntry[];
const onDrive = async (home: string, kind?: string): Promise<string[]> => (await objects(home)).filter((o) => (!kind || o.kind === kind) && o.placements.some((p) => p.tier === 'drive')).map((o) => o.id).sort();
const blobIds = async (home: string): Promise<string[]> => (await objects(home)).filter((o) => o.kind === 'blob').map((o) => o.id).sort();
/** What the folder really holds (the catalog's subfolder aside). */
const driveNames = (): string[] => emu.files().filter((f) => f.mimeType !== 'application/vnd.google-apps.folder' && !/^\d{12}-\d{12}$/.test(f.name)).map((f) => f.name).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function driveHome(name: string, settings: Record<string, string>): Promise<{ home: string; photos: string; phrase: string }> {
  const home = join(work, name);
  const photos = join(work, `photos-${name}`);
  writeFile(photos, 'a/one.jpg', 300_000, 1);
  writeFile(photos, 'a/two.jpg', 5000, 2);
  const { phrase } = JSON.parse(await ok(home, ['init', '--json'])) as { phrase: string };
  await ok(home, ['source', 'add', photos]);
  await signedIn(home, clientFile);
  await ok(home, ['target', 'add', 'drive', '--folder', `Hearth ${name}`]);
  for (const [k, v] of Object.entries({ 'volume.size': '1MiB', ...settings })) await ok(home, ['config', 'set', k, v]);
  return { home, photos, phrase };
}

describe('Drive as the staging tier', () => {
  it('policy.staging drive: staged blobs go to Drive at once; once a volume holds them, their Drive copies are deleted', async () => {
    const { home, photos } = await driveHome('always', { 'policy.staging': 'drive' });
    await ok(home, ['target', 'add', 'dir', madeDir(join(work, 'usb-always'))]);
    // A source's first backup packs into a volume; later new files are staged as blobs.
    await ok(home, ['backup']);
    writeFile(photos, 'b/new1.jpg', 40_000, 11);
    writeFile(photos, 'b/new2.jpg', 7000, 12);
    await ok(home, ['backup']);
    const blobs = await blobIds(home);
    expect(blobs.length).toBe(2);
    expect(await onDrive(home)).toEqual(blobs);
    expect(driveNames()).toEqual(expect.arrayContaining(blobs));
    const status = JSON.parse(await ok(home, ['status', '--json'])) as { drive: Array<{ target: string; objects: number; why: Record<string, number> }> };
    expect(status.drive).toEqual([expect.objectContaining({ target: 'drive', objects: 2, why: { 'staged: policy.staging drive': 2 } })]);
    expect(await ok(home, ['cost'])).toMatch(/^drive: Hearth keeps .* on Google Drive \(drive\.maxUse 9\.31 GiB\); the account uses .* of its 15\.0 GiB free quota, shared with Gmail and Photos; \$0$/m);
    const location = (await objects(home)).find((o) => o.id === blobs[0])!.placements.find((p) => p.tier === 'drive')!.location;
    expect(location).toBe(`drive://${emu.files().find((f) => f.name === `Hearth always`)!.id}/${emu.files().find((f) => f.name === blobs[0])!.id}`);

    writeFile(photos, 'b/three.jpg', 2000, 3);
    await ok(home, ['backup', '--pack']);
    expect(await blobIds(home)).toEqual([]);
    // Volumes go to the directory target, not to Drive; no staged copy is left there.
    expect(await onDrive(home)).toEqual([]);
    for (const id of blobs) expect(driveNames()).not.toContain(id);
  });

  it('with a relative away past policy.fallbackAfter, blobs go to Drive; when it holds them again, they leave Drive', async () => {
    const a = await driveHome('A', { 'policy.peers': '1', 'policy.fallbackAfter': '1h' });
    const bHome = join(work, 'B');
    await ok(bHome, ['init']);
    const da = await startDaemon(a.home);
    daemons.push(da);
    let db = await startDaemon(bHome);
    daemons.push(db);
    const { code } = JSON.parse(await ok(a.home, ['invite', '--name', 'B', '--json'])) as { code: string };
    await ok(bHome, ['join', code, '--name', 'A']);
    await ok(a.home, ['backup']);
    await db.stop();
    writeFile(a.photos, 'b/new1.jpg', 40_000, 11);
    writeFile(a.photos, 'b/new2.jpg', 7000, 12);
    await ok(a.home, ['backup']);
    const blobs = await blobIds(a.home);
    expect(blobs.length).toBe(2);
    await ok(a.home, ['replicate']);
    expect(await onDrive(a.home)).toEqual([]);
    // The daemon reads the config at each operation: the blobs are now older than this.
    await ok(a.home, ['config', 'set', 'policy.fallbackAfter', '1s']);
    await sleep(1100);
    await ok(a.home, ['replicate']);
    expect(await onDrive(a.home)).toEqual(blobs);
    for (const id of blobs) expect(driveNames()).toContain(id);
    expect(await ok(a.home, ['status'])).toMatch(/^on drive drive: 2 objects, .* \(2 staged: 0 of policy\.peers 1 relatives hold it\)$/m);

    db = await startDaemon(bHome);
    daemons.push(db);
    await ok(a.home, ['replicate']);
    const now = await objects(a.home);
    for (const id of blobs) expect(now.find((o) => o.id === id)!.placements.map((p) => p.tier)).toEqual(['peer']);
    expect(await onDrive(a.home)).toEqual([]);
    for (const id of blobs) expect(driveNames()).not.toContain(id);
  });

  it('with a relative and policy.staging drive, a volume the relative holds retires the staged blobs there and on Drive', async () => {
    const a = await driveHome('R', { 'policy.peers': '1', 'policy.staging': 'drive' });
    const bHome = join(work, 'B-retire');
    await ok(bHome, ['init']);
    daemons.push(await startDaemon(a.home), await startDaemon(bHome));
    const { code } = JSON.parse(await ok(a.home, ['invite', '--name', 'B', '--json'])) as { code: string };
    await ok(bHome, ['join', code, '--name', 'A']);
    await ok(a.home, ['backup']);
    writeFile(a.photos, 'b/new1.jpg', 40_000, 21);
    writeFile(a.photos, 'b/new2.jpg', 7000, 22);
    await ok(a.home, ['backup']);
    await ok(a.home, ['replicate']);
    const blobs = await blobIds(a.home);
    expect(blobs.length).toBe(2);
    for (const id of blobs) expect((await objects(a.home)).find((o) => o.id === id)!.placements.map((p) => p.tier).sort()).toEqual(['drive', 'peer']);

    await ok(a.home, ['backup', '--pack']);
    await ok(a.home, ['replicate']);
    expect(await blobIds(a.home)).toEqual([]);
    for (const id of blobs) expect(driveNames()).not.toContain(id);
    const volumes = (await objects(a.home)).filter((o) => o.kind === 'volume');
    expect(volumes.every((v) => v.placements.some((p) => p.tier === 'peer'))).toBe(true);
  });

  it('disaster: the phrase and a new Google sign-in bring every file back byte-exact from Drive alone', async () => {
    const { home, photos, phrase } = await driveHome('fire', {});
    await ok(home, ['backup']);
    writeFile(photos, 'after/more.jpg', 70_000, 9);
    await ok(home, ['backup', '--pack']);
    expect((await onDrive(home)).length).toBeGreaterThan(0);
    const phraseFile = join(work, 'fire-phrase.txt');
    writeFileSync(phraseFile, phrase);
    rmSync(home, { recursive: true, force: true });

    const fresh = join(work, 'fire-recovered');
    await ok(fresh, ['init', '--recover', '--phrase-file', phraseFile]);
    await signedIn(fresh, clientFile);
    const added = await ok(fresh, ['target', 'add', 'drive', '--folder', 'Hearth fire']);
    expect(added).toMatch(/recovered this home's catalog from drive: \d+ records/);
    const to = join(work, 'restored-fire');
    await ok(fresh, ['restore', '--to', to]);
    expect(snapshotTree(join(to, `photos-fire`))).toEqual(snapshotTree(photos));
  });

  it('a full Drive, a rate limit and a lapsed sign-in: one clear line each, the files safe on the disk, Drive filled in later', async () => {
    const { home, photos } = await driveHome('faults', { 'policy.staging': 'drive' });
    await ok(home, ['target', 'add', 'dir', madeDir(join(work, 'usb-faults'))]);
    await ok(home, ['backup']);
    writeFile(photos, 'c/full.jpg', 9000, 21);
    emu.setQuota({ otherUsage: 15 * 1024 ** 3 });
    const full = await hearthAsync(home, ['backup']);
    emu.setQuota({ otherUsage: 0 });
    expect(full.code).toBe(3);
    // One line for the staged copy, one for the catalog's copy: both need space.
    const fullLines = full.stderr.split('\n').filter((l) => /Drive is full/.test(l));
    expect(fullLines).toHaveLength(2);
    expect(fullLines[1]).toMatch(/^catalog upload to drive failed: /);
    expect(fullLines[0]).toMatch(/staged copy of [0-9a-f]{12} to drive failed: drive target drive \(folder Hearth faults\): Google Drive is full \(.* shared with Gmail and Photos\)/);
    const [blob] = await blobIds(home);
    expect((await objects(home)).find((o) => o.id === blob)!.placements.map((p) => p.tier)).toEqual(['dir']);

    emu.inject('upload-multipart', { status: 429, reason: 'rateLimitExceeded', times: 1 });
    await ok(home, ['backup']);
    expect(await onDrive(home)).toEqual([blob]);

    writeFile(photos, 'c/lapsed.jpg', 9000, 22);
    emu.revokeRefreshTokens();
    const lapsed = await hearthAsync(home, ['backup']);
    expect(lapsed.code).toBe(3);
    expect(lapsed.stderr).toMatch(/the Google sign-in has expired or was revoked \(invalid_grant\): run "hearth auth google --client FILE" again/);
    expect(await onDrive(home)).toEqual([blob]);
    expect((await blobIds(home)).length).toBe(2);
  });

  it('the monthly check lists the folder once, finds a copy deleted or replaced in Drive and puts it back from the disk, reading nothing', async () => {
    const { home, photos } = await driveHome('check', { 'policy.staging': 'drive' });
    await ok(home, ['target', 'add', 'dir', madeDir(join(work, 'usb-check')), '--name', 'usb']);
    await ok(home, ['backup']);
    writeFile(photos, 'c/one.jpg', 9000, 31);
    writeFile(photos, 'c/two.jpg', 9000, 32);
    await ok(home, ['backup']);
    const staged = await onDrive(home);
    expect(staged).toHaveLength(2);
    const listsBefore = emu.count('list');
    const readsBefore = emu.count('media');
    const clean = JSON.parse(await ok(home, ['check', '--read-data', '--target', 'drive', '--json'])) as { ok: boolean; targets: unknown[] };
    expect(clean.ok).toBe(true);
    expect(clean.targets).toEqual([expect.objectContaining({ name: 'drive', kind: 'drive', objects: 2, readObjects: 0, requests: { list: 1, head: 0, dollars: 0 } })]);
    expect(emu.count('list')).toBe(listsBefore + 1);
    expect(emu.count('media')).toBe(readsBefore);

    emu.remove(emu.files().find((f) => f.name === staged[0])!.id);
    const r = await hearthAsync(home, ['check', '--json']);
    expect(r.code, r.stderr).toBe(3);
    const found = JSON.parse(r.stdout) as { damaged: Array<{ id: string; target: string; fault: string; repairedFrom?: string }> };
    expect(found.damaged).toEqual([expect.objectContaining({ id: staged[0], target: 'drive', fault: 'missing', repairedFrom: 'usb' })]);
    expect(driveNames()).toContain(staged[0]);
    expect(JSON.parse(await ok(home, ['check', '--json'])).ok).toBe(true);

    // Other bytes of the same length: only Drive's checksum, recorded when the copy was placed, tells.
    emu.corrupt(emu.files().find((f) => f.name === staged[1])!.id);
    const reads = emu.count('media');
    const changed = await hearthAsync(home, ['check', '--target', 'drive', '--json']);
    expect(changed.code, changed.stderr).toBe(3);
    const report = JSON.parse(changed.stdout) as { damaged: Array<{ id: string; target: string; fault: string; detail: string; repairedFrom?: string }>; targets: unknown[] };
    expect(report.damaged).toEqual([expect.objectContaining({ id: staged[1], target: 'drive', fault: 'checksum', repairedFrom: 'usb' })]);
    expect(report.damaged[0]!.detail).toMatch(/its bytes on drive were replaced: the store keeps sha256 /);
    expect(report.targets).toEqual([expect.objectContaining({ name: 'drive', requests: { list: 1, head: 0, dollars: 0 } })]);
    // Nothing was read from Drive: the repair came from the disk (its put may look the file up, so lists are not counted here).
    expect(emu.count('media')).toBe(reads);
    expect(JSON.parse(await ok(home, ['check', '--target', 'drive', '--json'])).ok).toBe(true);
  });
});
