// A 1 GiB /hearth/object/1 put over loopback next to a bare libp2p stream of the
// same bytes, to the same host process (test/object-protocol.fixture.ts), rounds
// alternating so that load from other work on the machine hits both alike. Also
// reports each side's CPU seconds per transfer, which load disturbs far less than
// wall time, and runs test/bench/bare-stream.ts once as the standalone reference.
// Prints one JSON line per transfer, then a summary line with the host's peak RSS.
// Run: node test/bench/put-throughput.ts [BYTES] [ROUNDS]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Libp2p } from 'libp2p';
import type { PeerId } from '@libp2p/interface';
import { sendExactly, sendJson, StreamReader } from '../../protocol/messages.ts';
import { merkleRootOfSource } from '../../protocol/object.ts';
import { MERKLE_LEAF_SIZE } from '../../storage/merkle.ts';
import { PeerTier } from '../../storage/tier/peer.ts';
import type { ObjectSource } from '../../storage/tier/tier.ts';
import { BARE_PROTOCOL, generatedSource, startNode } from '../object-protocol.fixture.ts';

const size = Number(process.argv[2] ?? 1 << 30);
const rounds = Number(process.argv[3] ?? 3);
const repo = fileURLToPath(new URL('../..', import.meta.url));
const CLOCK_TICKS = 100;

async function bareTransfer(owner: Libp2p, host: PeerId, source: ObjectSource): Promise<void> {
  const stream = await owner.dialProtocol(host, BARE_PROTOCOL);
  const reader = new StreamReader(stream);
  try {
    await sendJson(stream, { size: source.size }, 1024);
    await sendExactly(stream, source.open(0), source.size);
    await reader.readJson(1024);
    await stream.close();
  } finally {
    reader.detach();
  }
}

async function cpuSecondsOf(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

const home = await mkdtemp(join(tmpdir(), 'hearth-put-bench-'));
const owner = await startNode(1);
const child = spawn(process.execPath, [join(repo, 'test/object-protocol.fixture.ts'), home, '2', owner.peerId.toString()], { stdio: ['pipe', 'pipe', 'inherit'] });
try {
  const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  const { addr, peerId } = JSON.parse(first.value as string) as { addr: string; peerId: string };
  const hostId = peerIdFromString(peerId);
  await owner.peerStore.merge(hostId, { multiaddrs: [multiaddr(addr)] });
  const source = generatedSource(size, 9);
  const declared = { ...source, merkleRoot: await merkleRootOfSource(source, MERKLE_LEAF_SIZE), leafSize: MERKLE_LEAF_SIZE };
  const tier = new PeerTier({ name: 'bench', peerId: hostId, node: owner });

  const best = { bare: Infinity, put: Infinity };
  for (let round = 0; round < rounds; round++) {
    for (const kind of ['bare', 'put'] as const) {
      const hostCpu = await cpuSecondsOf(child.pid!);
      const ownerCpu = process.cpuUsage();
      const start = performance.now();
      if (kind === 'bare') await bareTransfer(owner, hostId, source);
      else await tier.put(`b${round}`, declared);
      const seconds = (performance.now() - start) / 1000;
      const ownerUsed = process.cpuUsage(ownerCpu);
      best[kind] = Math.min(best[kind], seconds);
      console.log(JSON.stringify({
        kind,
        round,
        MBps: Math.round(size / 1e6 / seconds),
        hostCpuSeconds: Number(((await cpuSecondsOf(child.pid!)) - hostCpu).toFixed(2)),
        ownerCpuSeconds: Number(((ownerUsed.user + ownerUsed.system) / 1e6).toFixed(2)),
      }));
      if (kind === 'put') await rm(join(home, 'hosted'), { recursive: true, force: true });
    }
  }
  const reference = JSON.parse(spawnSync(process.execPath, [join(repo, 'test/bench/bare-stream.ts'), String(size)], { encoding: 'utf8' }).stdout) as { bytes: number; seconds: number };
  const bareMBps = size / 1e6 / best.bare;
  const putMBps = size / 1e6 / best.put;
  console.log(JSON.stringify({
    bytes: size,
    bestBareMBps: Math.round(bareMBps),
    bestPutMBps: Math.round(putMBps),
    ratio: Number((putMBps / bareMBps).toFixed(2)),
    bareStreamScriptMBps: Math.round(reference.bytes / 1e6 / reference.seconds),
    hostPeakRssMiB: Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024),
  }));
} finally {
  child.kill('SIGTERM');
  await owner.stop();
  await rm(home, { recursive: true, force: true });
}
