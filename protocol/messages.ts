// Framing shared by Hearth's protocols: control messages are unsigned-varint
// length-prefixed frames (the same prefix as it-length-prefixed), usually JSON;
// bulk data follows a control message as raw bytes whose count the message
// declared, so it is never copied into frames.
//
// Reading uses the stream's `message` events, not `for await`: the async iterator
// of a v3 stream buffers without limit, while pause()/resume() stop the muxer's
// window updates so a slow consumer holds the sender back (FIELD-NOTES, js-libp2p).
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface';
import { limited, UNLIMITED, type RateLimit } from './rate-limit.ts';

/** A peer broke the framing rules; the only safe answer is to reset its stream. */
export class ProtocolViolationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolViolationError';
  }
}

export class MessageTooLargeError extends ProtocolViolationError {
  constructor(length: number, limit: number) {
    super(`message of ${length} bytes exceeds the limit of ${limit} bytes`);
    this.name = 'MessageTooLargeError';
  }
}

export class MalformedMessageError extends ProtocolViolationError {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedMessageError';
  }
}

export class StreamEndedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamEndedError';
  }
}

export class IdleTimeoutError extends Error {
  constructor(ms: number) {
    super(`no data from the peer for ${ms} ms; it may be offline, try again later`);
    this.name = 'IdleTimeoutError';
  }
}

export const DEFAULT_HIGH_WATER_MARK = 4 * 1024 * 1024;
export const DEFAULT_IDLE_TIMEOUT = 60_000;
export const DEFAULT_MAX_PAUSED_BYTES = 32 * 1024 * 1024;

// Batches handed to a consumer stay small so that what waits here, not what is
// being written, is what the high-water mark bounds.
const MAX_BATCH = 1024 * 1024;

// A length never needs more than 5 varint bytes (32 bits); more is malformed.
const MAX_VARINT_BYTES = 5;

export function encodeFrame(payload: Uint8Array): Buffer {
  const prefix: number[] = [];
  let n = payload.byteLength;
  while (n >= 0x80) {
    prefix.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  prefix.push(n);
  return Buffer.concat([Buffer.from(prefix), payload]);
}

export function encodeJsonFrame(value: unknown, maxLength: number): Buffer {
  const payload = Buffer.from(JSON.stringify(value), 'utf8');
  if (payload.byteLength > maxLength) throw new MessageTooLargeError(payload.byteLength, maxLength);
  return encodeFrame(payload);
}

export interface SendOptions {
  signal?: AbortSignal;
  /** Fail when the peer accepts nothing for this long. */
  idleTimeout?: number;
}

/**
 * Send bytes with bounded memory. 'drain' only says the muxer can take more, not
 * that our earlier bytes left: sending on every drain appends each new chunk to
 * the unsent rest of the last one (a 1 GiB get grew the sender by 500 MB). So once
 * send() reports a full buffer, wait until this stream's write queue is empty.
 */
export async function sendBytes(stream: Stream, data: Uint8Array, options: SendOptions = {}): Promise<void> {
  if (stream.send(data) || stream.writeBufferLength === 0) return;
  await new Promise<void>((resolve, reject) => {
    const idleTimeout = options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      stream.removeEventListener('idle', onIdle);
      stream.removeEventListener('close', onClose);
      options.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onIdle = (): void => finish();
    const onClose = (evt: StreamCloseEvent): void => finish(evt.error ?? new StreamEndedError('the stream closed before its data was sent'));
    const onAbort = (): void => finish(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    const timer = setTimeout(() => finish(new IdleTimeoutError(idleTimeout)), idleTimeout);
    stream.addEventListener('idle', onIdle);
    stream.addEventListener('close', onClose);
    options.signal?.addEventListener('abort', onAbort);
    if (options.signal?.aborted) onAbort();
  });
}

export async function sendJson(stream: Stream, value: unknown, maxLength: number, options: SendOptions = {}): Promise<void> {
  await sendBytes(stream, encodeJsonFrame(value, maxLength), options);
}

/**
 * Send exactly `length` bytes taken from `source`, honouring the stream's
 * backpressure and `limit`; the source is read only as fast as both allow.
 * Returns the number of bytes sent; throws if the source ends early or runs long.
 */
export async function sendExactly(
  stream: Stream,
  source: AsyncIterable<Uint8Array>,
  length: number,
  options: SendOptions & { onProgress?: (sent: number) => void; limit?: RateLimit } = {},
): Promise<number> {
  let sent = 0;
  for await (const chunk of source) {
    if (sent + chunk.byteLength > length) throw new Error(`object source gave more than the ${length} bytes it declared; the object changed while being sent`);
    for await (const part of limited(chunk, options.limit ?? UNLIMITED, options.signal)) await sendBytes(stream, part, options);
    sent += chunk.byteLength;
    options.onProgress?.(sent);
  }
  if (sent !== length) throw new Error(`object source ended after ${sent} of ${length} bytes; the object changed while being sent`);
  return sent;
}

export interface StreamReaderOptions {
  /** Bytes buffered here before the stream is paused. */
  highWaterMark?: number;
  /** Fail a read that waits longer than this for the peer's next bytes. */
  idleTimeout?: number;
  /**
   * Bytes the stream itself may hold while paused. Data already granted by the
   * muxer's receive window keeps arriving after pause(); Yamux windows grow to
   * 16 MiB, above libp2p's 4 MiB default, which would otherwise reset the stream.
   */
  maxPausedBytes?: number;
}

/**
 * Reads frames and raw byte runs from one stream with bounded memory: at most
 * `highWaterMark` bytes (plus one delivery) wait here, then the stream is paused
 * until the consumer has taken them.
 */
export class StreamReader {
  readonly #stream: Stream;
  readonly #highWaterMark: number;
  readonly #idleTimeout: number;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onMessage: (evt: StreamMessageEvent) => void;
  readonly #onEnd: () => void;
  readonly #onClose: (evt: StreamCloseEvent) => void;

  constructor(stream: Stream, options: StreamReaderOptions = {}) {
    this.#stream = stream;
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.#idleTimeout = options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, options.maxPausedBytes ?? DEFAULT_MAX_PAUSED_BYTES);

    this.#onMessage = (evt) => {
      if (evt.data instanceof Uint8Array) this.#append(evt.data);
      else for (const chunk of evt.data) this.#append(chunk);
      // Pause from a microtask: this listener also runs inside resume(), which
      // re-opens the muxer window after its listeners return and so would undo
      // a pause made here (the window then grows without bound).
      if (this.#buffered >= this.#highWaterMark) queueMicrotask(() => this.#pauseIfFull());
      this.#notify();
    };
    // 'end' rather than 'remoteCloseWrite': the latter can fire while data the
    // stream buffered during a pause is still undelivered.
    this.#onEnd = () => {
      this.#ended = true;
      this.#notify();
    };
    this.#onClose = (evt) => {
      this.#ended = true;
      this.#error ??= evt.error;
      this.#notify();
    };
    stream.addEventListener('message', this.#onMessage);
    stream.addEventListener('end', this.#onEnd);
    stream.addEventListener('close', this.#onClose);
  }

  /** Stop listening; bytes buffered here are discarded. */
  detach(): void {
    this.#stream.removeEventListener('message', this.#onMessage);
    this.#stream.removeEventListener('end', this.#onEnd);
    this.#stream.removeEventListener('close', this.#onClose);
  }

  /** Read one length-prefixed frame, refusing it as soon as its prefix exceeds maxLength. */
  async readFrame(maxLength: number): Promise<Buffer> {
    let length = 0;
    let prefixBytes = 0;
    for (;;) {
      while (prefixBytes >= this.#buffered) await this.#waitForData('a message');
      const byte = this.#byteAt(prefixBytes);
      length += (byte & 0x7f) * 2 ** (7 * prefixBytes);
      prefixBytes++;
      if (length > maxLength) throw new MessageTooLargeError(length, maxLength);
      if ((byte & 0x80) === 0) break;
      if (prefixBytes === MAX_VARINT_BYTES) throw new MalformedMessageError('message length prefix is longer than 5 bytes');
    }
    while (this.#buffered < prefixBytes + length) await this.#waitForData(`a message of ${length} bytes`);
    this.#take(prefixBytes);
    return Buffer.concat(this.#take(length), length);
  }

  /** Read one JSON frame that must hold an object. */
  async readJson(maxLength: number): Promise<Record<string, unknown>> {
    const frame = await this.readFrame(maxLength);
    let value: unknown;
    try {
      value = JSON.parse(frame.toString('utf8'));
    } catch {
      throw new MalformedMessageError('message is not valid JSON');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new MalformedMessageError('message is not a JSON object');
    return value as Record<string, unknown>;
  }

  /**
   * Yield exactly `length` raw bytes as batches of the chunks that arrived. The
   * stream is resumed when a batch is handed out, so the next one arrives while
   * the consumer works on this one; awaiting between batches is what bounds memory.
   * `maxBatch` makes batches smaller (a rate cap taken per batch keeps its waits short).
   */
  async *readBytes(length: number, maxBatch = MAX_BATCH): AsyncGenerator<Uint8Array[]> {
    let remaining = length;
    const most = Math.max(1, Math.min(maxBatch, MAX_BATCH));
    while (remaining > 0) {
      while (this.#buffered === 0) await this.#waitForData(`${remaining} more of ${length} bytes`);
      const batch = this.#take(Math.min(remaining, this.#buffered, most));
      for (const chunk of batch) remaining -= chunk.byteLength;
      yield batch;
    }
  }

  #append(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
  }

  #pauseIfFull(): void {
    if (this.#buffered >= this.#highWaterMark && this.#stream.readStatus === 'readable') this.#stream.pause();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #byteAt(index: number): number {
    for (const chunk of this.#chunks) {
      if (index < chunk.byteLength) return chunk[index];
      index -= chunk.byteLength;
    }
    throw new RangeError('read past the buffered bytes');
  }

  #take(count: number): Uint8Array[] {
    const taken: Uint8Array[] = [];
    while (count > 0) {
      const head = this.#chunks[0];
      if (head.byteLength <= count) {
        taken.push(head);
        this.#chunks.shift();
        count -= head.byteLength;
        this.#buffered -= head.byteLength;
      } else {
        taken.push(head.subarray(0, count));
        this.#chunks[0] = head.subarray(count);
        this.#buffered -= count;
        count = 0;
      }
    }
    if (this.#buffered < this.#highWaterMark && this.#stream.readStatus === 'paused') this.#stream.resume();
    return taken;
  }

  /** Wait for the next delivery; callers loop until they have what they need. */
  async #waitForData(what: string): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#ended) throw new StreamEndedError(`the peer closed the stream while waiting for ${what}`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        reject(new IdleTimeoutError(this.#idleTimeout));
      }, this.#idleTimeout);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
