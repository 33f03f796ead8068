// Alerts: tell a person when the family's copies need attention, by email (SMTP)
// and/or a webhook. A problem is told once: the home remembers, per channel, which
// version (fingerprint) of each open problem it has delivered, in alerts.json, so a
// check that finds the same failure every ten minutes, or a daemon restart, sends
// nothing new. A problem is told again when its details change, and a resolved
// problem that comes back is a new problem.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readStateFile, writeFileAtomicSync } from './atomic-file.ts';

export type Problem =
  | { kind: 'audit-failed'; relative: string; objects: string[] }
  | { kind: 'scrub-damage'; relative: string; objects: string[] }
  | { kind: 'relative-unreachable'; relative: string; since: number }
  | { kind: 'relative-disk-full'; relative: string }
  | { kind: 'backup-failed'; error: string }
  | { kind: 'drift'; source: string; changed: number; missing: number }
  /** Copies on one of the home's own targets found missing or damaged; `repaired` are those copied again since. */
  | { kind: 'target-damage'; target: string; objects: string[]; repaired: string[] };

export type ProblemKind = Problem['kind'];

export type AlertChannel = 'email' | 'webhook';

/** How one channel took one message: `detail` says where it went, or is the one-line error. */
export interface ChannelResult {
  channel: AlertChannel;
  ok: boolean;
  detail: string;
}

export interface RaiseResult {
  key: string;
  /** Empty when every configured channel already has this version of the problem. */
  results: ChannelResult[];
}

export interface ResolveResult {
  key: string;
  /** False when no such problem was open (nothing sent). */
  resolved: boolean;
  results: ChannelResult[];
}

export interface OpenProblem {
  key: string;
  problem: Problem;
  raisedAt: string;
  changedAt: string;
  /** Channels that have been told the current version. */
  told: AlertChannel[];
  /** Last delivery error per channel that has not been told yet. */
  errors: Partial<Record<AlertChannel, string>>;
}

/** The settings the alert center reads (a `Config` is one). */
export interface AlertSettings {
  get(key: string): string;
}

export interface AlertCenterOptions {
  /** The home's state directory: alerts.json lives there. */
  home: string;
  /** Read on every send, so `hearth config set` takes effect without a restart. */
  settings: () => AlertSettings;
  log?: (line: string) => void;
  now?: () => number;
}

interface ProblemRecord {
  problem: Problem;
  fingerprint: string;
  raisedAt: string;
  changedAt: string;
  /** The fingerprint each channel was last told. */
  delivered: Partial<Record<AlertChannel, string>>;
  errors: Partial<Record<AlertChannel, string>>;
}

interface AlertStateFile {
  version: 1;
  problems: Record<string, ProblemRecord>;
}

type MessageEvent = 'problem' | 'resolved' | 'test';

interface AlertMessage {
  event: MessageEvent;
  at: number;
  key?: string;
  problem?: Problem;
  title: string;
  text: string;
}

interface Sender {
  channel: AlertChannel;
  send: (message: AlertMessage) => Promise<string>;
}

const SMTP_TIMEOUTS = { connectionTimeout: 20_000, greetingTimeout: 20_000, socketTimeout: 60_000 };
const WEBHOOK_TIMEOUT_MS = 15_000;
/** Object ids listed in an email; the webhook carries more, the state file all. */
const EMAIL_OBJECT_LIST = 100;
const WEBHOOK_OBJECT_LIST = 1000;

export const ALERT_STATE_FILE = 'alerts.json';

/** The stable identity of a problem: its kind and what it is about. */
export function alertKey(kind: ProblemKind, subject?: string): string {
  return subject === undefined || subject === '' ? kind : `${kind}:${subject}`;
}

export function problemKey(problem: Problem): string {
  switch (problem.kind) {
    case 'audit-failed':
    case 'scrub-damage':
    case 'relative-unreachable':
    case 'relative-disk-full':
      return alertKey(problem.kind, problem.relative);
    case 'backup-failed':
      return alertKey(problem.kind);
    case 'drift':
      return alertKey(problem.kind, problem.source);
    case 'target-damage':
      return alertKey(problem.kind, problem.target);
  }
}

/** Object ids in a stable order, so the same set always has the same fingerprint. */
function normalize(problem: Problem): Problem {
  if (problem.kind === 'audit-failed' || problem.kind === 'scrub-damage') {
    return { ...problem, objects: [...new Set(problem.objects)].sort() };
  }
  if (problem.kind === 'target-damage') {
    return { ...problem, objects: [...new Set(problem.objects)].sort(), repaired: [...new Set(problem.repaired)].sort() };
  }
  return { ...problem };
}

function fingerprintOf(problem: Problem): string {
  return createHash('sha256').update(JSON.stringify(problem)).digest('hex');
}

/** Throws a one-line error unless `url` is an absolute http(s) URL. */
export function checkWebhookUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`alerts.webhook "${url}" is not a URL: give an http:// or https:// address, like https://ntfy.sh/my-family-topic`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`alerts.webhook must be an http:// or https:// URL, got "${parsed.protocol}" in "${url}"`);
  }
  return parsed;
}

export class AlertCenter {
  private readonly file: string;
  private readonly settings: () => AlertSettings;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private state: AlertStateFile;
  /** Raises and resolves run one at a time, so two checks racing cannot both send. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: AlertCenterOptions) {
    this.file = join(options.home, ALERT_STATE_FILE);
    this.settings = options.settings;
    this.log = options.log ?? (() => {});
    this.now = options.now ?? Date.now;
    this.state = this.load();
  }

  /**
   * Report a problem. Sends to each configured channel that has not been told this
   * version of it; never rejects: delivery failures are in the result, in the log
   * and in `open()`, and are retried on the next raise of the same problem.
   */
  raise(problem: Problem): Promise<RaiseResult> {
    return this.serially(async () => {
      const normalized = normalize(problem);
      const key = problemKey(normalized);
      const fingerprint = fingerprintOf(normalized);
      const at = new Date(this.now()).toISOString();
      let record = this.state.problems[key];
      if (!record) {
        record = { problem: normalized, fingerprint, raisedAt: at, changedAt: at, delivered: {}, errors: {} };
        this.state.problems[key] = record;
        this.save();
      } else if (record.fingerprint !== fingerprint) {
        record.problem = normalized;
        record.fingerprint = fingerprint;
        record.changedAt = at;
        this.save();
      }
      const { senders, errors } = this.senders();
      const due = senders.filter((s) => record.delivered[s.channel] !== fingerprint);
      const results = [...errors.filter((e) => record.delivered[e.channel] !== fingerprint)];
      if (due.length > 0) {
        const message = problemMessage(key, normalized, this.homeName(), this.now());
        results.push(...(await Promise.all(due.map((s) => deliver(s, message)))));
      }
      if (results.length === 0) return { key, results };
      for (const r of results) {
        if (r.ok) {
          record.delivered[r.channel] = fingerprint;
          delete record.errors[r.channel];
        } else {
          record.errors[r.channel] = r.detail;
          this.log(`alert ${key} not sent by ${r.channel}: ${r.detail}`);
        }
      }
      this.save();
      return { key, results };
    });
  }

  /**
   * Close a problem. With `alerts.resolved` on (the default) the channels that were
   * told about it get a "resolved" message. Resolving a problem that is not open is
   * a no-op, so checks may call this on every clean run.
   */
  resolve(key: string): Promise<ResolveResult> {
    return this.serially(async () => {
      const record = this.state.problems[key];
      if (!record) return { key, resolved: false, results: [] };
      delete this.state.problems[key];
      this.save();
      if (this.settings().get('alerts.resolved') !== 'on') return { key, resolved: true, results: [] };
      const { senders } = this.senders();
      const told = senders.filter((s) => record.delivered[s.channel] !== undefined);
      const message = resolvedMessage(key, record, this.homeName(), this.now());
      const results = await Promise.all(told.map((s) => deliver(s, message)));
      for (const r of results) if (!r.ok) this.log(`alert ${key} resolved, but ${r.channel} was not told: ${r.detail}`);
      return { key, resolved: true, results };
    });
  }

  /** For `hearth alert test`: one message through every configured channel. */
  async sendTest(): Promise<ChannelResult[]> {
    const { senders, errors } = this.senders();
    if (senders.length === 0 && errors.length === 0) {
      throw new Error('no alert channel is configured: set alerts.email.to and alerts.smtp.host, or alerts.webhook, with "hearth config set"');
    }
    const message = testMessage(this.homeName(), this.now());
    return [...errors, ...(await Promise.all(senders.map((s) => deliver(s, message))))];
  }

  /** Problems raised and not resolved, oldest first (for `hearth status`). */
  open(): OpenProblem[] {
    return Object.entries(this.state.problems)
      .map(([key, r]) => ({
        key,
        problem: r.problem,
        raisedAt: r.raisedAt,
        changedAt: r.changedAt,
        told: (Object.keys(r.delivered) as AlertChannel[]).filter((c) => r.delivered[c] === r.fingerprint),
        errors: { ...r.errors },
      }))
      .sort((a, b) => a.raisedAt.localeCompare(b.raisedAt));
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private load(): AlertStateFile {
    return readStateFile<AlertStateFile>(
      this.file,
      () => ({ version: 1, problems: {} }),
      (parsed) => typeof parsed.problems === 'object' && parsed.problems !== null,
      (reason) => this.log(`alert state ${this.file} is unreadable (${reason}): starting afresh, open problems may be reported again`),
    );
  }


  /** A failed write is logged, not thrown: the state stays in memory and the next save retries. */
  private save(): void {
    try {
      writeFileAtomicSync(this.file, JSON.stringify(this.state, null, 2) + '\n', 0o600);
    } catch (err) {
      this.log(`could not write alert state ${this.file} (${(err as Error).message}): a restart may repeat messages`);
    }
  }

  private homeName(): string {
    return this.settings().get('name') || hostname();
  }

  /** The configured channels; a channel configured wrongly becomes an error result instead. */
  private senders(): { senders: Sender[]; errors: ChannelResult[] } {
    const settings = this.settings();
    const senders: Sender[] = [];
    const errors: ChannelResult[] = [];
    const add = (channel: AlertChannel, make: () => Sender['send']): void => {
      try {
        senders.push({ channel, send: make() });
      } catch (err) {
        errors.push({ channel, ok: false, detail: (err as Error).message });
      }
    };
    if (settings.get('alerts.email.to')) add('email', () => emailSender(settings));
    if (settings.get('alerts.webhook')) add('webhook', () => webhookSender(settings));
    return { senders, errors };
  }
}

async function deliver(sender: Sender, message: AlertMessage): Promise<ChannelResult> {
  try {
    return { channel: sender.channel, ok: true, detail: await sender.send(message) };
  } catch (err) {
    return { channel: sender.channel, ok: false, detail: (err as Error).message };
  }
}

// ---- email ----

function emailSender(settings: AlertSettings): Sender['send'] {
  const to = settings.get('alerts.email.to');
  const host = settings.get('alerts.smtp.host');
  if (!host) throw new Error('alerts.email.to is set but alerts.smtp.host is not: set the mail server with "hearth config set alerts.smtp.host smtp.example.org"');
  const mode = settings.get('alerts.smtp.tls');
  const port = settings.get('alerts.smtp.port') ? Number(settings.get('alerts.smtp.port')) : mode === 'tls' ? 465 : mode === 'starttls' ? 587 : 25;
  const caFile = settings.get('alerts.smtp.ca');
  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw new Error(`cannot read alerts.smtp.ca file ${caFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): give the path of the mail server's PEM certificate, or clear the setting`);
    }
  }
  const user = settings.get('alerts.smtp.user');
  const from = settings.get('alerts.email.from') || `hearth@${hostname()}`;
  const server = `SMTP server ${host}:${port}`;
  return async (message) => {
    // Loaded here, not at the top: nodemailer takes ~0.1 s to load, and config.ts (read by every CLI command) imports this module.
    const { createTransport } = await import('nodemailer');
    const transport = createTransport({
      host,
      port,
      secure: mode === 'tls',
      requireTLS: mode === 'starttls',
      ignoreTLS: mode === 'none',
      auth: user ? { user, pass: settings.get('alerts.smtp.pass') } : undefined,
      tls: ca ? { ca } : undefined,
      ...SMTP_TIMEOUTS,
    });
    try {
      await transport.sendMail({ from, to, subject: message.title, text: message.text });
    } catch (err) {
      throw new Error(smtpErrorLine(server, err));
    } finally {
      transport.close();
    }
    return `sent to ${to} through ${server}`;
  };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT']);

function smtpErrorLine(server: string, err: unknown): string {
  const e = err as Error & { code?: string; originalCode?: string; response?: string };
  const said = oneLine(e.response ?? e.message);
  // nodemailer files a refused connection under ESOCKET, like a TLS failure; the socket's own code tells them apart.
  const code = e.originalCode && UNREACHABLE.has(e.originalCode) ? 'ECONNECTION' : e.code;
  switch (code) {
    case 'ECONNECTION':
    case 'ETIMEDOUT':
    case 'EDNS':
      return `cannot reach ${server} (${said}): check alerts.smtp.host and alerts.smtp.port`;
    case 'ETLS':
    case 'ESOCKET':
      return `secure connection to ${server} failed (${said}): check alerts.smtp.tls (starttls, tls or none), or set alerts.smtp.ca to the server's certificate`;
    case 'EAUTH':
    case 'ENOAUTH':
      return `${server} refused the login (${said}): check alerts.smtp.user and alerts.smtp.pass`;
    case 'EENVELOPE':
      return `${server} refused the sender or recipients (${said}): check alerts.email.from and alerts.email.to`;
    default:
      return `${server} refused the message (${said})`;
  }
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

// ---- webhook ----

function webhookSender(settings: AlertSettings): Sender['send'] {
  const url = checkWebhookUrl(settings.get('alerts.webhook'));
  const format = settings.get('alerts.webhook.format');
  const home = settings.get('name') || hostname();
  const headers: Record<string, string> = {};
  // fetch refuses URLs with credentials in them; ntfy and most hooks accept Basic auth.
  if (url.username || url.password) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  // Query strings often carry tokens: keep them out of messages and logs.
  const shown = `${url.origin}${url.pathname}`;
  return async (message) => {
    let body: string;
    if (format === 'ntfy') {
      headers['content-type'] = 'text/plain; charset=utf-8';
      headers.title = headerText(message.title);
      headers.tags = message.event === 'resolved' ? 'white_check_mark' : message.event === 'test' ? 'bell' : 'warning';
      body = message.text;
    } else {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(webhookDocument(message, home));
    }
    let response: Response;
    try {
      response = await fetch(url, { method: 'POST', headers, body, redirect: 'follow', signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS) });
    } catch (err) {
      const e = err as Error & { cause?: Error & { code?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s` : oneLine(e.cause?.message ?? e.message);
      throw new Error(`cannot reach webhook ${shown} (${why}): check alerts.webhook`);
    }
    const answer = await response.text().catch(() => '');
    if (!response.ok) throw new Error(`webhook ${shown} answered HTTP ${response.status} ${response.statusText}${answer ? `: ${oneLine(answer)}` : ''}`);
    return `posted to ${shown} (HTTP ${response.status})`;
  };
}

/** HTTP header values are Latin-1; ntfy decodes RFC 2047 encoded words for the rest. */
function headerText(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : `=?UTF-8?B?${Buffer.from(text).toString('base64')}?=`;
}

/** The JSON a webhook receives: stable field names, one document per message. */
export interface WebhookDocument {
  hearth: 1;
  event: MessageEvent;
  home: string;
  key?: string;
  problem?: ProblemKind;
  relative?: string;
  target?: string;
  objects?: string[];
  repaired?: string[];
  objectCount?: number;
  since?: string;
  error?: string;
  source?: string;
  changed?: number;
  missing?: number;
  title: string;
  message: string;
  time: string;
}

function webhookDocument(message: AlertMessage, home: string): WebhookDocument {
  const doc: WebhookDocument = { hearth: 1, event: message.event, home, title: message.title, message: message.text, time: new Date(message.at).toISOString() };
  if (message.key) doc.key = message.key;
  const p = message.problem;
  if (!p) return doc;
  doc.problem = p.kind;
  switch (p.kind) {
    case 'audit-failed':
    case 'scrub-damage':
      doc.relative = p.relative;
      doc.objects = p.objects.slice(0, WEBHOOK_OBJECT_LIST);
      doc.objectCount = p.objects.length;
      break;
    case 'relative-unreachable':
      doc.relative = p.relative;
      doc.since = new Date(p.since).toISOString();
      break;
    case 'relative-disk-full':
      doc.relative = p.relative;
      break;
    case 'backup-failed':
      doc.error = p.error;
      break;
    case 'drift':
      doc.source = p.source;
      doc.changed = p.changed;
      doc.missing = p.missing;
      break;
    case 'target-damage':
      doc.target = p.target;
      doc.objects = p.objects.slice(0, WEBHOOK_OBJECT_LIST);
      doc.objectCount = p.objects.length;
      doc.repaired = p.repaired.slice(0, WEBHOOK_OBJECT_LIST);
      break;
  }
  return doc;
}

// ---- wording ----

interface Wording {
  headline: string;
  happened: string;
  details: string[];
  whatToDo: string;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function localTime(t: number): string {
  const d = new Date(t);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

function objectLines(objects: string[]): string[] {
  const shown = objects.slice(0, EMAIL_OBJECT_LIST).map((id) => `  ${id}`);
  if (objects.length > shown.length) shown.push(`  … and ${objects.length - shown.length} more ("hearth verify --json" or "hearth check --json" lists them all)`);
  return ['Objects:', ...shown];
}

function wordingOf(problem: Problem, now: number): Wording {
  switch (problem.kind) {
    case 'audit-failed':
      return {
        headline: `${problem.relative} failed the audit of ${plural(problem.objects.length, 'object')}`,
        happened: `${problem.relative} could not prove that it still holds ${plural(problem.objects.length, 'object')} of this home's backup: the audit's samples were missing, wrong or late.`,
        details: objectLines(problem.objects),
        whatToDo: `Hearth copies these objects again from a healthy copy. Ask whoever runs ${problem.relative} to check that its disk is healthy and "hearth daemon" is running; "hearth verify --peer ${problem.relative}" audits it again now.`,
      };
    case 'scrub-damage':
      return {
        headline: `${problem.relative} found ${plural(problem.objects.length, 'damaged object')}`,
        happened: `${problem.relative} re-read the objects it keeps for this home and found ${plural(problem.objects.length, 'damaged object')}.`,
        details: objectLines(problem.objects),
        whatToDo: `Hearth copies these objects again from a healthy copy. Damage on disk often means a failing drive: ask whoever runs ${problem.relative} to check it (SMART status, filesystem errors).`,
      };
    case 'relative-unreachable': {
      const days = Math.max(0, Math.floor((now - problem.since) / 86_400_000));
      return {
        headline: `${problem.relative} unreachable since ${localTime(problem.since)}`,
        happened: `${problem.relative} has not been reachable since ${localTime(problem.since)} (${plural(days, 'day')}).`,
        details: [],
        whatToDo: `Check that ${problem.relative}'s computer is on, online and running "hearth daemon"; "hearth peers" shows when it was last seen. While it stays away, Hearth copies the objects it held for this home to other places.`,
      };
    }
    case 'relative-disk-full':
      return {
        headline: `${problem.relative}'s disk is full`,
        happened: `${problem.relative} refused to store this home's objects: its disk is full.`,
        details: [],
        whatToDo: `Ask whoever runs ${problem.relative} to free space on the disk holding its Hearth home ("hearth status" there shows what is free). Until then, the objects it refused wait for it or go to other relatives.`,
      };
    case 'backup-failed':
      return {
        headline: 'backup failed',
        happened: `This home's scheduled backup failed: ${problem.error}`,
        details: [],
        whatToDo: 'Until a backup succeeds, new and changed files are not protected. Run "hearth backup" to see the error as it happens, fix its cause (a source folder that moved, a full disk, a missing target), and check "hearth status".',
      };
    case 'drift':
      return {
        headline: `${problem.source}: ${plural(problem.changed, 'file')} changed, ${problem.missing} missing since backup`,
        happened: `In the source "${problem.source}", ${plural(problem.changed, 'file')} changed and ${plural(problem.missing, 'file')} went missing locally while their backup says otherwise.`,
        details: [],
        whatToDo: `"hearth drift" lists the files. If the changes are yours, the next backup records them. If not (a failing disk, a mistaken delete), "hearth restore" brings back the backed-up versions.`,
      };
    case 'target-damage': {
      const left = problem.objects.length - problem.repaired.length;
      return {
        headline: `target ${problem.target}: ${plural(problem.objects.length, 'damaged or missing object')}${left ? `, ${left} not repaired` : ', repaired'}`,
        happened: `Hearth found ${plural(problem.objects.length, 'object')} of this home's backup missing, cut short or with the wrong checksum on its own target ${problem.target}; ${problem.repaired.length} of them have been copied again from a healthy copy.`,
        details: objectLines(problem.objects),
        whatToDo: left
          ? `No healthy copy of ${plural(left, 'object')} could be reached: start "hearth daemon" so relatives can supply them, or plug in the other backup disk, then run "hearth check --target ${problem.target}". Damage on disk often means a failing drive: check its SMART status and filesystem.`
          : `Nothing is lost. Damage on disk often means a failing drive: check ${problem.target}'s SMART status and filesystem; "hearth check --read-data --target ${problem.target}" reads every object again.`,
      };
    }
  }
}

const FOOTER = 'Hearth sends one message per problem; it writes again if the problem changes, and when it is resolved.';

function problemMessage(key: string, problem: Problem, home: string, now: number): AlertMessage {
  const w = wordingOf(problem, now);
  const text = [w.happened, '', ...(w.details.length ? [...w.details, ''] : []), `What to do: ${w.whatToDo}`, '', `-- Hearth on ${home}. ${FOOTER}`].join('\n');
  return { event: 'problem', at: now, key, problem, title: `Hearth ${home}: ${w.headline}`, text };
}

function resolvedMessage(key: string, record: ProblemRecord, home: string, now: number): AlertMessage {
  const w = wordingOf(record.problem, now);
  const text = [`Resolved: ${w.headline}.`, '', `This problem, first reported ${localTime(Date.parse(record.raisedAt))}, has cleared at ${localTime(now)}. Nothing needs doing.`, '', `-- Hearth on ${home}.`].join('\n');
  return { event: 'resolved', at: now, key, problem: record.problem, title: `Hearth ${home}: resolved: ${w.headline}`, text };
}

function testMessage(home: string, now: number): AlertMessage {
  const text = [`This is a test message from Hearth on ${home}, sent at ${localTime(now)} by "hearth alert test".`, '', 'If you can read it, alerts reach you: Hearth will write here when a relative fails an audit or stays unreachable, a backup fails, or local files drift from their backup.'].join('\n');
  return { event: 'test', at: now, title: `Hearth ${home}: test message`, text };
}
