// The home's config file (config.json): sources, targets and settings. Written
// atomically (temp file, fsync, rename) so a crash never leaves half a file.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from './atomic-file.ts';
import { parseDuration, parseSize } from './units.ts';

export interface SourceConfig {
  name: string;
  path: string;
}

export interface DirTargetConfig {
  name: string;
  kind: 'dir';
  path: string;
}

export type TargetConfig = DirTargetConfig;

export interface ConfigFile {
  sources: SourceConfig[];
  targets: TargetConfig[];
  settings: Record<string, string>;
}

interface SettingSpec {
  default: string;
  describe: string;
  check: (value: string) => void;
}

const sizeSetting = (def: string, describe: string): SettingSpec => ({ default: def, describe, check: (v) => void parseSize(v) });

const durationSetting = (def: string, describe: string): SettingSpec => ({ default: def, describe, check: (v) => void parseDuration(v) });

function positiveInt(key: string) {
  return (v: string): void => {
    if (!/^\d+$/.test(v)) throw new Error(`${key} must be a whole number, got "${v}"`);
  };
}

/** Every setting `hearth config set` accepts, with its default. */
export const SETTINGS: Record<string, SettingSpec> = {
  'volume.size': sizeSetting('4GiB', 'unpacked content that fills an ISO volume'),
  ignore: { default: '', describe: 'extra ignore patterns, comma-separated (added to the defaults)', check: () => {} },
  'ignore.defaults': {
    default: 'on',
    describe: 'skip .DS_Store, Thumbs.db, ._*, .git, @eaDir, #recycle (on/off)',
    check: (v) => {
      if (v !== 'on' && v !== 'off') throw new Error('ignore.defaults must be on or off');
    },
  },
  'policy.peers': { default: '2', describe: 'copies of every object kept at relatives (all of them when fewer)', check: positiveInt('policy.peers') },
  'host.deleteDelay': durationSetting('30d', 'how long this home keeps a relative\'s object after it asks to delete it'),
  'host.quota': sizeSetting('1TiB', 'space granted to a relative by default (invite/join --quota overrides)'),
  'replicate.interval': durationSetting('10m', 'how often the daemon retries replication to relatives'),
  name: { default: '', describe: 'this home\'s name, told to relatives when pairing (default: the host name)', check: () => {} },
  'backup.workers': { default: '2', describe: 'worker threads for hashing and encryption', check: positiveInt('backup.workers') },
};

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

function unknownKey(key: string): Error {
  return new Error(`unknown config key "${key}": known keys are ${Object.keys(SETTINGS).join(', ')}`);
}
