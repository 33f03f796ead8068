// The reference for Hearth's transfers: bytes over one bare libp2p stream between
// two processes that run the same libp2p host as a home (node/host.ts: TCP, Noise,
// Yamux, identify, ping, the family DHT), with the heap tuned as a daemon's
// (node/heap-tuning.ts), on 127.0.0.1. The sender reads the files it is given in
// the chunks a put reads its source in (or generates BYTES) and sends them as a put
// does (sendBytes: wait for an empty write queue when the stream is full; as fast
// here as waiting for 'drain'); the receiver hashes them with SHA-256, the least a
// host does with bytes it keeps. Time runs from opening the stream to the
// receiver's answer that it has them all.
// Prints one JSON line: {"bytes", "seconds", "senderCpuSeconds", "receiverCpuSeconds"}.
// Run: node test/bench/bare-stream.ts FILE...   or   node test/bench/bare-stream.ts BYTES
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
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

/** The receiving process: prints its address, answers each stream with the digest and its CPU seconds. */
async function receive(): Promise<void> {
  const node = await host();
  await node.handle(PROTOCOL, (stream: Stream) => {
    const cpu = process.cpuUsage();
    const hash = createHash('sha256');
    let expected: number | undefined;
    let got = 0;
    stream.addEventListener('message', (event) => {
      for (let chunk of event.data instanceof Uint8Array ? [event.data] : event.data) {
        // The first 8 bytes say how many follow.
        if (expected === undefined) {
          expected = Number(Buffer.from(chunk.subarray(0, 8)).readBigUInt64BE());
          chunk = chunk.subarray(8);
        }
        hash.update(chunk);
        got += chunk.byteLength;
      }
      if (got === expected) {
        stream.send(Buffer.from(JSON.stringify({ sha256: hash.digest('hex'), cpuSeconds: cpuSeconds(cpu) })));
        void stream.close();
      }
    });
  });
  process.stdout.write(`${JSON.stringify({ addr: node.getMultiaddrs()[0]!.toString(), peerId: node.peerId.toString() })}\n`);
  process.once('SIGTERM', async () => {
    await node.stop();
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

async function send(args: string[]): Promise<void> {
  const source = sources(args);
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--receive'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const node = await host();
  try {
    let announced = '';
    // Node flags passed on (--trace-gc) may print lines of their own first.
    for await (const line of createInterface({ input: child.stdout! })) if ((announced = line).startsWith('{')) break;
    const { addr, peerId } = JSON.parse(announced) as { addr: string; peerId: string };
    const receiver = peerIdFromString(peerId);
    await node.peerStore.merge(receiver, { multiaddrs: [multiaddr(addr)] });
    await node.dial(receiver);
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    const stream = await node.dialProtocol(receiver, PROTOCOL);
    const answer = new Promise<{ cpuSeconds: number }>((resolve) => {
      stream.addEventListener('message', (event) => resolve(JSON.parse(Buffer.from(event.data.subarray()).toString())), { once: true });
    });
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(source.size));
    await sendBytes(stream, header);
    for await (const chunk of source.open()) await sendBytes(stream, chunk);
    const { cpuSeconds: receiverCpuSeconds } = await answer;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(JSON.stringify({ bytes: source.size, seconds, senderCpuSeconds: cpuSeconds(cpu), receiverCpuSeconds }));
  } finally {
    child.kill('SIGTERM');
    await node.stop();
  }
}

if (process.argv[2] === '--receive') await receive();
else await send(process.argv.slice(2));
