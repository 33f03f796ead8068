// A home's state directory: identity file, config, catalog database, spool, lock.
// One process owns a home at a time; the lock file holds its pid so a lock left
// by a crashed process is recognised and taken over.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomicSync } from './atomic-file.ts';
import { deriveKeys, phraseToEntropy, entropyToPhrase, type HomeKeys } from '../storage/keys.ts';
import { Config } from './config.ts';

export function defaultHomeDir(env = process.env): string {
  if (env.HEARTH_HOME) return resolve(env.HEARTH_HOME);
  const dataHome = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(dataHome, 'hearth');
}

interface IdentityFile {
  version: 1;
  entropy: string;
}

export class HomePaths {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = resolve(dir);
  }
  get identity(): string { return join(this.dir, 'identity.json'); }
  get config(): string { return join(this.dir, 'config.json'); }
  get catalog(): string { return join(this.dir, 'catalog'); }
  get spool(): string { return join(this.dir, 'spool'); }
  get outbox(): string { return join(this.dir, 'spool', 'outbox'); }
  get hosted(): string { return join(this.dir, 'hosted'); }
  get lock(): string { return join(this.dir, 'lock'); }
  get socket(): string { return join(this.dir, 'control.sock'); }
}

/** Create a new home from a phrase. Refuses to overwrite an existing identity. */
export function createIdentity(paths: HomePaths, phrase: string): HomeKeys {
  const entropy = phraseToEntropy(phrase);
  if (existsSync(paths.identity)) throw new Error(`${paths.dir} already holds a Hearth identity: use another --home, or remove it first if you really mean to replace it`);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const file: IdentityFile = { version: 1, entropy: entropy.toString('hex') };
  writeFileAtomicSync(paths.identity, JSON.stringify(file) + '\n', 0o600);
  return deriveKeys(entropy);
}

export function loadIdentity(paths: HomePaths): HomeKeys {
  let text: string;
  try {
    text = readFileSync(paths.identity, 'utf8');
  } catch {
    throw new Error(`no Hearth identity in ${paths.dir}: run "hearth init" (or "hearth init --recover") first`);
  }
  const file = JSON.parse(text) as IdentityFile;
  return deriveKeys(Buffer.from(file.entropy, 'hex'));
}

export function loadPhrase(paths: HomePaths): string {
  const file = JSON.parse(readFileSync(paths.identity, 'utf8')) as IdentityFile;
  return entropyToPhrase(Buffer.from(file.entropy, 'hex'));
}

export class HomeLock {
  private readonly file: string;
  private constructor(file: string) {
    this.file = file;
  }

  /** Take the home's lock, or throw naming the process that holds it. */
  static acquire(paths: HomePaths): HomeLock {
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(paths.lock, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return new HomeLock(paths.lock);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(readFileSync(paths.lock, 'utf8').trim());
        if (pid && pid !== process.pid && processAlive(pid)) {
          throw new Error(`home ${paths.dir} is in use by process ${pid} (a running daemon or backup): wait for it, or stop it first`);
        }
        rmSync(paths.lock, { force: true });
      }
    }
    throw new Error(`could not lock home ${paths.dir}: remove ${paths.lock} if no Hearth process is running`);
  }

  release(): void {
    rmSync(this.file, { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function loadConfig(paths: HomePaths): Config {
  return Config.load(paths.config);
}
