// Where an object's ciphertext can be read when a place needs a copy, cheapest
// first: the outbox, a directory target, a relative. Nothing is read here: each
// source carries the catalog's Merkle root, which a receiving relative checks
// before the object becomes visible, so a damaged copy is refused there and never
// spread. Local files are read directly in SOURCE_CHUNK pieces: through a tier's
// get() they came in 64 KiB reads and a pipe, which cost the owner about 0.4
// CPU-seconds per GiB more and sent 16 times as many chunks.
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Tier } from '../../storage/tier/tier.ts';
import type { HashedObjectSource } from '../../storage/tier/peer.ts';
import { SOURCE_CHUNK } from '../../protocol/object.ts';
import { deferredReadable } from '../deferred-stream.ts';
import type { HeldObject } from './reconciler.ts';

/** A place to read from, and the home's own target it reads, if it is one (to report a bad copy there). */
export type Source = HashedObjectSource & { target?: Tier };

export interface SourceOptions {
  outboxDir: string;
  /** The home's own targets; those that hold a copy not marked damaged are read. */
  localTiers: Tier[];
  /** Relatives that answer now, as tiers named by PeerId. */
  relatives?: Tier[];
}

export function objectSources(object: HeldObject, o: SourceOptions): Source[] {
  const root = { size: object.size, merkleRoot: object.merkleRoot, leafSize: object.leafSize };
  const fileSource = (path: string): HashedObjectSource => ({ ...root, open: (offset) => createReadStream(path, { start: offset, highWaterMark: SOURCE_CHUNK }) });
  const sources: Source[] = [];
  const outbox = join(o.outboxDir, object.id);
  if (existsSync(outbox)) sources.push(fileSource(outbox));
  const healthy = (t: Tier): boolean => object.placements.some((p) => p.target === t.name && p.damaged === undefined);
  const remote = (tier: Tier): Source => ({ ...root, open: (offset) => deferredReadable(() => tier.get(object.id, { offset, length: object.size - offset })) });
  // A directory target's location is the object's file; Drive and S3 copies are read
  // through their tiers (a staged blob on Drive is how a returning relative gets it).
  for (const tier of o.localTiers.filter(healthy)) sources.push(tier.kind === 'dir' ? { ...fileSource(tier.location(object.id)), target: tier } : remote(tier));
  for (const tier of (o.relatives ?? []).filter((t) => object.placements.some((p) => p.target === t.name))) sources.push(remote(tier));
  return sources;
}
