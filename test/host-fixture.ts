// A home for network tests: a temporary home directory, its family roster, and a
// real libp2p host on 127.0.0.1 running the pair and status services.
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveKeys } from '../storage/keys.ts';
import { createHearthHost, type HearthHost } from '../node/host.ts';
import { FamilyRoster } from '../node/family.ts';
import { pairService, type PairService } from '../protocol/pair.ts';
import { freeBytesAt, statusService, type StatusService } from '../protocol/status.ts';

export const TEST_VERSION = '0.1.0-test';

export interface TestHome {
  name: string;
  dir: string;
  seed: Buffer;
  roster: FamilyRoster;
  node: HearthHost<{ pair: PairService; status: StatusService }>;
  peerId: string;
  /** Bytes the host claims to store for each asker (status figures). */
  stored: Map<string, number>;
  stop(): Promise<void>;
}

export interface HomeOptions {
  name: string;
  seed?: Buffer;
  /** Reuse a home directory (its roster) instead of a fresh one. */
  dir?: string;
  now?: () => Date;
  strangerGraceMs?: number;
}

export function newSeed(): Buffer {
  return deriveKeys(randomBytes(32)).ed25519Seed;
}

export async function startHome(options: HomeOptions): Promise<TestHome> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), `hearth-${options.name}-`)));
  const seed = options.seed ?? newSeed();
  const roster = await FamilyRoster.open(dir, options.now ? { now: options.now } : {});
  const stored = new Map<string, number>();
  const node = await createHearthHost({
    seed,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    gate: roster,
    knownPeers: roster.members(),
    ...(options.strangerGraceMs !== undefined ? { strangerGraceMs: options.strangerGraceMs } : {}),
    services: {
      pair: pairService({ store: roster, selfName: () => options.name, ...(options.now ? { now: options.now } : {}) }),
      status: statusService({
        source: {
          version: TEST_VERSION,
          quotaFor: (peerId) => roster.member(peerId)?.quotaWeGrantThem ?? 0,
          storedBytesFor: async (peerId) => stored.get(peerId) ?? 0,
          pendingDeletionsFor: async () => 0,
          freeBytes: () => freeBytesAt(dir),
        },
      }),
    },
  });
  return {
    name: options.name,
    dir,
    seed,
    roster,
    node,
    peerId: node.peerId.toString(),
    stored,
    async stop() {
      await node.stop();
    },
  };
}

/** Stop every home and delete the directories the fixture made. */
export async function cleanup(homes: TestHome[], extraDirs: string[] = []): Promise<void> {
  await Promise.all(homes.map((h) => h.stop().catch(() => undefined)));
  await Promise.all([...new Set([...homes.map((h) => h.dir), ...extraDirs])].map((d) => rm(d, { recursive: true, force: true })));
}

/** A helper pairing: `joiner` joins `inviter` with a fresh code. */
export async function pairHomes(inviter: TestHome, joiner: TestHome, quota = 1_000_000): Promise<void> {
  const { code } = await inviter.node.services.pair.invite({ quota });
  await joiner.node.services.pair.join(code, { quota });
}
