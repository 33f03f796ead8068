// Size arithmetic of age v1 files and decryption of a plaintext byte range from the
// sealed chunks that cover it, so a partial restore fetches only those chunks.
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { AGE_X25519_HEADER_SIZE, openHeader, PAYLOAD_NONCE_SIZE, type OpenedHeader } from './header.ts';
import { CHUNK_SIZE, PayloadOpener, SEALED_CHUNK_SIZE, TAG_SIZE } from './payload.ts';

/** Size of the age file holding `plainSize` bytes; `headerSize` excludes the payload nonce. */
export function ageEncryptedSize(plainSize: number, headerSize: number = AGE_X25519_HEADER_SIZE): number {
  const chunks = Math.max(1, Math.ceil(plainSize / CHUNK_SIZE));
  return headerSize + PAYLOAD_NONCE_SIZE + plainSize + chunks * TAG_SIZE;
}

/** Inverse of ageEncryptedSize; throws for a size no age file with that header can have. */
export function agePlainSize(encryptedSize: number, headerSize: number = AGE_X25519_HEADER_SIZE): number {
  const sealed = encryptedSize - headerSize - PAYLOAD_NONCE_SIZE;
  const chunks = Math.max(1, Math.ceil(sealed / SEALED_CHUNK_SIZE));
  const finalSealed = sealed - (chunks - 1) * SEALED_CHUNK_SIZE;
  if (sealed < TAG_SIZE || finalSealed < TAG_SIZE || (finalSealed === TAG_SIZE && chunks > 1)) {
    throw new Error(`${encryptedSize} bytes is not a possible size for an age file with a ${headerSize}-byte header: the size or the file is wrong`);
  }
  return sealed - chunks * TAG_SIZE;
}

export interface EncryptedRange {
  /** Byte range of the age file to read: whole sealed chunks. */
  offset: number;
  length: number;
  /** Index of the first chunk in that range. */
  firstChunk: number;
  /** Index of the file's final chunk (sealed with the last-chunk flag). */
  finalChunk: number;
  /** Plaintext bytes of the first chunk that precede the requested range. */
  skip: number;
}

export interface PlainRange {
  plainOffset: number;
  plainLength: number;
  encryptedSize: number;
  /** Header size without the payload nonce; Hearth's objects all have AGE_X25519_HEADER_SIZE. */
  headerSize?: number;
}

/** Which bytes of an age file hold the plaintext range [plainOffset, plainOffset + plainLength). */
export function encryptedRangeFor(range: PlainRange): EncryptedRange {
  const { plainOffset, plainLength, encryptedSize } = range;
  const headerSize = range.headerSize ?? AGE_X25519_HEADER_SIZE;
  const plainSize = agePlainSize(encryptedSize, headerSize);
  if (!Number.isSafeInteger(plainOffset) || !Number.isSafeInteger(plainLength) || plainOffset < 0 || plainLength < 0 || plainOffset + plainLength > plainSize) {
    throw new RangeError(`plaintext range ${plainOffset}+${plainLength} lies outside the object's ${plainSize} bytes`);
  }
  const chunksStart = headerSize + PAYLOAD_NONCE_SIZE;
  const firstChunk = Math.floor(plainOffset / CHUNK_SIZE);
  const finalChunk = Math.max(0, Math.ceil(plainSize / CHUNK_SIZE) - 1);
  const offset = Math.min(chunksStart + firstChunk * SEALED_CHUNK_SIZE, encryptedSize);
  if (plainLength === 0) return { offset, length: 0, firstChunk, finalChunk, skip: 0 };
  const lastChunk = Math.floor((plainOffset + plainLength - 1) / CHUNK_SIZE);
  const end = Math.min(chunksStart + (lastChunk + 1) * SEALED_CHUNK_SIZE, encryptedSize);
  return { offset, length: end - offset, firstChunk, finalChunk, skip: plainOffset - firstChunk * CHUNK_SIZE };
}

export interface DecryptRangeOptions {
  /** Reads `length` bytes of the age file at `offset`; called once for the header and once for the chunks. */
  read(offset: number, length: number): Promise<Readable> | Readable;
  /** Size of the whole age file, from a trusted record (the catalog): it tells which chunk is final. */
  encryptedSize: number;
  /** Raw 32-byte X25519 secret. */
  identity: Uint8Array;
  plainOffset: number;
  plainLength: number;
  /** The file's header as openAgeHeader() returned it: spares reading and unwrapping it again. */
  header?: OpenedHeader;
}

async function readExactly(source: Readable, length: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let total = 0;
  for await (const piece of source) {
    pieces.push(piece as Buffer);
    total += (piece as Buffer).length;
  }
  if (total !== length) throw new Error(`read returned ${total} bytes where ${length} were asked for: the object is truncated or the source is wrong`);
  return Buffer.concat(pieces);
}

// Our own objects' header and nonce arrive in the first read; a bigger header (other
// stanzas, from the age CLI) is read on in steps.
const HEADER_READ_STEP = 4096;

/** Reads and opens the age file's header: the payload key, unwrapped with the identity. */
export async function openAgeHeader(options: Pick<DecryptRangeOptions, 'read' | 'encryptedSize' | 'identity'>): Promise<OpenedHeader> {
  let bytes = Buffer.alloc(0);
  for (;;) {
    const want = bytes.length === 0 ? AGE_X25519_HEADER_SIZE + PAYLOAD_NONCE_SIZE : HEADER_READ_STEP;
    const length = Math.min(want, options.encryptedSize - bytes.length);
    if (length <= 0) throw new Error('age file ends inside its header: the object is truncated or its recorded size is wrong');
    bytes = Buffer.concat([bytes, await readExactly(await options.read(bytes.length, length), length)]);
    const opened = openHeader(bytes, options.identity);
    if (opened) return opened;
  }
}

/**
 * Plaintext bytes [plainOffset, plainOffset + plainLength) of an age file, streamed:
 * reads the header, then only the sealed chunks covering the range in one read, and
 * authenticates every chunk before passing on its bytes.
 */
export async function decryptRange(options: DecryptRangeOptions): Promise<Readable> {
  const opened = options.header ?? (await openAgeHeader(options));
  const plan = encryptedRangeFor({ ...options, headerSize: opened.headerSize });
  if (plan.length === 0) return Readable.from([]);
  let received = 0;
  let toSkip = plan.skip;
  let toEmit = options.plainLength;
  const trim = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      received += chunk.length;
      try {
        if (received > plan.length) throw new Error(`read returned more than the ${plan.length} bytes asked for: the source is wrong`);
        opener.push(chunk);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        if (received !== plan.length) throw new Error(`read returned ${received} bytes where ${plan.length} were asked for: the object is truncated or the source is wrong`);
        opener.finish();
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
  const opener = new PayloadOpener(
    opened.payloadKey,
    (plain) => {
      const start = Math.min(toSkip, plain.length);
      toSkip -= start;
      const piece = plain.subarray(start, start + toEmit);
      toEmit -= piece.length;
      if (piece.length > 0) trim.push(piece);
    },
    { firstChunk: plan.firstChunk, finalChunk: plan.finalChunk },
  );
  const source = await options.read(plan.offset, plan.length);
  // Errors reach the consumer through `trim`; a consumer that stops early releases the source.
  return pipeline(source, trim, () => {});
}
