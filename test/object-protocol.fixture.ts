// Test-only libp2p nodes for /hearth/object/1: TCP + Noise + Yamux on 127.0.0.1,
// identities from fixed seeds. Run as a script it is a host in its own process (so
// the tests can measure its memory): `node test/object-protocol.fixture.ts HOME SEED
// MEMBER_PEER_ID [WRITE_BYTES_PER_SECOND]`; it prints {"addr": ...} on stdout and
// stops on SIGTERM. WRITE_BYTES_PER_SECOND makes its disk writes deliberately slow.
// Started with --expose-gc it samples its live memory (heap + array buffers after a
// full GC) every 100 ms and answers a "memory" line on stdin with the peak.
import { ping } from '@libp2p/ping';
import { createCipheriv, createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { tcp } from '@libp2p/tcp';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { PeerId, Stream } from '@libp2p/interface';
import { ObjectService } from '../protocol/object.ts';
import { StreamReader, sendJson } from '../protocol/messages.ts';
import { HostStore, type DeclaredObject, type HostStoreOptions, type Upload } from '../storage/hoststore/host-store.ts';
import { MERKLE_LEAF_SIZE, MerkleBuilder } from '../storage/merkle.ts';
import type { ObjectSource } from '../storage/tier/tier.ts';

/** A bare stream that receives and hashes bytes: the baseline the object protocol is measured against. */
export const BARE_PROTOCOL = '/hearth-test/bare/1';

export async function startNode(seedByte: number): Promise<Libp2p> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(seedByte));
  return createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Owners ping a relative before trusting a connection to it (node/replicator.ts reach()).
    services: { ping: ping() },
  });
}

/** Teach `from` where `to` listens, so it can dial `to` by PeerId. */
export async function introduce(from: Libp2p, to: Libp2p): Promise<void> {
  await from.peerStore.merge(to.peerId, { multiaddrs: to.getMultiaddrs() });
}

export interface TestHost {
  node: Libp2p;
  store: HostStore;
  service: ObjectService;
  stop(): Promise<void>;
}

/** A real HostStore whose uploads write no faster than a given rate, like a slow disk. */
class SlowHostStore extends HostStore {
  readonly #bytesPerSecond: number;

  constructor(options: HostStoreOptions, bytesPerSecond: number) {
    super(options);
    this.#bytesPerSecond = bytesPerSecond;
  }

  override async beginPut(owner: string, id: string, declared: DeclaredObject): Promise<Upload> {
    const upload = await super.beginPut(owner, id, declared);
    const write = upload.write.bind(upload);
    upload.write = async (chunks) => {
      const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
      await sleep((length / this.#bytesPerSecond) * 1000);
      await write(chunks);
    };
    return upload;
  }
}

/** What an owner declares when it puts `data`: its size and Merkle root. */
export function declaredFor(data: Uint8Array, leafSize = MERKLE_LEAF_SIZE): DeclaredObject {
  const merkle = new MerkleBuilder(leafSize);
  merkle.update(data);
  return { size: data.byteLength, merkleRoot: merkle.digest(), leafSize };
}

export async function startHost(seedByte: number, members: () => PeerId[], storeOptions: HostStoreOptions, writeBytesPerSecond?: number, log?: (line: string) => void): Promise<TestHost> {
  const node = await startNode(seedByte);
  const store = writeBytesPerSecond ? new SlowHostStore(storeOptions, writeBytesPerSecond) : new HostStore(storeOptions);
  const service = new ObjectService({ registrar: node }, { store, isMember: (peer) => members().some((m) => m.equals(peer)), log });
  await service.start();
  await node.handle(BARE_PROTOCOL, handleBare);
  return {
    node,
    store,
    service,
    stop: async () => {
      await service.stop();
      await node.stop();
    },
  };
}

// Reads a JSON {size} header, then size raw bytes, hashing them; answers {sha256}.
async function handleBare(stream: Stream): Promise<void> {
  const reader = new StreamReader(stream);
  try {
    const { size } = await reader.readJson(1024);
    const hash = createHash('sha256');
    for await (const batch of reader.readBytes(size as number)) for (const chunk of batch) hash.update(chunk);
    await sendJson(stream, { sha256: hash.digest('hex') }, 1024);
    await stream.close();
  } catch (err) {
    stream.abort(err as Error);
  } finally {
    reader.detach();
  }
}

const GENERATED_CHUNK = 1024 * 1024;

/**
 * `size` pseudo-random bytes made on the fly (AES-CTR keystream, one IV per MiB),
 * so gigabyte objects need neither memory nor a file, and open(offset) is cheap.
 */
export function generatedSource(size: number, seed: number): ObjectSource & { opened: { offset: number; bytes: number }[] } {
  const key = Buffer.alloc(16, seed);
  const zeros = Buffer.alloc(GENERATED_CHUNK);
  const opened: { offset: number; bytes: number }[] = [];
  return {
    size,
    opened,
    open(offset: number): Readable {
      const record = { offset, bytes: 0 };
      opened.push(record);
      return Readable.from(
        (function* () {
          for (let index = Math.floor(offset / GENERATED_CHUNK); index * GENERATED_CHUNK < size; index++) {
            const iv = Buffer.alloc(16);
            iv.writeUInt32BE(index, 0);
            const start = index * GENERATED_CHUNK;
            const chunk = createCipheriv('aes-128-ctr', key, iv).update(zeros.subarray(0, Math.min(GENERATED_CHUNK, size - start)));
            const piece = chunk.subarray(Math.max(0, offset - start));
            record.bytes += piece.byteLength;
            yield piece;
          }
        })(),
        { objectMode: false },
      );
    },
  };
}

if (import.meta.main) {
  const [home, seed, member, writeRate] = process.argv.slice(2);
  const { peerIdFromString } = await import('@libp2p/peer-id');
  const memberId = peerIdFromString(member);
  const host = await startHost(Number(seed), () => [memberId], { home, quotaFor: () => Infinity }, writeRate ? Number(writeRate) : undefined);
  const gc = (globalThis as { gc?: () => void }).gc;
  let livePeak = 0;
  if (gc) {
    setInterval(() => {
      gc();
      const { heapUsed, arrayBuffers } = process.memoryUsage();
      livePeak = Math.max(livePeak, heapUsed + arrayBuffers);
    }, 100).unref();
  }
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'memory') process.stdout.write(`${JSON.stringify({ livePeak })}\n`);
  });
  process.stdout.write(`${JSON.stringify({ addr: host.node.getMultiaddrs()[0].toString(), peerId: host.node.peerId.toString() })}\n`);
  process.once('SIGTERM', () => {
    host.stop().then(() => process.exit(0), () => process.exit(1));
  });
}
