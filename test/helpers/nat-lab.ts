// A network-namespace lab of homes behind home routers, built by the tests that use
// it and torn down after them (FIELD-NOTES.md, "Homes behind NAT"):
//
//   home-a (10.1.0.2) -- router-a --+                         +-- router-b -- home-b (10.2.0.2)
//                     MASQUERADE    |  inet: a bridge,        |   MASQUERADE
//                     stateful fw   +- 192.0.2.0/24, 3fff::/64 +   stateful fw
//                                   |                         |
//                  anchor (192.0.2.10)   stranger (192.0.2.30)   server (192.0.2.40)
//
// The routers drop unsolicited inbound TCP and UDP (FORWARD wan->lan only
// ESTABLISHED,RELATED; INPUT on wan NEW tcp/udp dropped), for IPv4 and IPv6 alike;
// `randomFully` makes their NAT pick random source ports (a "hard" NAT). Homes get
// IPv6 addresses from 3fff::/20 (which libp2p treats as public) behind the same closed
// firewall, without NAT. The "internet" answers a dial to a private address it cannot
// route with ICMP unreachable, so such a dial fails at once rather than after libp2p's
// per-address timeout (on the real internet it times out).
//
// Names carry a per-run id, so test files running in parallel do not collide. Needs
// root, iproute2 and iptables (`.ci/run` installs iptables, conntrack, iputils-ping).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** `server`: a small rented machine on the internet (a relay-only anchor). */
export type LabHost = 'inet' | 'anchor' | 'stranger' | 'server' | 'routerA' | 'routerB' | 'homeA' | 'homeB';

/** Addresses of each namespace as the others see it (a home's IPv4 one is its LAN address). */
export const LAB_ADDRS = {
  inet: { ip4: '192.0.2.1', ip6: '3fff::1' },
  anchor: { ip4: '192.0.2.10', ip6: '3fff::10' },
  stranger: { ip4: '192.0.2.30', ip6: '3fff::30' },
  server: { ip4: '192.0.2.40', ip6: '3fff::40' },
  routerA: { ip4: '192.0.2.21', ip6: '3fff::21', lan4: '10.1.0.1', lan6: '3fff:a::1' },
  routerB: { ip4: '192.0.2.22', ip6: '3fff::22', lan4: '10.2.0.1', lan6: '3fff:b::1' },
  homeA: { ip4: '10.1.0.2', ip6: '3fff:a::2' },
  homeB: { ip4: '10.2.0.2', ip6: '3fff:b::2' },
} as const;

export interface NatLabOptions {
  /** `MASQUERADE --random-fully` on both routers: a new external port per flow. */
  randomFully?: boolean;
}

export interface NatLab {
  /** The namespace name of each host. */
  readonly ns: Readonly<Record<LabHost, string>>;
  /** Run a command inside a host's namespace and wait for it; throws with its stderr on failure. */
  exec(host: LabHost, command: string, args: string[]): string;
  /** Like exec, without throwing: exit code and output. */
  run(host: LabHost, command: string, args: string[]): { code: number; stdout: string; stderr: string };
  /** Start a long-running process inside a host's namespace; it is killed at teardown if still running. */
  spawn(host: LabHost, command: string, args: string[], options?: { env?: NodeJS.ProcessEnv }): ChildProcess;
  /** The command line that runs `command args` inside a host's namespace (for helpers that spawn themselves). */
  wrap(host: LabHost, command: string, args: string[]): [string, string[]];
  /** Kill what it spawned, delete every namespace. Safe to call twice. */
  teardown(): void;
}

/** Why the lab cannot be built here, or undefined when it can: tests skip with this reason. */
export function natLabSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'the NAT lab needs Linux network namespaces';
  if (process.getuid?.() !== 0) return 'the NAT lab needs root (it creates network namespaces)';
  for (const [tool, pkg] of [['ip', 'iproute2'], ['iptables', 'iptables'], ['ip6tables', 'iptables']] as const) {
    const probe = spawnSync(tool, tool === 'ip' ? ['-V'] : ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) return `the NAT lab needs ${tool} (Debian package ${pkg}; .ci/run installs it)`;
  }
  const name = `hlprobe${randomBytes(3).toString('hex')}`;
  const added = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (added.status !== 0) return `network namespaces are not available here: ${added.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', name]);
  return undefined;
}

export function createNatLab(options: NatLabOptions = {}): NatLab {
  const id = randomBytes(3).toString('hex');
  const hosts: LabHost[] = ['inet', 'anchor', 'stranger', 'server', 'routerA', 'routerB', 'homeA', 'homeB'];
  const ns = Object.fromEntries(hosts.map((h) => [h, `hl${id}-${h}`])) as Record<LabHost, string>;
  const children = new Set<ChildProcess>();
  let torn = false;

  const sh = (args: string[]): string => {
    const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const inNs = (host: LabHost, args: string[]): string => sh(['ip', 'netns', 'exec', ns[host], ...args]);

  const teardown = (): void => {
    if (torn) return;
    torn = true;
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const host of hosts) spawnSync('ip', ['netns', 'del', ns[host]]);
    process.removeListener('exit', teardown);
  };
  // A test runner that dies still leaves no namespace behind.
  process.once('exit', teardown);

  try {
    for (const host of hosts) {
      sh(['ip', 'netns', 'add', ns[host]]);
      inNs(host, ['ip', 'link', 'set', 'lo', 'up']);
    }
    // The internet: one bridge, a router for the IPv6 home prefixes, and "unreachable" for private IPv4.
    inNs('inet', ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    inNs('inet', ['ip', 'addr', 'add', `${LAB_ADDRS.inet.ip4}/24`, 'dev', 'br0']);
    inNs('inet', ['ip', '-6', 'addr', 'add', `${LAB_ADDRS.inet.ip6}/64`, 'dev', 'br0', 'nodad']);
    inNs('inet', ['ip', 'link', 'set', 'br0', 'up']);
    inNs('inet', ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    inNs('inet', ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
    inNs('inet', ['ip', 'route', 'add', 'unreachable', '10.0.0.0/8']);

    const uplink = (host: 'anchor' | 'stranger' | 'server' | 'routerA' | 'routerB', port: string): void => {
      sh(['ip', 'link', 'add', 'wan', 'netns', ns[host], 'type', 'veth', 'peer', 'name', port, 'netns', ns.inet]);
      inNs('inet', ['ip', 'link', 'set', port, 'master', 'br0']);
      inNs('inet', ['ip', 'link', 'set', port, 'up']);
      inNs(host, ['ip', 'addr', 'add', `${LAB_ADDRS[host].ip4}/24`, 'dev', 'wan']);
      inNs(host, ['ip', '-6', 'addr', 'add', `${LAB_ADDRS[host].ip6}/64`, 'dev', 'wan', 'nodad']);
      inNs(host, ['ip', 'link', 'set', 'wan', 'up']);
      inNs(host, ['ip', 'route', 'add', 'default', 'via', LAB_ADDRS.inet.ip4]);
      inNs(host, ['ip', '-6', 'route', 'add', 'default', 'via', LAB_ADDRS.inet.ip6]);
    };
    uplink('anchor', 'anchor');
    uplink('stranger', 'stranger');
    uplink('server', 'server');

    for (const [router, home, prefix6] of [['routerA', 'homeA', '3fff:a::/64'], ['routerB', 'homeB', '3fff:b::/64']] as const) {
      uplink(router, router === 'routerA' ? 'ra' : 'rb');
      inNs('inet', ['ip', '-6', 'route', 'add', prefix6, 'via', LAB_ADDRS[router].ip6]);
      sh(['ip', 'link', 'add', 'lan', 'netns', ns[router], 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns[home]]);
      const r = LAB_ADDRS[router];
      inNs(router, ['ip', 'addr', 'add', `${r.lan4}/24`, 'dev', 'lan']);
      inNs(router, ['ip', '-6', 'addr', 'add', `${r.lan6}/64`, 'dev', 'lan', 'nodad']);
      inNs(router, ['ip', 'link', 'set', 'lan', 'up']);
      inNs(home, ['ip', 'addr', 'add', `${LAB_ADDRS[home].ip4}/24`, 'dev', 'eth0']);
      inNs(home, ['ip', '-6', 'addr', 'add', `${LAB_ADDRS[home].ip6}/64`, 'dev', 'eth0', 'nodad']);
      inNs(home, ['ip', 'link', 'set', 'eth0', 'up']);
      inNs(home, ['ip', 'route', 'add', 'default', 'via', r.lan4]);
      inNs(home, ['ip', '-6', 'route', 'add', 'default', 'via', r.lan6]);
      inNs(router, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      inNs(router, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
      inNs(router, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', ...(options.randomFully ? ['--random-fully'] : [])]);
      for (const table of ['iptables', 'ip6tables']) {
        inNs(router, [table, '-P', 'FORWARD', 'DROP']);
        inNs(router, [table, '-A', 'FORWARD', '-i', 'lan', '-o', 'wan', '-j', 'ACCEPT']);
        inNs(router, [table, '-A', 'FORWARD', '-i', 'wan', '-o', 'lan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT']);
        for (const proto of ['tcp', 'udp']) inNs(router, [table, '-A', 'INPUT', '-i', 'wan', '-p', proto, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP']);
      }
    }
  } catch (err) {
    teardown();
    throw err;
  }

  const wrap = (host: LabHost, command: string, args: string[]): [string, string[]] => ['ip', ['netns', 'exec', ns[host], command, ...args]];
  return {
    ns,
    exec: (host, command, args) => inNs(host, [command, ...args]),
    run: (host, command, args) => {
      const r = spawnSync('ip', ['netns', 'exec', ns[host], command, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    spawn: (host, command, args, spawnOptions = {}) => {
      const [cmd, full] = wrap(host, command, args);
      // `ip netns exec` execs the command, so the child's pid is the command's own.
      const child = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'], ...(spawnOptions.env ? { env: spawnOptions.env } : {}) });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    wrap,
    teardown,
  };
}

/** Every namespace the lab made still exists (for a test of the teardown). */
export function namespacesExist(lab: NatLab): boolean[] {
  const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return Object.values(lab.ns).map((name) => new RegExp(`^${name}( |$)`, 'm').test(listed));
}
