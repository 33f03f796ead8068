// Small control messages on Hearth streams: one JSON document per length-prefixed
// frame (unsigned varint length, as multistream and most libp2p protocols use).
// The length is checked before the body is read, so an oversized message costs
// the reader a few bytes, not memory. Writes go through lpStream, which waits for
// the stream's drain event whenever send() reports a full buffer.
import { lpStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';

export class ProtocolMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolMessageError';
  }
}

export interface JsonFrames {
  /** The next message; throws when it is too large, not JSON, or the stream ends. */
  read(signal: AbortSignal): Promise<unknown>;
  write(message: unknown, signal: AbortSignal): Promise<void>;
}

export function jsonFrames(stream: Stream, maxMessageBytes: number): JsonFrames {
  const lp = lpStream(stream, { maxDataLength: maxMessageBytes });
  return {
    async read(signal) {
      const frame = await lp.read({ signal });
      try {
        return JSON.parse(Buffer.from(frame.subarray()).toString('utf8')) as unknown;
      } catch {
        throw new ProtocolMessageError(`${stream.protocol ?? 'stream'}: message is not valid JSON`);
      }
    },
    async write(message, signal) {
      await lp.write(Buffer.from(JSON.stringify(message), 'utf8'), { signal });
    },
  };
}

/** The message as a plain object, or a ProtocolMessageError naming what was expected. */
export function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolMessageError(`${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

export function wholeNumber(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ProtocolMessageError(`${what} must be a whole number, 0 or more`);
  }
  return value;
}
