// Is the copy of an object at one place the object the catalog recorded? Existence
// and size from one stat; with the bytes read, their Merkle root (storage/merkle.ts)
// against the root the catalog kept when the object was encrypted. Only the Tier
// interface is used, so every kind of place can be checked the same way.
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { MerkleBuilder } from '../../storage/merkle.ts';
import { ObjectNotFoundError, type ObjectSource, type Tier, type TierKind } from '../../storage/tier/tier.ts';
import { deferredReadable } from '../deferred-stream.ts';

/** Kinds of target the check covers; it uses only the Tier interface. */
export const CHECKED_KINDS: readonly TierKind[] = ['dir', 's3', 'drive'];

/**
 * Kinds whose bytes are read for nothing. An S3 read is a billed request and egress,
 * and an archived object cannot be read without a paid retrieval: S3 copies are
 * checked from one listing per 1,000 objects (existence, size, storage class) and
 * never read (DESIGN.md, Checks: "nothing is retrieved from cold storage"). Drive
 * copies are checked the same way, from one listing of the folder per 1,000 files.
 */
export const FREE_READ_KINDS: readonly TierKind[] = ['dir'];

/** What a listing says of one copy. */
export interface ListedCopy {
  size: number;
  storageClass?: string;
}

/** What the catalog says an object is: enough to recognise its bytes. */
export interface ExpectedObject {
  id: string;
  /** Encrypted bytes. */
  size: number;
  merkleRoot: string;
  leafSize: number;
}

/** missing: no such object there; size: another length; merkle: other bytes; unreadable: the read failed; class: another storage class than the target's. */
export type CopyFault = 'missing' | 'size' | 'merkle' | 'unreadable' | 'class';

export interface CopyVerdict {
  fault?: CopyFault;
  /** One line for a person, when there is a fault. */
  detail?: string;
  /** Bytes read to decide (0 without readData). */
  readBytes: number;
}

/**
 * Checks one copy. Throws, without a verdict, when the place itself cannot be
 * reached (a disk that is not mounted, a relative offline): that says nothing of
 * the copy, and must not mark every object on an unplugged disk as damaged.
 */
export async function verifyCopy(tier: Tier, object: ExpectedObject, readData: boolean, signal?: AbortSignal, listing?: { copy: ListedCopy | undefined; storageClass?: string }): Promise<CopyVerdict> {
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
  if (!readData || !FREE_READ_KINDS.includes(tier.kind)) return { readBytes: 0 };
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
