// `hearth check` on the home's own directory targets, on real files and processes:
// a flipped byte, a deleted and a truncated object are found, marked, alerted (email
// and webhook on 127.0.0.1) and repaired from the second target; a restore that meets
// a bad copy reports it the same way; with no healthy copy the copy is marked damaged
// and kept; an unmounted disk is not damage. Then with daemons: repair from a
// relative, and a replication pass that meets a bad copy on the target.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { hearth, hearthAsync, hearthJson, hearthOk } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';

let work: string;
let smtp: SMTPServer;
let web: Server;
let smtpPort: number;
let webPort: number;
const mails: Array<{ subject: string; text: string }> = [];
const hooks: any[] = [];
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function flipByte(path: string): void {
  const bytes = readFileSync(path);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
  writeFileSync(path, bytes);
}

/**
 * `hearth check` as a process of its own, leaving this process's event loop free:
 * the mail server and webhook it alerts run here.
 */
async function check(home: string, args: string[] = []): Promise<{ code: number; report: any; stderr: string }> {
  const run = await hearthAsync(home, ['check', ...args, '--json']);
  return { code: run.code, report: run.code === 1 ? undefined : JSON.parse(run.stdout), stderr: run.stderr };
}

function alertSettings(home: string): void {
  const settings: Array<[string, string]> = [
    ['alerts.email.to', 'family@example.org'], ['alerts.smtp.host', '127.0.0.1'], ['alerts.smtp.port', String(smtpPort)],
    ['alerts.smtp.tls', 'none'], ['alerts.webhook', `http://127.0.0.1:${webPort}/hearth`],
  ];
  for (const [k, v] of settings) hearthOk(home, ['config', 'set', k, v]);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hearth-target-check-'));
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _session, done) {
      simpleParser(stream).then((m) => {
        mails.push({ subject: m.subject ?? '', text: m.text ?? '' });
        done();
      }, done);
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  web = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      hooks.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  smtpPort = (smtp.server.address() as AddressInfo).port;
  webPort = (web.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => smtp.close(() => r()));
  await new Promise<void>((r) => web.close(() => r()));
  rmSync(work, { recursive: true, force: true });
});

describe('two directory targets, no daemon', () => {
  let home: string;
  let photos: string;
  let peerId: string;
  const onTarget = (target: string, id: string) => join(work, target, 'hearth', peerId, 'objects', id.slice(0, 2), id);
  const objects = () => hearthJson<any[]>(home, ['objects']);

  beforeAll(() => {
    home = join(work, 'solo');
    photos = join(work, 'solo-photos');
    peerId = hearthJson(home, ['init']).peerId;
    for (let i = 0; i < 8; i++) writeFile(photos, `2025/img-${i}.jpg`, 200_000 + i, 100 + i);
    hearthOk(home, ['source', 'add', photos]);
    hearthOk(home, ['config', 'set', 'volume.size', '512KiB']);
    mkdirSync(join(work, 'usb'), { recursive: true });
    hearthOk(home, ['target', 'add', 'dir', join(work, 'usb'), '--name', 'usb']);
    mkdirSync(join(work, 'nas'), { recursive: true });
    hearthOk(home, ['target', 'add', 'dir', join(work, 'nas'), '--name', 'nas']);
    alertSettings(home);
    hearthJson(home, ['backup']);
  });

  it('a healthy home checks clean, by sizes and by bytes', async () => {
    expect(objects().length).toBeGreaterThanOrEqual(3);
    const sizes = (await check(home)).report;
    expect(sizes.ok).toBe(true);
    expect(sizes.targets.map((t: any) => [t.name, t.objects, t.readObjects])).toEqual([['usb', objects().length, 0], ['nas', objects().length, 0]]);
    const bytes = (await check(home, ['--read-data'])).report;
    expect(bytes.ok).toBe(true);
    expect(bytes.targets.every((t: any) => t.readObjects === t.objects && t.readBytes === t.bytes)).toBe(true);
    // Two targets are two copies, not one file linked twice.
    const [first] = objects();
    expect(readFileSync(onTarget('usb', first.id)).equals(readFileSync(onTarget('nas', first.id)))).toBe(true);
    flipByte(onTarget('usb', first.id));
    expect(sha(onTarget('usb', first.id))).not.toBe(sha(onTarget('nas', first.id)));
    flipByte(onTarget('usb', first.id));
  });

  it('finds a deleted, a truncated and a flipped copy, alerts, and repairs each from the other target', async () => {
    const [flipped, deleted, truncated] = objects();
    const good = (o: any) => sha(onTarget('nas', o.id));
    flipByte(onTarget('usb', flipped.id));
    rmSync(onTarget('usb', deleted.id));
    truncateSync(onTarget('usb', truncated.id), truncated.size - 1000);

    // Sizes only: the deleted and the truncated copy; the flipped byte keeps its size.
    const sizes = await check(home);
    expect(sizes.code, sizes.stderr).toBe(3);
    const first = sizes.report;
    expect(first.ok).toBe(false);
    expect(first.damaged.map((d: any) => [d.target, d.id, d.fault, d.repairedFrom]).sort()).toEqual(
      [['usb', deleted.id, 'missing', 'nas'], ['usb', truncated.id, 'size', 'nas']].sort(),
    );
    expect(sha(onTarget('usb', deleted.id))).toBe(good(deleted));
    expect(sha(onTarget('usb', truncated.id))).toBe(good(truncated));

    // Reading the bytes finds the flip.
    const bytes = await check(home, ['--read-data']);
    expect(bytes.code).toBe(3);
    const second = bytes.report;
    expect(second.damaged).toEqual([expect.objectContaining({ target: 'usb', id: flipped.id, fault: 'merkle', repairedFrom: 'nas' })]);
    expect(sha(onTarget('usb', flipped.id))).toBe(good(flipped));
    // No temp file of the repair is left next to the objects.
    expect(readdirSync(join(onTarget('usb', flipped.id), '..')).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect((await check(home, ['--read-data'])).code).toBe(0);

    // The family was told, by email and webhook, naming the target and the objects.
    const hook = hooks.filter((h) => h.event === 'problem' && h.problem === 'target-damage').at(-1);
    expect(hook.target).toBe('usb');
    expect(hook.objects.sort()).toEqual([flipped.id, deleted.id, truncated.id].sort());
    expect(hook.repaired.sort()).toEqual([flipped.id, deleted.id, truncated.id].sort());
    expect(mails.some((m) => /target usb: 2 damaged or missing objects/.test(m.subject) && m.text.includes(deleted.id))).toBe(true);
    // The clean check resolved it.
    expect(hooks.some((h) => h.event === 'resolved' && h.key === 'target-damage:usb')).toBe(true);
    expect(objects().every((o) => o.placements.length === 2 && o.placements.every((p: any) => p.damaged === undefined))).toBe(true);
  });

  it('a restore that meets a bad copy on the target reports, marks, alerts and repairs it', async () => {
    const victim = objects()[1];
    flipByte(onTarget('usb', victim.id));
    const before = hooks.length;
    const out = join(work, 'restored');
    const run = await hearthAsync(home, ['restore', '--to', out, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.failed).toEqual([]);
    expect(report.damagedCopies).toEqual([expect.objectContaining({ target: 'usb', id: victim.id, fault: 'merkle', repairedFrom: 'nas' })]);
    for (let i = 0; i < 8; i++) expect(sha(join(out, 'solo-photos', `2025/img-${i}.jpg`))).toBe(sha(join(photos, `2025/img-${i}.jpg`)));
    expect(run.stderr).toContain(`target usb: object ${victim.id}`);
    expect(sha(onTarget('usb', victim.id))).toBe(sha(onTarget('nas', victim.id)));
    expect(hooks.slice(before).some((h) => h.problem === 'target-damage' && h.objects.includes(victim.id))).toBe(true);
    expect((await check(home, ['--read-data'])).code).toBe(0);
  });

  it('with no healthy copy left, the copy is marked damaged and kept, once, until it reads well again', async () => {
    const victim = objects()[0];
    const saved = readFileSync(onTarget('usb', victim.id));
    flipByte(onTarget('usb', victim.id));
    flipByte(onTarget('nas', victim.id));
    const { code, report } = await check(home, ['--read-data']);
    expect(code).toBe(3);
    expect(report.damaged.map((d: any) => d.target).sort()).toEqual(['nas', 'usb']);
    expect(report.damaged.every((d: any) => d.repairedFrom === undefined && /no healthy copy/.test(d.repairError))).toBe(true);
    const placements = objects().find((o) => o.id === victim.id).placements;
    expect(placements.map((p: any) => [p.target, /^merkle: /.test(p.damaged)])).toEqual([['nas', true], ['usb', true]]);
    expect(existsSync(onTarget('usb', victim.id))).toBe(true);
    expect(hearthOk(home, ['objects'])).toContain('usb(DAMAGED)');

    // Checked again, still bad: reported again, but nothing more is written to the catalog.
    const head = hearthJson(home, ['status']).catalog.head;
    expect((await check(home, ['--read-data-subset', '0%'])).code).toBe(3);
    expect(hearthJson(home, ['status']).catalog.head).toBe(head);

    // The disk's bytes come back (a good clone, say): the next check clears the mark and repairs the other copy from it.
    writeFileSync(onTarget('usb', victim.id), saved);
    const healed = await check(home, ['--target', 'usb']);
    expect(healed.code, JSON.stringify(healed.report)).toBe(0);
    expect(healed.report.targets.map((t: any) => t.name)).toEqual(['usb']);
    const fixed = await check(home, ['--target', 'nas']);
    expect(fixed.report.damaged).toEqual([expect.objectContaining({ target: 'nas', id: victim.id, repairedFrom: 'usb' })]);
    expect(objects().find((o) => o.id === victim.id).placements.every((p: any) => p.damaged === undefined)).toBe(true);
    expect((await check(home, ['--read-data'])).code).toBe(0);
  });

  it('an unmounted disk is reported as not checked, and nothing is marked damaged', async () => {
    renameSync(join(work, 'usb'), join(work, 'usb-away'));
    try {
      const { code, report } = await check(home);
      expect(code).toBe(3);
      expect(report.damaged).toEqual([]);
      expect(report.targets.find((t: any) => t.name === 'usb').error).toMatch(/mounted/);
      expect(report.targets.find((t: any) => t.name === 'nas').error).toBeUndefined();
      expect(objects().every((o) => o.placements.every((p: any) => p.damaged === undefined))).toBe(true);

      // An empty mount point (the folder is there, the disk is not): not damage either, and nothing is copied onto it.
      mkdirSync(join(work, 'usb'));
      const empty = await check(home);
      expect(empty.code).toBe(3);
      expect(empty.report.damaged).toEqual([]);
      // The target's marker is missing there, so the tier refuses before anything is read or written.
      expect(empty.report.targets.find((t: any) => t.name === 'usb').error).toMatch(/has no \.hearth-target marker, so the disk is not mounted there/);
      expect(readdirSync(join(work, 'usb'))).toEqual([]);
      expect(objects().every((o) => o.placements.every((p: any) => p.damaged === undefined))).toBe(true);
    } finally {
      rmSync(join(work, 'usb'), { recursive: true, force: true });
      renameSync(join(work, 'usb-away'), join(work, 'usb'));
    }
  });

  it('sampling and target selection; bad options get a one-line error', async () => {
    const all = (await check(home, ['--read-data-subset', '100%', '--target', 'nas'])).report;
    expect(all.targets).toEqual([expect.objectContaining({ name: 'nas', readObjects: objects().length })]);
    const none = (await check(home, ['--read-data-subset', '0%'])).report;
    expect(none.targets.every((t: any) => t.readObjects === 0)).toBe(true);
    for (const args of [['--target', 'nope'], ['--read-data-subset', '150%'], ['--read-data', '--read-data-subset', '5%']]) {
      const run = hearth(home, ['check', ...args]);
      expect(run.code).toBe(1);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('a home with a relative: the daemon', () => {
  const daemons: RunningDaemon[] = [];
  const home = (name: string) => join(work, `fam-${name}`);
  let peerId: string;
  const onUsb = (id: string) => join(work, 'fam-usb', 'hearth', peerId, 'objects', id.slice(0, 2), id);
  const hosted = (relative: string, id: string) => join(home(relative), 'hosted', peerId, 'objects', id.slice(0, 2), id);
  const objects = () => hearthJson<any[]>(home('A'), ['objects']);

  beforeAll(async () => {
    for (const name of ['A', 'B', 'C']) {
      hearthJson(home(name), ['init']);
      hearthOk(home(name), ['config', 'set', 'name', name]);
      hearthOk(home(name), ['config', 'set', 'replicate.interval', '1h']);
    }
    const photos = join(work, 'fam-photos');
    for (let i = 0; i < 6; i++) writeFile(photos, `img-${i}.jpg`, 300_000 + i, 700 + i);
    hearthOk(home('A'), ['source', 'add', photos]);
    hearthOk(home('A'), ['config', 'set', 'volume.size', '1MiB']);
    mkdirSync(join(work, 'fam-usb'), { recursive: true });
    hearthOk(home('A'), ['target', 'add', 'dir', join(work, 'fam-usb'), '--name', 'usb']);
    alertSettings(home('A'));
    for (const name of ['A', 'B']) daemons.push(await startDaemon(home(name)));
    peerId = daemons[0]!.peerId;
    hearthJson(home('B'), ['join', hearthJson(home('A'), ['invite']).code]);
    hearthJson(home('A'), ['backup']);
    await eventually(() => objects().every((o) => o.placements.length === 2), 'every object on usb and at B');
  });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
  });

  it('the daemon schedules the check', () => {
    const job = hearthJson(home('A'), ['status']).schedule.find((j: any) => j.name === 'check');
    expect(job.schedule).toBe('22 03:30');
    expect(Date.parse(job.nextRun)).toBeGreaterThan(Date.now());
  });

  it('hearth check through the daemon repairs the only local copy from the relative', async () => {
    const victim = objects()[0];
    flipByte(onUsb(victim.id));
    const run = await check(home('A'), ['--read-data']);
    expect(run.code, run.stderr).toBe(3);
    expect(run.report.damaged).toEqual([expect.objectContaining({ target: 'usb', id: victim.id, fault: 'merkle', repairedFrom: 'relative B' })]);
    expect(sha(onUsb(victim.id))).toBe(sha(hosted('B', victim.id)));
    expect(daemons[0]!.stderr()).toContain(`target usb: object ${victim.id}`);
    expect((await check(home('A'), ['--read-data'])).code).toBe(0);
  });

  it('a replication pass that meets a bad or a missing copy on the target reports and repairs it', async () => {
    const [gone, victim] = objects();
    flipByte(onUsb(victim.id));
    rmSync(onUsb(gone.id));
    const before = hooks.length;
    // A new relative needs a copy; the outbox is gone, so it is sent from the target, which C refuses.
    daemons.push(await startDaemon(home('C')));
    hearthJson(home('C'), ['join', hearthJson(home('A'), ['invite']).code]);
    await eventually(() => existsSync(hosted('C', victim.id)) && sha(onUsb(victim.id)) === sha(hosted('B', victim.id)), 'the bad copy replaced after the pass', 120);
    expect(sha(hosted('C', victim.id))).toBe(sha(hosted('B', victim.id)));
    expect(daemons[0]!.stderr()).toMatch(new RegExp(`target usb: object ${victim.id} \\(volume\\) merkle: .*repaired from relative B`));
    await eventually(() => existsSync(onUsb(gone.id)), 'the missing copy written again');
    expect(sha(onUsb(gone.id))).toBe(sha(hosted('B', gone.id)));
    expect(sha(hosted('C', gone.id))).toBe(sha(hosted('B', gone.id)));
    expect(daemons[0]!.stderr()).toMatch(new RegExp(`target usb: object ${gone.id} \\(volume\\) missing: .*repaired from relative B`));
    await eventually(() => hooks.slice(before).some((h) => h.problem === 'target-damage' && h.objects.includes(victim.id) && h.objects.includes(gone.id)), 'the alert');
    expect(objects().every((o) => o.placements.every((p: any) => p.damaged === undefined))).toBe(true);
  });

  it('a copy no relative online could repair stays marked, and is repaired when one comes back', async () => {
    const victim = objects()[0];
    await daemons[1]!.stop();
    await daemons[2]!.stop();
    flipByte(onUsb(victim.id));
    const run = await check(home('A'), ['--read-data']);
    expect(run.code).toBe(3);
    expect(run.report.damaged).toEqual([expect.objectContaining({ id: victim.id, fault: 'merkle' })]);
    expect(run.report.damaged[0].repairError).toMatch(/no healthy copy is reachable/);
    expect(objects().find((o) => o.id === victim.id).placements.find((p: any) => p.target === 'usb').damaged).toMatch(/^merkle: /);
    // B starts again (on another port) and dials A; the pass that follows repairs the copy.
    daemons[1] = await startDaemon(home('B'));
    await eventually(() => sha(onUsb(victim.id)) === sha(hosted('B', victim.id)), 'the marked copy repaired from B', 120);
    await eventually(() => objects().find((o) => o.id === victim.id).placements.every((p: any) => p.damaged === undefined), 'the mark cleared');
    expect(daemons[0]!.stderr()).toMatch(new RegExp(`target usb: object ${victim.id} \\(volume\\) merkle: .*repaired from relative B`));
  });

  it('the daemon runs the scheduled check, reading check.readDataSubset of the objects', async () => {
    await daemons[0]!.stop();
    const victim = objects()[1];
    flipByte(onUsb(victim.id));
    hearthOk(home('A'), ['config', 'set', 'check.readDataSubset', '100%']);
    // As if the daemon had been off since long before the 22nd: the check is overdue when it starts.
    const stateFile = join(home('A'), 'schedule.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    state.jobs.check = { schedule: '22 03:30', trackedSince: '2000-01-01T00:00:00.000Z' };
    writeFileSync(stateFile, JSON.stringify(state));
    daemons[0] = await startDaemon(home('A'));
    await eventually(() => /scheduled check finished/.test(daemons[0]!.stderr()), 'the scheduled check', 120);
    expect(daemons[0]!.stderr()).toMatch(new RegExp(`target usb: object ${victim.id} \\(volume\\) merkle: .*repaired from relative B`));
    expect(sha(onUsb(victim.id))).toBe(sha(hosted('B', victim.id)));
    const job = JSON.parse(readFileSync(stateFile, 'utf8')).jobs.check;
    expect(job.lastError).toBeUndefined();
    expect(Date.parse(job.lastRun)).toBeGreaterThan(Date.parse('2020-01-01'));
  });
});
