// The one interface every place an object can live implements (a local directory,
// a relative's home, Google Drive, S3). Modelled on restic's backend.Backend: a
// handful of whole-object operations; retry and request counting are wrappers
// (RetryTier, CountingTier), not something each place re-implements.
import type { Readable } from 'node:stream';

export type TierKind = 'dir' | 'peer' | 'drive' | 's3';

export interface ObjectInfo {
  name: string;
  size: number;
  /** When the place last wrote the object (ms since the epoch), where it knows: a directory target does. */
  modifiedMs?: number;
  /**
   * Checksums the place keeps for the object and reports here, in the forms of
   * ./checksum.ts: an S3 listing gives the ETag, an S3 HEAD also the SHA-256, a Drive
   * listing the MD5 and SHA-256. Absent where the place keeps none (a directory).
   */
  checksums?: string[];
}

/** What put() learnt of the stored object: recorded with its placement (`place` in docs/catalog-format.md). */
export interface PutReceipt {
  /** The checksum the place keeps for it, as it keeps it (./checksum.ts); the check compares it later. */
  checksum?: string;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * What put() reads from. open(offset) may be called more than once (a retry, or a
 * resumed transfer that continues from the bytes the place already has), so a
 * source is a way to open the bytes, not a one-shot stream.
 */
export interface ObjectSource {
  size: number;
  open(offset: number): Readable;
  /**
   * The same bytes as a local file that stays unchanged until put() returns, when
   * they are one (a spooled object): a tier on this machine may link or copy the
   * file instead of streaming open(), far cheaper for a volume of gigabytes. A
   * link makes the place share the file's inode, so give it to one linking place only.
   */
  file?: string;
}

export interface Tier {
  readonly kind: TierKind;
  /** The target's name as the user gave it (`hearth target add dir PATH --name N`). */
  readonly name: string;
  /** Where an object lives, for people: for a directory target the absolute path. */
  location(name: string): string;
  /** Store an object atomically: readers see the whole object or none of it. A cloud place says what checksum it keeps. */
  put(name: string, source: ObjectSource, signal?: AbortSignal): Promise<PutReceipt | void>;
  /** Read a whole object, or a byte range of it. Throws ObjectNotFoundError. */
  get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  /** Throws ObjectNotFoundError when absent. */
  stat(name: string): Promise<ObjectInfo>;
  list(): AsyncIterable<ObjectInfo>;
  /** Removing an absent object is not an error. */
  delete(name: string): Promise<void>;
  close(): Promise<void>;
  /**
   * Remove what puts that died left behind (partial temp files last written before
   * `olderThanMs`), where a place keeps such things; returns how many.
   */
  removeTempFiles?(olderThanMs: number): Promise<number>;
}

/** The `checksum` field of a `place` record from what put() resolved to: spread into the record. */
export function placedChecksum(receipt: PutReceipt | void): { checksum?: string } {
  return receipt?.checksum ? { checksum: receipt.checksum } : {};
}

export class ObjectNotFoundError extends Error {
  readonly code = 'ENOOBJECT';
  constructor(tier: string, name: string) {
    super(`object ${name} not found on ${tier}`);
    this.name = 'ObjectNotFoundError';
  }
}

/** An error that retrying cannot fix (bad credentials, over quota, not found). */
export class PermanentTierError extends Error {
  readonly permanent = true;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PermanentTierError';
  }
}

/**
 * The whole place cannot take objects now (a full, read-only or unmounted disk):
 * a run stops using it and goes on with the others.
 */
export class TargetUnavailableError extends PermanentTierError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TargetUnavailableError';
  }
}

export function isPermanent(err: unknown): boolean {
  return err instanceof ObjectNotFoundError || (err instanceof Error && (err as { permanent?: boolean }).permanent === true);
}
