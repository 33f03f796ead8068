// OpenStack Swift with its s3api middleware, from Debian, on 127.0.0.1: a real S3
// server for the strict "S3-compatible provider" profile (FIELD-NOTES "Cloud"): real
// multipart with ListParts and InvalidPart, Content-MD5 checked, no archive classes,
// no aws-chunked bodies. Everything lives in a temp folder (swift_dir, rings, the
// device), so nothing on the machine is touched. Keys: test:tester / testing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { userInfo, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SwiftServer {
  endpoint: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

const BINARIES = ['swift-proxy-server', 'swift-object-server', 'swift-container-server', 'swift-account-server', 'swift-ring-builder', 'memcached'];

/** Why Swift cannot run here, or undefined when it can. */
export function swiftUnavailable(): string | undefined {
  const missing = BINARIES.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  return missing.length ? `OpenStack Swift is not installed (missing ${missing.join(', ')}; .ci/run installs swift swift-proxy swift-object swift-container swift-account memcached)` : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startSwift(): Promise<SwiftServer> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-swift-'));
  const devices = join(dir, 'node');
  mkdirSync(join(devices, 'd1'), { recursive: true });
  const [proxy, account, container, object, cache] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const user = userInfo().username;
  writeFileSync(join(dir, 'swift.conf'), '[swift-hash]\nswift_hash_path_suffix = hearth-test\nswift_hash_path_prefix = hearth-test\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n');
  const common = (port: number) => `[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = ${port}\nworkers = 0\nuser = ${user}\nswift_dir = ${dir}\ndevices = ${devices}\nmount_check = false\nlog_level = WARNING\n`;
  for (const [kind, port] of [['account', account], ['container', container], ['object', object]] as const) {
    writeFileSync(join(dir, `${kind}-server.conf`), `${common(port)}[pipeline:main]\npipeline = ${kind}-server\n[app:${kind}-server]\nuse = egg:swift#${kind}\n[${kind}-replicator]\n[${kind}-auditor]\n${kind === 'container' ? '[container-updater]\n[container-sync]\n' : ''}${kind === 'account' ? '[account-reaper]\n' : ''}${kind === 'object' ? '[object-updater]\n[object-expirer]\n' : ''}`);
    for (const args of [['create', '8', '1', '1'], ['add', `r1z1-127.0.0.1:${port}/d1`, '1'], ['rebalance']]) {
      const r = spawnSync('swift-ring-builder', [join(dir, `${kind}.builder`), ...args], { encoding: 'utf8' });
      if (r.status !== 0 && !(args[0] === 'rebalance' && r.status === 1)) throw new Error(`swift-ring-builder ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    }
  }
  writeFileSync(
    join(dir, 'proxy-server.conf'),
    `${common(proxy)}[pipeline:main]\npipeline = catch_errors gatekeeper proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server\n` +
      '[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n' +
      '[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = testing .admin\n' +
      '[filter:s3api]\nuse = egg:swift#s3api\n' +
      `[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:${cache}\n` +
      '[filter:catch_errors]\nuse = egg:swift#catch_errors\n[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n' +
      '[filter:listing_formats]\nuse = egg:swift#listing_formats\n[filter:bulk]\nuse = egg:swift#bulk\n[filter:copy]\nuse = egg:swift#copy\n[filter:slo]\nuse = egg:swift#slo\n[filter:dlo]\nuse = egg:swift#dlo\n',
  );
  const children: ChildProcess[] = [];
  let output = '';
  const run = (cmd: string, args: string[]): void => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    children.push(child);
  };
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    })));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    run('memcached', ['-l', '127.0.0.1', '-p', String(cache), '-U', '0', '-u', user]);
    for (const kind of ['account', 'container', 'object', 'proxy']) run(`swift-${kind}-server`, [join(dir, `${kind}-server.conf`)]);
    const deadline = Date.now() + 30_000;
    for (const port of [cache, account, container, object, proxy]) {
      while (!(await listening(port))) {
        if (Date.now() > deadline || children.some((c) => c.exitCode !== null)) throw new Error(`Swift did not start: ${output.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  if (!existsSync(join(dir, 'object.ring.gz'))) throw new Error('swift rings were not built');
  return { endpoint: `http://127.0.0.1:${proxy}`, credentials: { accessKeyId: 'test:tester', secretAccessKey: 'testing' }, stop };
}
