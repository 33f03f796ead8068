// Reading plaintext back out of a placed object: a whole blob, or one file's extent
// inside a volume, decrypting only the age chunks that cover it.
import type { Readable } from 'node:stream';
import type { OpenedHeader } from '../storage/age/header.ts';
import { decryptRange, openAgeHeader } from '../storage/age/range.ts';
import type { Tier } from '../storage/tier/tier.ts';

/**
 * Opened age headers of the objects read last. A restore reads thousands of files
 * out of one volume; reading and unwrapping its header for each (a read of the
 * object, an X25519 agreement, HKDF) cost ~0.2 ms of a small file's ~1 ms.
 * An object's ciphertext is the same at every place, so one header serves them all.
 */
export class AgeHeaderCache {
  readonly #entries = new Map<string, Promise<OpenedHeader>>();
  readonly #limit: number;

  constructor(limit = 16) {
    this.#limit = limit;
  }

  get(id: string, open: () => Promise<OpenedHeader>): Promise<OpenedHeader> {
    let entry = this.#entries.get(id);
    if (entry) {
      // Most recently used last, so the oldest is dropped first.
      this.#entries.delete(id);
    } else {
      // A copy whose header fails to open says nothing of the others: not kept.
      entry = open().catch((err: unknown) => {
        if (this.#entries.get(id) === entry) this.#entries.delete(id);
        throw err;
      });
      if (this.#entries.size >= this.#limit) this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#entries.set(id, entry);
    return entry;
  }
}

/**
 * Told when reading a copy failed, whether at once or on the stream: the copy may be
 * damaged. The error alone cannot say (a failed chunk authentication is damage, a
 * dropped disk or an aborted read is not), so the listener verifies the copy itself
 * (node/checks/suspects.ts) rather than trusting the message.
 */
export type ReadFailureListener<O> = (tier: Tier, object: O, error: unknown) => void;

export async function readObjectRange<O extends { id: string; size: number }>(
  tier: Tier,
  object: O,
  identity: Uint8Array,
  offset: number,
  length: number,
  headers?: AgeHeaderCache,
  onFailure?: ReadFailureListener<O>,
): Promise<Readable> {
  const read = (at: number, count: number): Promise<Readable> => tier.get(object.id, { offset: at, length: count });
  const source = { read, encryptedSize: object.size, identity };
  try {
    const header = headers ? await headers.get(object.id, () => openAgeHeader(source)) : undefined;
    const plain = await decryptRange({ ...source, plainOffset: offset, plainLength: length, header });
    if (onFailure) plain.once('error', (err) => onFailure(tier, object, err));
    return plain;
  } catch (err) {
    onFailure?.(tier, object, err);
    throw err;
  }
}
