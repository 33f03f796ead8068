// The home's config file (config.json): sources, targets and settings. Written
// atomically (temp file, fsync, rename) so a crash never leaves half a file.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import { writeFileAtomicSync } from './atomic-file.ts';
import { parseDuration, parseRate, parseShare, parseSize } from './units.ts';
import { parseWindows } from './bandwidth.ts';
import { checkWebhookUrl } from './alerts.ts';
import { parseSchedule } from './scheduler.ts';
import { PRICE_DEFAULTS } from './prices.ts';

export interface SourceConfig {
  name: string;
  path: string;
}

export interface DirTargetConfig {
  name: string;
  kind: 'dir';
  path: string;
  /** The id in the target's marker file; absent for targets added before markers. */
  marker?: string;
}

/** An S3 bucket (docs/s3-tier.md). Credentials are never stored here: the SDK's chain finds them. */
export interface S3TargetConfig {
  name: string;
  kind: 's3';
  bucket: string;
  /** Key prefix inside the bucket; may be empty. */
  prefix: string;
  region?: string;
  /** An S3-compatible store's URL; absent for AWS. */
  endpoint?: string;
  pathStyle?: boolean;
  /** Absent: the store's default class. */
  storageClass?: string;
  /** A profile of the shared AWS config and credentials files. */
  profile?: string;
}

/** A Google Drive folder (docs/drive-tier.md); the sign-in lives in google-token.json. */
export interface DriveTargetConfig {
  name: string;
  kind: 'drive';
  /** The folder's name, as the user sees it in Drive. */
  folder: string;
  folderId: string;
  /** The subfolder holding the catalog log. */
  catalogFolderId: string;
}

export type TargetConfig = DirTargetConfig | S3TargetConfig | DriveTargetConfig;

export interface ConfigFile {
  sources: SourceConfig[];
  targets: TargetConfig[];
  settings: Record<string, string>;
}

interface SettingSpec {
  default: string;
  describe: string;
  /** What values are accepted, for `config ls` and error messages. */
  range?: string;
  check: (value: string) => void;
}

const KiB = 2 ** 10;
const TiB = 2 ** 40;
const SECOND = 1000;
const DAY = 86_400_000;

function bounded(key: string, value: number, min: number, max: number, range: string, shown: string): void {
  if (value < min || value > max) throw new Error(`${key} must be ${range}, got "${shown}"`);
}

/** The parsed value, or an error naming the key and its range rather than only the parser's complaint. */
function parsed(key: string, v: string, parse: (v: string) => number, range: string): number {
  try {
    return parse(v);
  } catch (err) {
    throw new Error(`${key} must be ${range}, got "${v}" (${(err as Error).message.split(':')[0]})`);
  }
}

const sizeSetting = (key: string, def: string, describe: string, min: number, max: number, range: string): SettingSpec => ({
  default: def, describe, range, check: (v) => bounded(key, parsed(key, v, parseSize, range), min, max, range, v),
});

const durationSetting = (key: string, def: string, describe: string, min: number, max: number, range: string): SettingSpec => ({
  default: def, describe, range, check: (v) => bounded(key, parsed(key, v, parseDuration, range), min, max, range, v),
});

function wholeNumber(key: string, def: string, describe: string, min: number, max: number): SettingSpec {
  const range = `a whole number from ${min} to ${max}`;
  return {
    default: def, describe, range,
    check: (v) => {
      if (!/^\d+$/.test(v)) throw new Error(`${key} must be ${range}, got "${v}"`);
      bounded(key, Number(v), min, max, range, v);
    },
  };
}

/**
 * Transfers sharing a cap wait a slice (at least 16 KiB) each in turn, and the
 * other side gives up after 60 s without progress. At this rate 16 transfers at
 * once (the stream limit per relative) wait about 8 s each for their turn.
 */
const MIN_RATE = 32 * KiB;

function rateSetting(key: string, describe: string): SettingSpec {
  const range = '0 or none for unlimited, or a rate from 32KiB/s like 2MB/s or 10Mbit/s';
  return {
    default: 'none', describe, range,
    check: (v) => {
      const rate = parsed(key, v, parseRate, range);
      if (rate !== 0) bounded(key, rate, MIN_RATE, Infinity, range, v);
    },
  };
}

const textSetting = (describe: string): SettingSpec => ({ default: '', describe, check: () => {} });

function oneOf(key: string, values: string[]) {
  return (v: string): void => {
    if (!values.includes(v)) throw new Error(`${key} must be one of ${values.join(', ')}, got "${v}"`);
  };
}

/** Empty, or addresses like a@b.org or "Name <a@b.org>", comma-separated. */
function emailAddresses(key: string) {
  return (v: string): void => {
    if (v === '') return;
    for (const address of v.split(',').map((a) => a.trim())) {
      if (!/^(?:[^<>]*<[^@\s<>]+@[^@\s<>]+>|[^@\s<>]+@[^@\s<>]+)$/.test(address)) throw new Error(`${key} has "${address}", which is not an email address like name@example.org`);
    }
  };
}

/** Every setting `hearth config set` accepts, with its default. */
export const SETTINGS: Record<string, SettingSpec> = {
  'volume.size': sizeSetting('volume.size', '4GiB', 'unpacked content that fills an ISO volume', 64 * KiB, TiB, 'a size from 64KiB to 1TiB'),
  ignore: { default: '', describe: 'extra ignore patterns, comma-separated (added to the defaults)', check: () => {} },
  'ignore.defaults': {
    default: 'on',
    describe: 'skip .DS_Store, Thumbs.db, ._*, .git, @eaDir, #recycle',
    range: 'on or off',
    check: oneOf('ignore.defaults', ['on', 'off']),
  },
  'policy.peers': wholeNumber('policy.peers', '2', 'copies of every object kept at relatives (all of them when fewer)', 1, 16),
  'policy.unreachableAfter': durationSetting('policy.unreachableAfter', '14d', 'a relative that has answered nothing for this long no longer counts towards policy.peers, and is alerted on', SECOND, 365 * DAY, 'a duration from 1s to 365d'),
  'host.deleteDelay': durationSetting('host.deleteDelay', '30d', 'how long this home keeps a relative\'s object after it asks to delete it', 0, 365 * DAY, 'a duration from 0s to 365d'),
  'host.quota': sizeSetting('host.quota', '1TiB', 'space granted to a relative by default (invite/join --quota overrides)', 0, 1024 * TiB, 'a size from 0 to 1024TiB'),
  'replicate.interval': durationSetting('replicate.interval', '10m', 'how often the daemon retries replication to relatives', SECOND, 7 * DAY, 'a duration from 1s to 7d'),
  name: {
    default: '', describe: 'this home\'s name, told to relatives when pairing (default: the host name)', range: 'up to 64 characters, no "/"',
    check: (v) => {
      if (v.length > 64 || /[/\n\r\0]/.test(v)) throw new Error(`name must be up to 64 characters without "/" or line breaks, got "${v}"`);
    },
  },
  'host.dir': {
    default: '',
    describe: 'folder where relatives\' objects are kept (another disk); empty: <home>/hosted. Set it with the folder existing: a marker is written there',
    range: 'an absolute path, or empty',
    check: (v) => {
      if (v !== '' && !isAbsolute(v)) throw new Error(`host.dir must be an absolute path (or empty for <home>/hosted), got "${v}"`);
    },
  },
  'policy.cold': {
    default: 'fallback',
    describe: 'cold copies of volumes on s3 targets: always, never, or fallback (when fewer than policy.peers relatives hold a volume for policy.fallbackAfter)',
    range: 'fallback, always or never',
    check: oneOf('policy.cold', ['fallback', 'always', 'never']),
  },
  'policy.fallbackAfter': durationSetting('policy.fallbackAfter', '24h', 'how long a volume may sit at fewer than policy.peers relatives before it gets a cold copy (policy.cold fallback)', 0, 365 * DAY, 'a duration from 0s to 365d'),
  'policy.staging': {
    default: 'relatives',
    describe: 'where staged blobs (not yet in a volume) wait: relatives (drive targets only when fewer than policy.peers relatives hold them for policy.fallbackAfter) or drive (always on drive targets too)',
    range: 'relatives or drive',
    check: oneOf('policy.staging', ['relatives', 'drive']),
  },
  'drive.maxUse': sizeSetting('drive.maxUse', '10GB', 'the most Hearth keeps on Google Drive (its free 15 GB is shared with Gmail)', 0, 2 ** 50, 'a size from 0 to 1PiB'),
  's3.partSize': sizeSetting('s3.partSize', '1GiB', 'multipart part size for s3 targets; 1GiB keeps uploads at 1.5 requests per GB', 5 * 2 ** 20, 5 * 2 ** 30, 'a size from 5MiB to 5GiB'),
  's3.restorePoll': durationSetting('s3.restorePoll', '15m', 'how often restore --wait asks S3 whether cold objects are back online', SECOND, DAY, 'a duration from 1s to 1d'),
  'net.upload.limit': rateSetting('net.upload.limit', 'most bytes per second this home sends to relatives (backups to them, their restores from here), all transfers together'),
  'net.download.limit': rateSetting('net.download.limit', 'most bytes per second this home receives from relatives (their backups to here, restores from them), all transfers together'),
  'net.fullSpeed': {
    default: 'off',
    describe: 'local hours when net.upload.limit and net.download.limit are lifted, like 22:00-07:00 (comma-separated for several)',
    range: 'HH:MM-HH:MM, or off',
    check: (v) => void parseWindows(v, 'net.fullSpeed'),
  },
  'backup.workers': wholeNumber('backup.workers', '2', 'worker threads for hashing and encryption', 1, 64),
  'schedule.backup': { default: '02:00', describe: 'daily backup time, local ("HH:MM"), or off', range: 'HH:MM or off', check: (v) => void parseSchedule(v, 'schedule.backup') },
  'schedule.audit': { default: '1 02:30', describe: 'monthly audit of relatives: day of month and local time ("D HH:MM"), or off', range: 'D HH:MM or off', check: (v) => void parseSchedule(v, 'schedule.audit') },
  'audit.timeout': durationSetting('audit.timeout', '10m', 'how long a relative may take to answer an audit (it is asked once more before it fails)', SECOND, DAY, 'a duration from 1s to 1d'),
  'audit.retryEvery': durationSetting('audit.retryEvery', '1h', 'how often the monthly audit tries again a relative it could not reach', SECOND, DAY, 'a duration from 1s to 1d'),
  'audit.retryFor': durationSetting('audit.retryFor', '24h', 'how long after the monthly audit it keeps trying unreachable relatives, before waiting for next month', 0, 28 * DAY, 'a duration from 0s to 28d'),
  'schedule.scrub': { default: '15 03:00', describe: 'monthly scrub of relatives\' objects kept here ("D HH:MM"), or off', range: 'D HH:MM or off', check: (v) => void parseSchedule(v, 'schedule.scrub') },
  'schedule.check': { default: '22 03:30', describe: 'monthly check of this home\'s own targets: existence and size of every object, and the bytes of a share of them ("D HH:MM"), or off', range: 'D HH:MM or off', check: (v) => void parseSchedule(v, 'schedule.check') },
  'check.readDataSubset': { default: '5%', describe: 'share of objects whose bytes the scheduled check reads and hashes (damaged copies are always read)', range: '0% to 100%', check: (v) => void parseShare(v, 'check.readDataSubset') },
  'alerts.drift.threshold': wholeNumber('alerts.drift.threshold', '500', 'alert when more files than this changed or vanished locally since their backup, before a scheduled backup', 0, 1e9),
  'alerts.email.to': { default: '', describe: 'where alert emails go (addresses, comma-separated); empty: no email', check: emailAddresses('alerts.email.to') },
  'alerts.email.from': { default: '', describe: 'sender of alert emails (default: hearth@<host name>)', check: emailAddresses('alerts.email.from') },
  'alerts.smtp.host': textSetting('mail server that sends alert emails'),
  'alerts.smtp.port': {
    default: '',
    describe: 'mail server port (default: 587 with starttls, 465 with tls, 25 with none)',
    check: (v) => {
      if (v !== '' && !(/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 65535)) throw new Error(`alerts.smtp.port must be a port number (1-65535), got "${v}"`);
    },
  },
  'alerts.smtp.tls': { default: 'starttls', describe: 'starttls (upgrade, required), tls (from the start) or none', check: oneOf('alerts.smtp.tls', ['starttls', 'tls', 'none']) },
  'alerts.smtp.user': textSetting('mail server login; empty: no login'),
  'alerts.smtp.pass': textSetting('mail server password'),
  'alerts.smtp.ca': textSetting('PEM file of the certificate(s) to trust for a mail server with its own certificate; empty: the system\'s'),
  'alerts.webhook': {
    default: '',
    describe: 'http(s) URL that receives alerts as a POST; empty: no webhook',
    check: (v) => void (v === '' || checkWebhookUrl(v)),
  },
  'alerts.webhook.format': { default: 'json', describe: 'json (a document naming the problem, relative and objects) or ntfy (plain text with a Title header)', check: oneOf('alerts.webhook.format', ['json', 'ntfy']) },
  'alerts.resolved': { default: 'on', describe: 'also tell the channels when a problem clears (on/off)', check: oneOf('alerts.resolved', ['on', 'off']) },
};

for (const [key, value] of Object.entries(PRICE_DEFAULTS)) {
  SETTINGS[key] = {
    default: String(value),
    describe: 'a price used by "hearth cost" and restore estimates ($; see node/prices.ts)',
    check: (v) => {
      if (!/^\d+(\.\d+)?$/.test(v)) throw new Error(`${key} must be a number of dollars (or days, or GB) like ${value}, got "${v}"`);
    },
  };
}

export interface SettingEntry {
  key: string;
  value: string;
  default: string;
  /** Whether the value was set (config set), not the default. */
  set: boolean;
  range: string | null;
  describe: string;
}

export class Config {
  readonly file: string;
  data: ConfigFile;

  private constructor(file: string, data: ConfigFile) {
    this.file = file;
    this.data = data;
  }

  static load(file: string): Config {
    let data: ConfigFile = { sources: [], targets: [], settings: {} };
    try {
      data = { ...data, ...JSON.parse(readFileSync(file, 'utf8')) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`config file ${file} is not valid JSON: fix or remove it (${(err as Error).message})`);
    }
    return new Config(file, data);
  }

  save(): void {
    mkdirSync(dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, JSON.stringify(this.data, null, 2) + '\n');
  }

  get(key: string): string {
    const spec = SETTINGS[key];
    if (!spec) throw unknownKey(key);
    return this.data.settings[key] ?? spec.default;
  }

  set(key: string, value: string): void {
    const spec = SETTINGS[key];
    if (!spec) throw unknownKey(key);
    spec.check(value);
    this.data.settings[key] = value;
  }

  /** Every setting with its value, default, range and meaning; a password shows only whether it is set. */
  entries(): SettingEntry[] {
    return Object.entries(SETTINGS).map(([key, spec]) => {
      const set = Object.hasOwn(this.data.settings, key);
      const value = this.get(key);
      return { key, value: key === 'alerts.smtp.pass' && value ? '(set)' : value, default: spec.default, set, range: spec.range ?? null, describe: spec.describe };
    });
  }

  size(key: string): number {
    return parseSize(this.get(key));
  }

  duration(key: string): number {
    return parseDuration(this.get(key));
  }

  ignorePatterns(defaults: readonly string[]): string[] {
    const extra = this.get('ignore').split(',').map((s) => s.trim()).filter(Boolean);
    return this.get('ignore.defaults') === 'on' ? [...defaults, ...extra] : extra;
  }
}

/**
 * The settings as config.json holds them now, for what runs long inside the
 * daemon (bandwidth caps): the file is re-read when its modification time changed,
 * looked at at most once a second. A file that does not parse keeps the last good settings.
 */
export function liveConfig(file: string, initial: Config = Config.load(file)): () => Config {
  let config = initial;
  let mtime = statSync(file, { throwIfNoEntry: false })?.mtimeMs;
  let lookedAt = performance.now();
  return () => {
    if (performance.now() - lookedAt < 1000) return config;
    lookedAt = performance.now();
    const now = statSync(file, { throwIfNoEntry: false })?.mtimeMs;
    if (now === mtime) return config;
    try {
      config = Config.load(file);
      mtime = now;
    } catch {
      // Keep the last good settings; the next command that loads the file says what is wrong.
    }
    return config;
  };
}

function unknownKey(key: string): Error {
  return new Error(`unknown config key "${key}": known keys are ${Object.keys(SETTINGS).join(', ')}`);
}
