// Is the copy of an object at one place the object the catalog recorded? Existence
// and size from one stat; with the bytes read, their Merkle root (storage/merkle.ts)
// against the root the catalog kept when the object was encrypted. Only the Tier
// interface is used, so every kind of place can be checked the same way.
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { MerkleBuilder } from '../../storage/merkle.ts';
import { ObjectNotFoundError, type ObjectSource, type Tier, type TierKind } from '../../storage/tier/tier.ts';
import { deferredReadable } from '../deferred-stream.ts';

/**
 * Kinds of target the check covers. A directory is read for free; an S3 target in
 * an archive class cannot be read without a paid retrieval, and its HEAD-based check
 * (size, class, stored checksum) is the cloud check's (DESIGN.md, Checks). A kind is
 * added here once its reads cost nothing: the check itself uses only the Tier interface.
 */
export const CHECKED_KINDS: readonly TierKind[] = ['dir'];

/** What the catalog says an object is: enough to recognise its bytes. */
export interface ExpectedObject {
  id: string;
  /** Encrypted bytes. */
  size: number;
  merkleRoot: string;
  leafSize: number;
}

/** missing: no such object there; size: another length; merkle: other bytes; unreadable: the read failed. */
export type CopyFault = 'missing' | 'size' | 'merkle' | 'unreadable';

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
export async function verifyCopy(tier: Tier, object: ExpectedObject, readData: boolean, signal?: AbortSignal): Promise<CopyVerdict> {
  let size: number;
  try {
    size = (await tier.stat(object.id)).size;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return { fault: 'missing', detail: `not on ${tier.name}`, readBytes: 0 };
    throw err;
  }
  if (size !== object.size) return { fault: 'size', detail: `${size} bytes on ${tier.name}, the catalog says ${object.size}`, readBytes: 0 };
  if (!readData) return { readBytes: 0 };
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
