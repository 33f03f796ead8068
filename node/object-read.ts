// Reading plaintext back out of a placed object: a whole blob, or one file's extent
// inside a volume, decrypting only the age chunks that cover it.
import type { Readable } from 'node:stream';
import { decryptRange } from '../storage/age/range.ts';
import type { Tier } from '../storage/tier/tier.ts';

export function readObjectRange(tier: Tier, object: { id: string; size: number }, identity: Uint8Array, offset: number, length: number): Promise<Readable> {
  return decryptRange({
    read: (at, count) => tier.get(object.id, { offset: at, length: count }),
    encryptedSize: object.size,
    identity,
    plainOffset: offset,
    plainLength: length,
  });
}

