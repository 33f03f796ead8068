// `hearth daemon --announce`: a home behind a forwarded port (a router, a container's
// published port) hands out the forwarded address, and a relative pairs through it.
// The "router" is a TCP forwarder on 127.0.0.1 run by the test.
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInvite } from '../protocol/invite.ts';
import { hearth, hearthAsync, hearthJson } from './helpers/cli.ts';
import { startDaemon, type RunningDaemon } from './helpers/daemon.ts';

let work: string;
const daemons: RunningDaemon[] = [];
let forwarder: Server | undefined;
const sockets = new Set<Socket>();

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hearth-announce-'));
});
afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => (forwarder ? forwarder.close(() => resolve()) : resolve()));
  rmSync(work, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Listens on a port of its own and forwards each connection to whatever `target()` names then. */
async function startForwarder(target: () => number): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer((inbound) => {
    const port = target();
    connections++;
    const outbound = createConnection({ host: '127.0.0.1', port });
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  forwarder = server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, connections: () => connections };
}

describe('hearth daemon --announce', () => {
  it('puts the announced address in invite codes, and a relative pairs through it', async () => {
    const a = join(work, 'a');
    const b = join(work, 'b');
    hearthJson(a, ['init']);
    hearthJson(b, ['init']);
    // The daemon names only the announced address, so the test picks its listening port.
    const listening = await freePort();
    const forwarded = await startForwarder(() => listening);
    const announced = `/ip4/127.0.0.1/tcp/${forwarded.port}`;
    const daemonA = await startDaemon(a, ['--listen', `/ip4/127.0.0.1/tcp/${listening}`, '--announce', announced]);
    daemons.push(daemonA);
    daemons.push(await startDaemon(b));
    expect(daemonA.addrs).toEqual([`${announced}/p2p/${daemonA.peerId}`]);

    const { code } = hearthJson<{ code: string }>(a, ['invite', '--name', 'b']);
    expect(parseInvite(code).addrs).toEqual([announced]);
    // Asynchronously: the forwarder runs in this process.
    const joined = await hearthAsync(b, ['join', code, '--name', 'a', '--json']);
    expect(joined.code, joined.stderr).toBe(0);
    expect(JSON.parse(joined.stdout)).toMatchObject({ peerId: daemonA.peerId });
    expect(forwarded.connections()).toBeGreaterThan(0);
  });

  it('refuses an address that is not a multiaddr with one line, before starting', () => {
    const r = hearth(join(work, 'a'), ['daemon', '--listen', '/ip4/127.0.0.1/tcp/0', '--announce', '203.0.113.7:4001']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/^hearth: error: --announce "203\.0\.113\.7:4001" is not a multiaddr .*; write it like \/ip4\//);
  });
});
