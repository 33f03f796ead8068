// Counts the requests a tier receives and the bytes that really cross it, for cost
// estimates (cloud tiers bill per request and per byte) and for tests that check a
// partial restore fetched only what it needed.
import { Transform, pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import type { ByteRange, ObjectInfo, ObjectSource, PutReceipt, Tier } from './tier.ts';

export interface TierCounts {
  put: number;
  get: number;
  stat: number;
  list: number;
  delete: number;
  bytesPut: number;
  bytesGot: number;
}

export class CountingTier implements Tier {
  readonly kind: Tier['kind'];
  readonly name: string;
  private readonly inner: Tier;
  private readonly tally: TierCounts = { put: 0, get: 0, stat: 0, list: 0, delete: 0, bytesPut: 0, bytesGot: 0 };

  constructor(inner: Tier) {
    this.inner = inner;
    this.kind = inner.kind;
    this.name = inner.name;
  }

  counts(): TierCounts {
    return { ...this.tally };
  }

  location(name: string): string {
    return this.inner.location(name);
  }

  async put(name: string, source: ObjectSource, signal?: AbortSignal): Promise<PutReceipt | void> {
    this.tally.put++;
    let streamed = false;
    const counted: ObjectSource = {
      ...source,
      open: (offset) => {
        streamed = true;
        return this.countThrough(source.open(offset), 'bytesPut');
      },
    };
    const receipt = await this.inner.put(name, counted, signal);
    // A tier that took the bytes from source.file stored them all without a stream.
    if (!streamed) this.tally.bytesPut += source.size;
    return receipt;
  }

  async get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    this.tally.get++;
    return this.countThrough(await this.inner.get(name, range, signal), 'bytesGot');
  }

  stat(name: string): Promise<ObjectInfo> {
    this.tally.stat++;
    return this.inner.stat(name);
  }

  list(): AsyncIterable<ObjectInfo> {
    this.tally.list++;
    return this.inner.list();
  }

  delete(name: string): Promise<void> {
    this.tally.delete++;
    return this.inner.delete(name);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  removeTempFiles(olderThanMs: number): Promise<number> {
    return this.inner.removeTempFiles?.(olderThanMs) ?? Promise.resolve(0);
  }

  /** Bytes are counted as the reader pulls them, so an abandoned stream counts only what moved. */
  private countThrough(stream: Readable, counter: 'bytesPut' | 'bytesGot'): Readable {
    const counting = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.tally[counter] += chunk.length;
        done(null, chunk);
      },
    });
    // pipeline carries errors forward and destroys the inner stream if the reader gives up.
    return pipeline(stream, counting, () => {});
  }
}
