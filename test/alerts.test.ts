// Alerts through a real SMTP server (smtp-server, STARTTLS with a certificate made
// here by openssl) and real HTTP servers, all on 127.0.0.1.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import { AlertCenter, alertKey, problemKey, type Problem } from '../node/alerts.ts';
import { Config } from '../node/config.ts';

const OBJ_A = 'a1'.repeat(32);
const OBJ_B = 'b2'.repeat(32);
const OBJ_C = 'c3'.repeat(32);

interface ReceivedMail {
  mail: ParsedMail;
  secure: boolean;
  user: unknown;
  rcpt: string[];
}

interface SmtpFixture {
  port: number;
  mails: ReceivedMail[];
  close: () => Promise<void>;
}

interface HookRequest {
  headers: IncomingHttpHeaders;
  body: string;
}

let certDir: string;
let certFile: string;
let keyFile: string;

beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), 'hearth-alerts-cert-'));
  certFile = join(certDir, 'cert.pem');
  keyFile = join(certDir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
});

afterAll(() => rmSync(certDir, { recursive: true, force: true }));

async function startSmtp(options: Partial<SMTPServerOptions> = {}): Promise<SmtpFixture> {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    key: readFileSync(keyFile),
    cert: readFileSync(certFile),
    authOptional: true,
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          mails.push({ mail, secure: session.secure, user: session.user, rcpt: session.envelope.rcptTo.map((r) => r.address) });
          callback();
        },
        (err: Error) => callback(err),
      );
    },
    ...options,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { port, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function startHook(status = 200): Promise<{ url: string; requests: HookRequest[]; server: Server }> {
  const requests: HookRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : 'hook is broken today');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hearth-topic`, requests, server };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let home: string;
let config: Config;
const closers: Array<() => Promise<void>> = [];

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'hearth-alerts-'));
  config = Config.load(join(home, 'config.json'));
  config.set('name', 'grandpa-house');
});

afterEach(async () => {
  while (closers.length) await closers.pop()!();
  rmSync(home, { recursive: true, force: true });
});

function center(log?: (line: string) => void): AlertCenter {
  return new AlertCenter({ home, settings: () => config, log });
}

function useSmtp(port: number, extra: Record<string, string> = {}): void {
  config.set('alerts.email.to', 'family@example.org');
  config.set('alerts.email.from', 'hearth@grandpa.example.org');
  config.set('alerts.smtp.host', '127.0.0.1');
  config.set('alerts.smtp.port', String(port));
  config.set('alerts.smtp.ca', certFile);
  for (const [k, v] of Object.entries(extra)) config.set(k, v);
}

async function smtp(options: Partial<SMTPServerOptions> = {}): Promise<SmtpFixture> {
  const fixture = await startSmtp(options);
  closers.push(fixture.close);
  return fixture;
}

async function hook(status = 200): Promise<{ url: string; requests: HookRequest[] }> {
  const h = await startHook(status);
  closers.push(() => new Promise<void>((resolve) => h.server.close(() => resolve())));
  return h;
}

const auditFailed: Problem = { kind: 'audit-failed', relative: 'aunt-berlin', objects: [OBJ_B, OBJ_A] };

describe('email alerts', () => {
  it('sends an audit failure over STARTTLS with a login, naming the relative and the objects', async () => {
    const server = await smtp({
      onAuth(auth, _session, callback) {
        if (auth.username === 'hearth' && auth.password === 's3cret') callback(null, { user: auth.username });
        else callback(new Error('Invalid username or password'));
      },
      authOptional: false,
    });
    useSmtp(server.port, { 'alerts.smtp.user': 'hearth', 'alerts.smtp.pass': 's3cret' });
    const result = await center().raise(auditFailed);
    expect(result.results).toEqual([{ channel: 'email', ok: true, detail: expect.stringContaining('family@example.org') }]);
    expect(server.mails).toHaveLength(1);
    const { mail, secure, user, rcpt } = server.mails[0]!;
    expect(secure).toBe(true);
    expect(user).toBe('hearth');
    expect(rcpt).toEqual(['family@example.org']);
    expect(mail.from?.text).toBe('hearth@grandpa.example.org');
    expect(mail.subject).toBe('Hearth grandpa-house: aunt-berlin failed the audit of 2 objects');
    expect(mail.text).toContain('aunt-berlin could not prove');
    expect(mail.text).toContain(OBJ_A);
    expect(mail.text).toContain(OBJ_B);
    expect(mail.text).toContain('What to do:');
    expect(mail.text).toContain('hearth verify --peer aunt-berlin');
  });

  it('sends over implicit TLS (alerts.smtp.tls = tls)', async () => {
    const server = await smtp({ secure: true });
    useSmtp(server.port, { 'alerts.smtp.tls': 'tls' });
    const results = await center().sendTest();
    expect(results).toEqual([{ channel: 'email', ok: true, detail: expect.any(String) }]);
    expect(server.mails[0]!.secure).toBe(true);
    expect(server.mails[0]!.mail.subject).toBe('Hearth grandpa-house: test message');
  });

  it('refuses a server certificate it was not told to trust, then retries once it is', async () => {
    const server = await smtp();
    useSmtp(server.port);
    config.set('alerts.smtp.ca', '');
    const logged: string[] = [];
    const alerts = center((line) => logged.push(line));
    const first = await alerts.raise(auditFailed);
    expect(first.results).toHaveLength(1);
    expect(first.results[0]!.ok).toBe(false);
    expect(first.results[0]!.detail).toMatch(/^secure connection to SMTP server 127\.0\.0\.1:\d+ failed \(.*certificate.*\): .*alerts\.smtp\.ca/);
    expect(server.mails).toHaveLength(0);
    expect(logged.some((l) => l.includes('not sent by email'))).toBe(true);
    expect(alerts.open()[0]!.errors.email).toBe(first.results[0]!.detail);

    config.set('alerts.smtp.ca', certFile);
    const second = await alerts.raise(auditFailed);
    expect(second.results.map((r) => r.ok)).toEqual([true]);
    expect(server.mails).toHaveLength(1);
    expect(alerts.open()[0]!.told).toEqual(['email']);
    expect(alerts.open()[0]!.errors).toEqual({});
  });

  it('STARTTLS is required: a server that does not offer it is refused', async () => {
    const server = await smtp({ disabledCommands: ['STARTTLS'] });
    useSmtp(server.port);
    const [result] = await center().sendTest();
    expect(result!.ok).toBe(false);
    expect(result!.detail).toMatch(/^secure connection to SMTP server 127\.0\.0\.1:\d+ failed \(.*\): check alerts\.smtp\.tls/);
    expect(server.mails).toHaveLength(0);
  });

  it('an unreachable SMTP server gives a clear error and raise() does not throw', async () => {
    const port = await closedPort();
    useSmtp(port);
    const alerts = center();
    const result = await alerts.raise({ kind: 'backup-failed', error: 'source /photos is not mounted' });
    expect(result.results).toEqual([{ channel: 'email', ok: false, detail: expect.stringMatching(new RegExp(`^cannot reach SMTP server 127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\): check alerts\\.smtp\\.host and alerts\\.smtp\\.port$`)) }]);
    expect(alerts.open()).toHaveLength(1);
    expect(alerts.open()[0]!.told).toEqual([]);
  });

  it('reports a refused login and refused recipients as one-line errors', async () => {
    const server = await smtp({
      authOptional: false,
      onAuth: (_auth, _session, callback) => callback(new Error('Invalid username or password')),
    });
    useSmtp(server.port, { 'alerts.smtp.user': 'hearth', 'alerts.smtp.pass': 'wrong' });
    const [login] = await center().sendTest();
    expect(login!.ok).toBe(false);
    expect(login!.detail).toMatch(/refused the login \(.*Invalid username or password.*\): check alerts\.smtp\.user and alerts\.smtp\.pass$/);

    const strict = await smtp({ onRcptTo: (_address, _session, callback) => callback(Object.assign(new Error('No such user here'), { responseCode: 550 })) });
    useSmtp(strict.port, { 'alerts.smtp.user': '' });
    const [rcpt] = await center().sendTest();
    expect(rcpt!.ok).toBe(false);
    expect(rcpt!.detail).toMatch(/refused the sender or recipients \(.*No such user here.*\): check alerts\.email\.from and alerts\.email\.to$/);
    expect(rcpt!.detail).not.toContain('\n');
  });

  it('says what is missing when email is half configured', async () => {
    config.set('alerts.email.to', 'family@example.org');
    const [result] = await center().sendTest();
    expect(result).toEqual({ channel: 'email', ok: false, detail: expect.stringContaining('alerts.smtp.host is not') });
  });
});

describe('no alert storms', () => {
  it('sends once per problem until it changes, survives a restart, and tells when it is resolved', async () => {
    const server = await smtp();
    useSmtp(server.port);
    const first = center();
    expect((await first.raise(auditFailed)).results).toHaveLength(1);
    // Same problem, object ids in another order: the same problem.
    expect((await first.raise({ ...auditFailed, objects: [OBJ_A, OBJ_B, OBJ_A] })).results).toEqual([]);
    expect(server.mails).toHaveLength(1);

    // A new center on the same home (a daemon restart) knows it was told.
    const restarted = center();
    expect((await restarted.raise(auditFailed)).results).toEqual([]);
    expect(server.mails).toHaveLength(1);

    // The details changed: one more message, naming the new object.
    const grown: Problem = { ...auditFailed, objects: [OBJ_A, OBJ_B, OBJ_C] };
    expect((await restarted.raise(grown)).results.map((r) => r.ok)).toEqual([true]);
    expect((await restarted.raise(grown)).results).toEqual([]);
    expect(server.mails).toHaveLength(2);
    expect(server.mails[1]!.mail.subject).toContain('3 objects');
    expect(server.mails[1]!.mail.text).toContain(OBJ_C);

    // Other problems are independent of this one.
    await restarted.raise({ kind: 'audit-failed', relative: 'uncle-lyon', objects: [OBJ_A] });
    expect(server.mails).toHaveLength(3);

    const key = problemKey(auditFailed);
    expect(key).toBe(alertKey('audit-failed', 'aunt-berlin'));
    const resolved = await restarted.resolve(key);
    expect(resolved.resolved).toBe(true);
    expect(resolved.results.map((r) => r.ok)).toEqual([true]);
    expect(server.mails[3]!.mail.subject).toBe('Hearth grandpa-house: resolved: aunt-berlin failed the audit of 3 objects');
    expect((await restarted.resolve(key)).resolved).toBe(false);
    expect(server.mails).toHaveLength(4);
    expect(restarted.open().map((p) => p.key)).toEqual(['audit-failed:uncle-lyon']);

    // Resolved and back again: a new problem, told again.
    expect((await center().raise(auditFailed)).results.map((r) => r.ok)).toEqual([true]);
    expect(server.mails).toHaveLength(5);
  });

  it('with alerts.resolved off, resolving sends nothing', async () => {
    const server = await smtp();
    useSmtp(server.port, { 'alerts.resolved': 'off' });
    const alerts = center();
    await alerts.raise(auditFailed);
    expect(await alerts.resolve(problemKey(auditFailed))).toEqual({ key: 'audit-failed:aunt-berlin', resolved: true, results: [] });
    expect(server.mails).toHaveLength(1);
  });

  it('two checks raising the same problem at once send one message', async () => {
    const h = await hook();
    config.set('alerts.webhook', h.url);
    const alerts = center();
    const results = await Promise.all([alerts.raise(auditFailed), alerts.raise(auditFailed), alerts.raise(auditFailed)]);
    expect(results.map((r) => r.results.length).sort()).toEqual([0, 0, 1]);
    expect(h.requests).toHaveLength(1);
  });

  it('a channel that failed is retried on the next raise while the channel that worked is not', async () => {
    const server = await smtp();
    useSmtp(server.port);
    const broken = await hook(500);
    config.set('alerts.webhook', broken.url);
    const alerts = center();
    const first = await alerts.raise(auditFailed);
    expect(first.results.map((r) => [r.channel, r.ok])).toEqual([['email', true], ['webhook', false]]);
    expect(first.results[1]!.detail).toMatch(/^webhook http:\/\/127\.0\.0\.1:\d+\/hearth-topic answered HTTP 500 Internal Server Error: hook is broken today$/);

    const fixed = await hook();
    config.set('alerts.webhook', fixed.url);
    const second = await alerts.raise(auditFailed);
    expect(second.results.map((r) => [r.channel, r.ok])).toEqual([['webhook', true]]);
    expect(server.mails).toHaveLength(1);
    expect(fixed.requests).toHaveLength(1);
    expect((await alerts.raise(auditFailed)).results).toEqual([]);
  });
});

describe('webhook alerts', () => {
  it('posts JSON naming the problem, the relative and the objects', async () => {
    const h = await hook();
    config.set('alerts.webhook', h.url);
    const alerts = center();
    await alerts.raise({ kind: 'scrub-damage', relative: 'aunt-berlin', objects: [OBJ_C, OBJ_A] });
    const since = Date.parse('2026-05-01T08:00:00Z');
    await alerts.raise({ kind: 'relative-unreachable', relative: 'uncle-lyon', since });
    await alerts.raise({ kind: 'drift', source: 'photos', changed: 3, missing: 1 });
    expect(h.requests).toHaveLength(3);
    expect(h.requests[0]!.headers['content-type']).toBe('application/json');
    const [scrub, away, drift] = h.requests.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(scrub).toMatchObject({
      hearth: 1, event: 'problem', home: 'grandpa-house', key: 'scrub-damage:aunt-berlin', problem: 'scrub-damage',
      relative: 'aunt-berlin', objects: [OBJ_A, OBJ_C], objectCount: 2,
    });
    expect(scrub!.title).toBe('Hearth grandpa-house: aunt-berlin found 2 damaged objects');
    expect(scrub!.message).toContain(OBJ_C);
    expect(away).toMatchObject({ problem: 'relative-unreachable', relative: 'uncle-lyon', since: '2026-05-01T08:00:00.000Z' });
    expect(drift).toMatchObject({ problem: 'drift', source: 'photos', changed: 3, missing: 1, key: 'drift:photos' });

    await alerts.resolve(alertKey('drift', 'photos'));
    expect(JSON.parse(h.requests[3]!.body)).toMatchObject({ event: 'resolved', problem: 'drift', source: 'photos' });
  });

  it('posts plain text with a Title header in ntfy form, encoding names beyond ASCII', async () => {
    const h = await hook();
    config.set('alerts.webhook', h.url);
    config.set('alerts.webhook.format', 'ntfy');
    await center().raise({ kind: 'audit-failed', relative: 'grand-mère', objects: [OBJ_A] });
    const [request] = h.requests;
    expect(request!.headers['content-type']).toBe('text/plain; charset=utf-8');
    const title = request!.headers.title as string;
    const encoded = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=$/.exec(title);
    expect(encoded).not.toBeNull();
    expect(Buffer.from(encoded![1]!, 'base64').toString('utf8')).toBe('Hearth grandpa-house: grand-mère failed the audit of 1 object');
    expect(request!.headers.tags).toBe('warning');
    expect(request!.body).toContain('grand-mère could not prove');
    expect(request!.body).toContain(OBJ_A);

    await center().sendTest();
    expect(h.requests[1]!.headers.title).toBe('Hearth grandpa-house: test message');
  });

  it('sends credentials in the URL as Basic auth and keeps them out of messages', async () => {
    const h = await hook();
    config.set('alerts.webhook', h.url.replace('http://', 'http://fam:p%40ss@'));
    const [result] = await center().sendTest();
    expect(result!.ok).toBe(true);
    expect(result!.detail).not.toContain('p%40ss');
    expect(h.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('fam:p@ss').toString('base64')}`);
  });

  it('validates webhook URLs with a clear error', async () => {
    expect(() => config.set('alerts.webhook', 'ftp://127.0.0.1/x')).toThrow(/alerts\.webhook must be an http:\/\/ or https:\/\/ URL/);
    expect(() => config.set('alerts.webhook', 'not a url')).toThrow(/is not a URL/);
    // A hand-edited config is caught when sending, without throwing.
    config.data.settings['alerts.webhook'] = 'file:///etc/passwd';
    const result = await center().raise(auditFailed);
    expect(result.results).toEqual([{ channel: 'webhook', ok: false, detail: expect.stringMatching(/^alerts\.webhook must be an http/) }]);
  });

  it('an unreachable webhook is a one-line error', async () => {
    config.set('alerts.webhook', `http://127.0.0.1:${await closedPort()}/hook`);
    const [result] = await center().sendTest();
    expect(result!.ok).toBe(false);
    expect(result!.detail).toMatch(/^cannot reach webhook http:\/\/127\.0\.0\.1:\d+\/hook \(.*ECONNREFUSED.*\): check alerts\.webhook$/);
  });
});

describe('hearth alert test', () => {
  it('needs a channel', async () => {
    await expect(center().sendTest()).rejects.toThrow(/^no alert channel is configured: set alerts\.email\.to/);
  });

  it('goes through every configured channel and reports each', async () => {
    const server = await smtp();
    useSmtp(server.port);
    const h = await hook();
    config.set('alerts.webhook', h.url);
    const results = await center().sendTest();
    expect(results.map((r) => [r.channel, r.ok])).toEqual([['email', true], ['webhook', true]]);
    expect(server.mails[0]!.mail.text).toContain('hearth alert test');
    expect(JSON.parse(h.requests[0]!.body)).toMatchObject({ event: 'test', home: 'grandpa-house' });
    expect(center().open()).toEqual([]);
  });
});

describe('alert state file', () => {
  it('is rewritten whole and an unreadable one is replaced rather than stopping the daemon', async () => {
    const h = await hook();
    config.set('alerts.webhook', h.url);
    await center().raise(auditFailed);
    const saved = JSON.parse(readFileSync(join(home, 'alerts.json'), 'utf8'));
    expect(saved.version).toBe(1);
    expect(Object.keys(saved.problems)).toEqual(['audit-failed:aunt-berlin']);

    writeFileSync(join(home, 'alerts.json'), '{ torn');
    const logged: string[] = [];
    const alerts = center((line) => logged.push(line));
    expect(logged[0]).toMatch(/alert state .* is unreadable/);
    expect((await alerts.raise(auditFailed)).results.map((r) => r.ok)).toEqual([true]);
  });
});
