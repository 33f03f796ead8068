// Monthly checks across three daemons on 127.0.0.1: a relative's scrub finds a
// damaged copy, the owner learns of it and repairs it from the other relative;
// drift shows what changed locally since the backup.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearth, hearthAsync, hearthJson, hearthOk } from './helpers/cli.ts';
import { eventually, startDaemon, type RunningDaemon } from './helpers/daemon.ts';
import { writeFile } from './helpers/library.ts';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

let work: string;
const daemons: RunningDaemon[] = [];
const mails: Array<{ subject: string; text: string }> = [];
const hooks: any[] = [];
let smtp: SMTPServer;
let web: Server;
const home = (name: string) => join(work, name);
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hearth-checks-'));
  for (const name of ['A', 'B', 'C']) {
    hearthJson(home(name), ['init']);
    hearthOk(home(name), ['config', 'set', 'name', name]);
    hearthOk(home(name), ['config', 'set', 'replicate.interval', '1h']);
  }
  const photos = join(work, 'photos');
  for (let i = 0; i < 6; i++) writeFile(photos, `2025/img-${i}.jpg`, 300_000 + i, 500 + i);
  hearthOk(home('A'), ['source', 'add', photos]);
  hearthOk(home('A'), ['config', 'set', 'volume.size', '1MiB']);
  // A local mail server and webhook receiver for A's alerts.
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
  const smtpPort = (smtp.server.address() as AddressInfo).port;
  const webPort = (web.address() as AddressInfo).port;
  for (const [k, v] of [['alerts.email.to', 'family@example.org'], ['alerts.smtp.host', '127.0.0.1'], ['alerts.smtp.port', String(smtpPort)], ['alerts.smtp.tls', 'none'], ['alerts.webhook', `http://127.0.0.1:${webPort}/hearth`]]) {
    hearthOk(home('A'), ['config', 'set', k!, v!]);
  }
  for (const name of ['A', 'B', 'C']) daemons.push(await startDaemon(home(name)));
  for (const relative of ['B', 'C']) {
    const { code } = hearthJson(home('A'), ['invite']);
    hearthJson(home(relative), ['join', code]);
  }
  hearthJson(home('A'), ['backup']);
  await eventually(() => hearthJson<any[]>(home('A'), ['objects']).every((o) => o.placements.length === 2), 'objects at both relatives');
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  await new Promise<void>((r) => smtp.close(() => r()));
  await new Promise<void>((r) => web.close(() => r()));
  rmSync(work, { recursive: true, force: true });
});

function hostedFile(relative: string, id: string): string {
  return join(home(relative), 'hosted', daemons[0]!.peerId, 'objects', id.slice(0, 2), id);
}

describe('audits', () => {
  it('all audits pass on healthy relatives, and verify --json says what was covered', async () => {
    const run = await hearthAsync(home('A'), ['verify', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const reports = JSON.parse(run.stdout) as any[];
    const objects = hearthJson<any[]>(home('A'), ['objects']);
    expect(reports.map((r) => r.peer).sort()).toEqual(['B', 'C']);
    for (const r of reports) {
      expect(r.passed).toBe(true);
      expect(r.objects).toBe(objects.length);
      expect(r.bytes).toBe(objects.reduce((n, o) => n + o.size, 0));
      expect(r.samples).toBeGreaterThanOrEqual(459);
      expect(r.failedObjects).toEqual([]);
      expect(r.bytesTransferred).toBeGreaterThan(0);
    }
  });

  it('an object deleted on C fails C\'s next audit, is repaired from B, and the family is alerted', async () => {
    const victim = hearthJson<any[]>(home('A'), ['objects'])[1];
    rmSync(hostedFile('C', victim.id));
    const run = await hearthAsync(home('A'), ['verify', '--peer', 'C', '--json']);
    expect(run.code).toBe(3);
    const [report] = JSON.parse(run.stdout) as any[];
    expect(report.peer).toBe('C');
    expect(report.passed).toBe(false);
    expect(report.failedObjects).toEqual([victim.id]);
    const mail = mails.find((m) => /C failed the audit/.test(m.subject));
    expect(mail?.text).toContain(victim.id);
    expect(hooks.find((h) => h.problem === 'audit-failed')?.objects).toEqual([victim.id]);

    // A failed audit starts a replication pass by itself; one more makes sure it ran.
    expect((await hearthAsync(home('A'), ['replicate', '--json'])).code).toBe(0);
    expect(existsSync(hostedFile('C', victim.id))).toBe(true);
    expect(sha(hostedFile('C', victim.id))).toBe(sha(hostedFile('B', victim.id)));
    expect(hearthJson<any[]>(home('A'), ['objects']).find((o) => o.id === victim.id).placements).toHaveLength(2);
    const again = await hearthAsync(home('A'), ['verify', '--peer', 'C', '--json']);
    expect(again.code, again.stdout).toBe(0);
  });
});

describe('scrub and repair', () => {
  it('a byte flipped on B is found by B\'s scrub, reported to A, repaired from C, and A is alerted', async () => {
    const victim = hearthJson<any[]>(home('A'), ['objects'])[0];
    const onB = hostedFile('B', victim.id);
    const good = sha(hostedFile('C', victim.id));
    expect(sha(onB)).toBe(good);
    const bytes = readFileSync(onB);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
    writeFileSync(onB, bytes);

    const scrub = hearth(home('B'), ['scrub', '--json']);
    expect(scrub.code, scrub.stdout + scrub.stderr).toBe(3);
    const damaged = JSON.parse(scrub.stdout).owners.flatMap((o: any) => o.damaged.map((d: any) => d.id));
    expect(damaged).toEqual([victim.id]);

    const replicated = await hearthAsync(home('A'), ['replicate', '--json']);
    expect(replicated.code, replicated.stderr).toBe(0);
    const rep = JSON.parse(replicated.stdout);
    expect(rep.repaired).toEqual([{ id: victim.id, peer: 'B', reason: 'scrub' }]);
    expect(rep.placed).toContainEqual({ id: victim.id, peer: 'B' });
    expect(sha(onB)).toBe(good);
    const again = JSON.parse(hearthOk(home('B'), ['scrub', '--json']));
    expect(again.owners.flatMap((o: any) => o.damaged)).toEqual([]);
    const placements = hearthJson<any[]>(home('A'), ['objects']).find((o) => o.id === victim.id).placements;
    expect(placements).toHaveLength(2);

    // The owner was told, once, by email and webhook, naming the relative and the object.
    const damageMails = mails.filter((m) => /B found 1 damaged object/.test(m.subject));
    expect(damageMails).toHaveLength(1);
    expect(damageMails[0]!.text).toContain(victim.id);
    const hook = hooks.find((h) => h.event === 'problem' && h.problem === 'scrub-damage');
    expect(hook.relative).toBe('B');
    expect(hook.objects).toEqual([victim.id]);
  });

  it('hearth alert test reaches both channels', async () => {
    const run = await hearthAsync(home('A'), ['alert', 'test', '--json']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const results = JSON.parse(run.stdout) as any[];
    expect(results.map((r) => [r.channel, r.ok])).toEqual([['email', true], ['webhook', true]]);
    expect(hooks.some((h) => h.event === 'test')).toBe(true);
  });
});

describe('drift', () => {
  it('reports files changed or missing locally since their backup', () => {
    const photos = join(work, 'photos');
    writeFile(photos, '2025/img-0.jpg', 300_001, 999);
    unlinkSync(join(photos, '2025/img-1.jpg'));
    writeFile(photos, '2025/new.jpg', 10, 998);
    const [report] = hearthJson<any[]>(home('A'), ['drift']);
    expect(report.source).toBe('photos');
    expect(report.changed).toEqual(['2025/img-0.jpg']);
    expect(report.missing).toEqual(['2025/img-1.jpg']);
    expect(report.new).toEqual(['2025/new.jpg']);
    expect(report.backup.files).toBe(6);
    expect(report.local.files).toBe(6);
  });
});

describe('a relative that sleeps', () => {
  it('is unreachable, not failed: exit 5, its copies stay, no alert until policy.unreachableAfter; it passes again once awake', async () => {
    const c = daemons[2]!;
    const before = hearthJson<any[]>(home('A'), ['objects']);
    const mailsBefore = mails.length;
    const seenBefore = hearthJson<any[]>(home('A'), ['peers']).find((p) => p.name === 'C').lastSeen;
    // A suspended process: its connection to A stays open, but nothing answers.
    c.process.kill('SIGSTOP');
    try {
      const run = await hearthAsync(home('A'), ['verify', '--peer', 'C', '--json']);
      expect(run.code, run.stderr).toBe(5);
      const [report] = JSON.parse(run.stdout) as any[];
      expect(report).toMatchObject({ peer: 'C', status: 'unreachable', passed: false, failedObjects: [] });
      expect(report.unreached.sort()).toEqual(before.map((o) => o.id).sort());
      expect(Date.parse(report.lastSeen)).toBeGreaterThanOrEqual(Date.parse(seenBefore));
      const text = await hearthAsync(home('A'), ['verify', '--peer', 'C']);
      expect(text.code).toBe(5);
      expect(text.stdout).toMatch(/C\s+unreachable/);
      expect(text.stdout).not.toMatch(/FAILED/);
      expect(hearthJson<any[]>(home('A'), ['objects'])).toEqual(before);
      expect(mails.slice(mailsBefore)).toEqual([]);

      // Unreachable for longer than policy.unreachableAfter: now the family hears of it, once.
      // (20 s, not less: B, which answers, is last seen at the start of each replication pass.)
      hearthOk(home('A'), ['config', 'set', 'policy.unreachableAfter', '20s']);
      const seenC = Date.parse(report.lastSeen);
      await new Promise((r) => setTimeout(r, Math.max(0, seenC + 21_000 - Date.now())));
      const late = await hearthAsync(home('A'), ['verify', '--peer', 'C', '--json']);
      expect(late.code).toBe(5);
      const alerts = mails.slice(mailsBefore);
      expect(alerts.map((m) => m.subject)).toEqual([expect.stringMatching(/C unreachable since/)]);
      expect(alerts.some((m) => /could not prove/.test(m.text))).toBe(false);
      expect(hearthJson<any[]>(home('A'), ['objects'])).toEqual(before);
    } finally {
      c.process.kill('SIGCONT');
    }
    const awake = await hearthAsync(home('A'), ['verify', '--peer', 'C', '--json']);
    expect(awake.code, awake.stdout).toBe(0);
    expect(JSON.parse(awake.stdout)[0].status).toBe('passed');
    // Answering clears the alert.
    expect(mails.slice(mailsBefore).map((m) => m.subject)).toEqual([expect.stringMatching(/C unreachable since/), expect.stringMatching(/resolved: C unreachable/)]);
    hearthOk(home('A'), ['config', 'set', 'policy.unreachableAfter', '14d']);
  }, 90_000);

  it('a pass that waits on it does not make an answering relative look unreachable', async () => {
    const c = daemons[2]!;
    const mailsBefore = mails.length;
    c.process.kill('SIGSTOP');
    try {
      // B answers at the start of the pass; C's silent ping then holds the pass
      // for its 10 s timeout, longer than policy.unreachableAfter.
      hearthOk(home('A'), ['config', 'set', 'policy.unreachableAfter', '3s']);
      const run = await hearthAsync(home('A'), ['replicate', '--json']);
      expect(run.code, run.stderr).toBe(0);
      const subjects = mails.slice(mailsBefore).map((m) => m.subject);
      expect(subjects).toContainEqual(expect.stringMatching(/C unreachable since/));
      expect(subjects.filter((s) => /\bB\b/.test(s))).toEqual([]);
    } finally {
      c.process.kill('SIGCONT');
      hearthOk(home('A'), ['config', 'set', 'policy.unreachableAfter', '14d']);
    }
    const awake = await hearthAsync(home('A'), ['verify', '--peer', 'C', '--json']);
    expect(awake.code, awake.stdout).toBe(0);
  }, 60_000);
});
