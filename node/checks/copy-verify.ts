// Is the copy of an object at one place the object the catalog recorded? Existence
// and size from one stat; with the bytes read, their Merkle root (storage/merkle.ts)
// against the root the catalog kept when the object was encrypted; for a cloud copy,
// which is not read, the checksum the place keeps against the one recorded when it
// was placed. Only the Tier interface is used, so every kind of place can be checked
// the same way.
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { MerkleBuilder } from '../../storage/merkle.ts';
import { ObjectNotFoundError, type ObjectSource, type Tier, type TierKind } from '../../storage/tier/tier.ts';
import { checksumAlgorithm, isKnownChecksum, reportedChecksum } from '../../storage/tier/checksum.ts';
import { deferredReadable } from '../deferred-stream.ts';

/** Kinds of target the check covers; it uses only the Tier interface. */
export const CHECKED_KINDS: readonly TierKind[] = ['dir', 's3', 'drive'];

/**
 * Kinds whose bytes are read for nothing. An S3 read is a billed request and egress,
 * and an archived object cannot be read without a paid retrieval: S3 copies are
 * checked from one listing per 1,000 objects (existence, size, storage class) and
 * never read (DESIGN.md, Checks: "nothing is retrieved from cold storage"). Drive
 * copies are checked the same way, from one listing of the folder per 1,000 files.
 * Both compare the checksum the place keeps with the one recorded at placement.
 */
export const FREE_READ_KINDS: readonly TierKind[] = ['dir'];

/** What a listing says of one copy. */
export interface ListedCopy {
  size: number;
  storageClass?: string;
  /** Checksums the listing reports (storage/tier/checksum.ts): an S3 ETag, Drive's SHA-256 and MD5. */
  checksums?: string[];
}

/** What the catalog says an object is: enough to recognise its bytes. */
export interface ExpectedObject {
  id: string;
  /** Encrypted bytes. */
  size: number;
  merkleRoot: string;
  leafSize: number;
}

/**
 * missing: no such object there; size: another length; merkle: other bytes; unreadable:
 * the read failed; class: another storage class than the target's; checksum: the place
 * keeps another checksum than when the copy was placed (its bytes were replaced).
 */
export type CopyFault = 'missing' | 'size' | 'merkle' | 'unreadable' | 'class' | 'checksum';

export interface CopyVerdict {
  fault?: CopyFault;
  /** One line for a person, when there is a fault. */
  detail?: string;
  /** Bytes read to decide (0 without readData). */
  readBytes: number;
  /** Stats sent (an S3 HEAD) because the listing lacked the recorded checksum's algorithm. */
  stats?: number;
}

/**
 * Checks one copy. Throws, without a verdict, when the place itself cannot be
 * reached (a disk that is not mounted, a relative offline): that says nothing of
 * the copy, and must not mark every object on an unplugged disk as damaged.
 */
export async function verifyCopy(
  tier: Tier,
  object: ExpectedObject,
  readData: boolean,
  signal?: AbortSignal,
  /** From a listing of the whole target: what it says of this copy, the target's class, and the checksum recorded with the placement. */
  listing?: { copy: ListedCopy | undefined; storageClass?: string; checksum?: string },
): Promise<CopyVerdict> {
  let size: number;
  if (listing) {
    // From a listing taken for the whole check: no request per object.
    if (!listing.copy) return { fault: 'missing', detail: `not on ${tier.name}`, readBytes: 0 };
    size = listing.copy.size;
    const stored = listing.copy.storageClass ?? 'STANDARD';
    if (listing.storageClass && size === object.size && stored !== listing.storageClass) {
      return { fault: 'class', detail: `stored as ${stored} on ${tier.name}, the target keeps ${listing.storageClass} (a lifecycle rule, or a copy made outside Hearth)`, readBytes: 0 };
    }
  } else {
    try {
      size = (await tier.stat(object.id)).size;
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return { fault: 'missing', detail: `not on ${tier.name}`, readBytes: 0 };
      throw err;
    }
  }
  if (size !== object.size) return { fault: 'size', detail: `${size} bytes on ${tier.name}, the catalog says ${object.size}`, readBytes: 0 };
  let stats = 0;
  if (listing?.copy && isKnownChecksum(listing.checksum)) {
    const replaced = await checksumFault(tier, object.id, listing.checksum, listing.copy.checksums);
    if (replaced.fault) return { ...replaced, readBytes: 0 };
    stats = replaced.stats;
  }
  if (!readData || !FREE_READ_KINDS.includes(tier.kind)) return { readBytes: 0, stats };
  const tree = new MerkleBuilder(object.leafSize);
  try {
    for await (const chunk of await tier.get(object.id, undefined, signal)) {
      tree.update(chunk as Buffer);
    }
  } catch (err) {
    signal?.throwIfAborted();
    // A read that fails on a file that is still there is the copy's fault; on a place gone away, not.
    await tier.stat(object.id);
    return { fault: 'unreadable', detail: `reading it on ${tier.name} failed: ${(err as Error).message}`, readBytes: tree.size };
  }
  if (tree.size !== object.size) return { fault: 'size', detail: `${tree.size} bytes read on ${tier.name}, the catalog says ${object.size}`, readBytes: tree.size };
  const root = tree.digest();
  if (root !== object.merkleRoot) return { fault: 'merkle', detail: `its bytes on ${tier.name} differ from the backup (Merkle root ${root.slice(0, 12)}… instead of ${object.merkleRoot.slice(0, 12)}…)`, readBytes: tree.size };
  return { readBytes: tree.size };
}

/**
 * The recorded checksum against the one the listing reports in the same algorithm,
 * or, where the listing has none of that algorithm (an S3 listing gives ETags, the
 * SHA-256 only a HEAD), one stat of this object. A place that keeps none of that
 * algorithm now kept one when the copy was placed: the object was written again.
 */
async function checksumFault(tier: Tier, id: string, recorded: string, listed: string[] | undefined): Promise<{ fault?: CopyFault; detail?: string; stats: number }> {
  let reported = reportedChecksum(recorded, listed);
  let stats = 0;
  if (reported === undefined) {
    stats = 1;
    try {
      reported = reportedChecksum(recorded, (await tier.stat(id)).checksums);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return { fault: 'missing', detail: `gone from ${tier.name} since it was listed`, stats };
      throw err;
    }
  }
  const algorithm = checksumAlgorithm(recorded);
  if (reported === undefined) return { fault: 'checksum', detail: `${tier.name} keeps no ${algorithm} checksum for it now, where it kept ${short(recorded)} when Hearth placed it: the object was written again outside Hearth`, stats };
  if (reported !== recorded) return { fault: 'checksum', detail: `its bytes on ${tier.name} were replaced: the store keeps ${algorithm} ${short(reported)} where it kept ${short(recorded)} when Hearth placed it`, stats };
  return { stats };
}

/** Enough of a checksum to tell two apart in a message. */
function short(checksum: string): string {
  const value = checksum.slice(checksum.indexOf(':') + 1);
  return value.length > 16 ? `${value.slice(0, 12)}…` : value;
}

/**
 * The object's bytes at `from`, as a source for put() to another place, checked on
 * the way: the stream fails before it ends (so an atomic put publishes nothing)
 * unless the bytes have the recorded size and Merkle root. A resumed read from an
 * offset cannot be checked this way; the caller verifies the copy once written.
 * No `file` is given, even for a local copy: a directory target would hard-link it,
 * and two targets sharing one inode share its damage.
 */
export function verifiedSource(from: Tier, object: ExpectedObject, signal?: AbortSignal): ObjectSource {
  return {
    size: object.size,
    open: (offset) =>
      deferredReadable(async () => {
        const bytes = await from.get(object.id, offset === 0 ? undefined : { offset, length: object.size - offset }, signal);
        return offset === 0 ? pipeline(bytes, checking(object, from.name), () => {}) : bytes;
      }),
  };
}

function checking(object: ExpectedObject, place: string): Transform {
  const tree = new MerkleBuilder(object.leafSize);
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      tree.update(chunk);
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      if (tree.size !== object.size) return callback(new Error(`the copy at ${place} has ${tree.size} bytes, the catalog says ${object.size}`));
      if (tree.digest() !== object.merkleRoot) return callback(new Error(`the copy at ${place} is damaged too (its Merkle root differs)`));
      callback();
    },
  });
}
