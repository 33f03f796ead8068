// The reference for Hearth's transfers: bytes over one bare libp2p stream between
// two processes that run the same libp2p host as a home (node/host.ts: TCP, Noise,
// Yamux, identify, ping, the family DHT), with the heap tuned as a daemon's
// (node/heap-tuning.ts), on 127.0.0.1. The sender reads the files it is given in
// the chunks a put reads its source in (or generates BYTES) and sends them as a put
// does (sendBytes: wait for an empty write queue when the stream is full; as fast
// here as waiting for 'drain'); the receiver hashes them with SHA-256, the least a
// host does with bytes it keeps. Time runs from opening the stream to the
// receiver's answer that it has them all.
// With --tcp, the same bytes go over one plain TCP socket instead (Node's net, the
// receiver hashing them the same way): the ceiling of any transfer on loopback.
// Prints one JSON line: {"bytes", "seconds", "senderCpuSeconds", "receiverCpuSeconds"}.
// Run: node test/bench/bare-stream.ts [--tcp] FILE...   or   node test/bench/bare-stream.ts [--tcp] BYTES
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Stream } from '@libp2p/interface';
import { createHearthHost, type FamilyGate } from '../../node/host.ts';
import { tuneHeapForTransfers } from '../../node/heap-tuning.ts';
import { sendBytes } from '../../protocol/messages.ts';
import { SOURCE_CHUNK } from '../../protocol/object.ts';

const PROTOCOL = '/hearth-bench/bare/1';
const everyone: FamilyGate = { isMember: () => true, admitsStranger: () => true };
async function host(): Promise<Awaited<ReturnType<typeof createHearthHost>>> {
  const node = await createHearthHost({ seed: randomBytes(32), listen: ['/ip4/127.0.0.1/tcp/0'], gate: everyone });
  tuneHeapForTransfers();
  return node;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

/**
 * What a receiver does with each chunk, whatever carries it: the first 8 bytes say
 * how many follow; the rest is hashed; `done` gets the answer once all arrived.
 */
function receiver(done: (answer: Buffer) => void): (chunk: Uint8Array) => void {
  const cpu = process.cpuUsage();
  const hash = createHash('sha256');
  let header = Buffer.alloc(0);
  let expected: number | undefined;
  let got = 0;
  return (chunk) => {
    if (expected === undefined) {
      // A TCP read may end inside the header.
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      expected = Number(header.readBigUInt64BE());
      chunk = header.subarray(8);
    }
    hash.update(chunk);
    got += chunk.byteLength;
    if (got === expected) done(Buffer.from(JSON.stringify({ sha256: hash.digest('hex'), cpuSeconds: cpuSeconds(cpu) })));
  };
}

/** The receiving process: prints its address, answers each stream with the digest and its CPU seconds. */
async function receive(tcp: boolean): Promise<void> {
  let stop: () => Promise<unknown>;
  let announce: object;
  if (tcp) {
    const server = createServer((socket: Socket) => {
      const take = receiver((answer) => socket.end(answer));
      socket.on('data', take);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    announce = { port: (server.address() as { port: number }).port };
    stop = () => new Promise((resolve) => server.close(resolve));
  } else {
    const node = await host();
    await node.handle(PROTOCOL, (stream: Stream) => {
      const take = receiver((answer) => {
        stream.send(answer);
        void stream.close();
      });
      stream.addEventListener('message', (event) => {
        for (const chunk of event.data instanceof Uint8Array ? [event.data] : event.data) take(chunk);
      });
    });
    announce = { addr: node.getMultiaddrs()[0]!.toString(), peerId: node.peerId.toString() };
    stop = async () => node.stop();
  }
  process.stdout.write(`${JSON.stringify(announce)}\n`);
  process.once('SIGTERM', async () => {
    await stop();
    process.exit(0);
  });
}

function sources(args: string[]): { size: number; open(): AsyncIterable<Uint8Array> } {
  if (args.length === 1 && /^\d+$/.test(args[0]!)) {
    const size = Number(args[0]);
    const chunk = randomBytes(SOURCE_CHUNK);
    return {
      size,
      open: () => Readable.from((function* () {
        for (let sent = 0; sent < size; sent += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, size - sent));
      })()),
    };
  }
  return {
    size: args.reduce((sum, file) => sum + statSync(file).size, 0),
    open: async function* () {
      for (const file of args) yield* createReadStream(file, { highWaterMark: SOURCE_CHUNK });
    },
  };
}

/** One open connection to the receiver: send chunks with backpressure, then wait for its answer. */
interface Link {
  send(chunk: Uint8Array): Promise<void>;
  answer: Promise<{ cpuSeconds: number }>;
  close(): Promise<unknown>;
}

async function libp2pLink(announced: { addr: string; peerId: string }): Promise<{ open(): Promise<Link>; close(): Promise<unknown> }> {
  const node = await host();
  const receiverId = peerIdFromString(announced.peerId);
  await node.peerStore.merge(receiverId, { multiaddrs: [multiaddr(announced.addr)] });
  await node.dial(receiverId);
  return {
    open: async () => {
      const stream = await node.dialProtocol(receiverId, PROTOCOL);
      const answer = new Promise<{ cpuSeconds: number }>((resolve) => {
        stream.addEventListener('message', (event) => resolve(JSON.parse(Buffer.from(event.data.subarray()).toString())), { once: true });
      });
      return { send: (chunk) => sendBytes(stream, chunk), answer, close: () => stream.close() };
    },
    close: async () => node.stop(),
  };
}

function tcpLink(announced: { port: number }): { open(): Promise<Link>; close(): Promise<unknown> } {
  return {
    open: async () => {
      const socket = connect({ port: announced.port, host: '127.0.0.1', noDelay: true });
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const answer = new Promise<{ cpuSeconds: number }>((resolve) => {
        let text = '';
        socket.on('data', (d) => (text += d));
        socket.on('end', () => resolve(JSON.parse(text)));
      });
      return {
        send: async (chunk) => {
          if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
        },
        answer,
        close: async () => socket.end(),
      };
    },
    close: async () => {},
  };
}

async function send(tcp: boolean, args: string[]): Promise<void> {
  const source = sources(args);
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), tcp ? '--receive-tcp' : '--receive'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let transport: { open(): Promise<Link>; close(): Promise<unknown> } | undefined;
  try {
    let announced = '';
    // Node flags passed on (--trace-gc) may print lines of their own first.
    for await (const line of createInterface({ input: child.stdout! })) if ((announced = line).startsWith('{')) break;
    transport = tcp ? tcpLink(JSON.parse(announced)) : await libp2pLink(JSON.parse(announced));
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    const link = await transport.open();
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(source.size));
    await link.send(header);
    for await (const chunk of source.open()) await link.send(chunk);
    const { cpuSeconds: receiverCpuSeconds } = await link.answer;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await link.close();
    console.log(JSON.stringify({ bytes: source.size, seconds, senderCpuSeconds: cpuSeconds(cpu), receiverCpuSeconds }));
  } finally {
    child.kill('SIGTERM');
    await transport?.close();
  }
}

const mode = process.argv[2];
if (mode === '--receive' || mode === '--receive-tcp') await receive(mode === '--receive-tcp');
else if (mode === '--tcp') await send(true, process.argv.slice(3));
else await send(false, process.argv.slice(2));
