// The record format on its own, as a host uses it: only the owner's public key.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveKeys } from '../storage/keys.ts';
import {
  CatalogChainError, HEADER_BYTES, MAX_PAYLOAD_BYTES, ZERO_HASH,
  decodeEnvelope, decryptEnvelope, encodeEnvelope, envelopeHash, verifyEnvelopeAppend, type ChainHead,
} from '../storage/catalog/envelope.ts';
import {
  RECORD_TARGET_BYTES, groupIntoRecords, prepareEntries, recordEntries, recordPlaintext, type CatalogPayload, type ObjectPayload,
} from '../storage/catalog/payloads.ts';

const owner = deriveKeys(randomBytes(32));
const stranger = deriveKeys(randomBytes(32));
const payload = (n: number) => Buffer.from(JSON.stringify({ k: 'run', run: `r${n}`, phase: 'start', time: n }));

/** A chain of `count` records by `keys`, each linked to the one before. */
function chain(count: number, keys = owner, from: ChainHead = { seq: 0, hash: ZERO_HASH }): Buffer[] {
  const out: Buffer[] = [];
  let head = from;
  for (let i = 0; i < count; i++) {
    const bytes = encodeEnvelope(head.seq + 1, head.hash, payload(head.seq + 1), keys);
    out.push(bytes);
    head = { seq: head.seq + 1, hash: envelopeHash(bytes) };
  }
  return out;
}

function expectRefused(prev: ChainHead | null, bytes: Buffer, code: string, message: RegExp, publicKey = owner.ed25519Public): void {
  let error: unknown;
  try {
    verifyEnvelopeAppend(publicKey, prev, bytes);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(CatalogChainError);
  expect(error).toMatchObject({ code, message: expect.stringMatching(message) });
}

describe('catalog envelope', () => {
  it('lays out version, seq, prev, nonce, length, ciphertext and signature as documented', () => {
    const prev = createHash('sha256').update('previous').digest('hex');
    const body = payload(7);
    const bytes = encodeEnvelope(7, prev, body, owner);
    expect(bytes.length).toBe(HEADER_BYTES + body.length + 16 + 64);
    expect(bytes[0]).toBe(1);
    expect(bytes.readBigUInt64BE(1)).toBe(7n);
    expect(bytes.toString('hex', 9, 41)).toBe(prev);
    expect(bytes.readUInt32BE(53)).toBe(body.length + 16);
    const envelope = decodeEnvelope(bytes);
    expect(envelope).toMatchObject({ version: 1, seq: 7, prev });
    expect(envelope.nonce.equals(bytes.subarray(41, 53))).toBe(true);
    expect(decryptEnvelope(owner.catalogKey, envelope).equals(body)).toBe(true);
    expect(envelopeHash(bytes)).toBe(createHash('sha256').update(bytes).digest('hex'));
    // The payload is not readable without the catalog key, and every record has a fresh nonce.
    expect(bytes.includes(Buffer.from('"run"'))).toBe(false);
    expect(decodeEnvelope(encodeEnvelope(7, prev, body, owner)).nonce.equals(envelope.nonce)).toBe(false);
  });

  it('accepts a chain record by record, from nothing', () => {
    let head: ChainHead | null = null;
    for (const [i, bytes] of chain(5).entries()) {
      head = verifyEnvelopeAppend(owner.ed25519Public, head, bytes);
      expect(head).toEqual({ seq: i + 1, hash: envelopeHash(bytes) });
    }
    // A host that stored nothing may also pass the zero head.
    expect(verifyEnvelopeAppend(owner.ed25519Public, { seq: 0, hash: ZERO_HASH }, chain(1)[0]!).seq).toBe(1);
  });

  it('refuses forks, gaps, replays, bad signatures and other owners', () => {
    const log = chain(4);
    const head: ChainHead = { seq: 4, hash: envelopeHash(log[3]!) };
    const headAt = (n: number): ChainHead => ({ seq: n, hash: envelopeHash(log[n - 1]!) });

    // Fork: a second record 3 signed by the owner, following the same record 2.
    const fork = chain(1, owner, headAt(2))[0]!;
    expect(fork.equals(log[2]!)).toBe(false);
    expectRefused(headAt(3), chain(1, owner, { seq: 3, hash: envelopeHash(fork) })[0]!, 'fork', /forks the log/);
    // A record 1 that claims a non-zero predecessor.
    expectRefused(null, encodeEnvelope(1, envelopeHash(log[0]!), payload(1), owner), 'fork', /forks/);

    expectRefused(headAt(2), log[3]!, 'gap', /leaves a gap.*record 3 must come first/);
    expectRefused(null, log[1]!, 'gap', /gap/);

    expectRefused(head, log[3]!, 'replay', /replay or rollback/);
    expectRefused(head, log[0]!, 'replay', /replay/);

    const flipped = Buffer.from(log[3]!);
    flipped[flipped.length - 1]! ^= 1;
    expectRefused(headAt(3), flipped, 'signature', /bad signature/);
    const bodyFlipped = Buffer.from(log[3]!);
    bodyFlipped[HEADER_BYTES]! ^= 1;
    expectRefused(headAt(3), bodyFlipped, 'signature', /bad signature/);

    // Another home's record, even one that links correctly.
    expectRefused(headAt(4), chain(1, stranger, head)[0]!, 'signature', /not signed by this owner/);
    expectRefused(headAt(4), chain(1, owner, head)[0]!, 'signature', /bad signature/, stranger.ed25519Public);

    expect(verifyEnvelopeAppend(owner.ed25519Public, headAt(3), log[3]!)).toEqual(head);
  });

  it('refuses malformed records before any cryptography', () => {
    const good = chain(1)[0]!;
    expectRefused(null, good.subarray(0, 100), 'malformed', /shorter than any record/);
    expectRefused(null, Buffer.concat([good, Buffer.of(0)]), 'malformed', /does not match the record size/);
    const version2 = Buffer.from(good);
    version2[0] = 2;
    expectRefused(null, version2, 'malformed', /unknown version 2/);
    const seqZero = Buffer.from(good);
    seqZero.fill(0, 1, 9);
    expectRefused(null, seqZero, 'malformed', /seq 0/);
    expectRefused(null, Buffer.alloc(MAX_PAYLOAD_BYTES + 1000), 'malformed', /over the/);
  });

  it('limits payloads to 1 MiB and binds the header to the ciphertext', () => {
    expect(() => encodeEnvelope(1, ZERO_HASH, Buffer.alloc(MAX_PAYLOAD_BYTES + 1), owner)).toThrow(/over the 1048576-byte limit/);
    const largest = encodeEnvelope(1, ZERO_HASH, Buffer.alloc(MAX_PAYLOAD_BYTES, 0x20), owner);
    expect(verifyEnvelopeAppend(owner.ed25519Public, null, largest).seq).toBe(1);

    // A changed header (here the seq) fails the AEAD too, whatever the signature says.
    const bytes = encodeEnvelope(2, ZERO_HASH, payload(2), owner);
    const moved = Buffer.from(bytes);
    moved.writeUInt32BE(3, 5);
    expect(decodeEnvelope(moved).seq).toBe(3);
    expect(() => decryptEnvelope(owner.catalogKey, decodeEnvelope(moved))).toThrow(/does not decrypt/);
    expect(decryptEnvelope(owner.catalogKey, decodeEnvelope(bytes)).equals(payload(2))).toBe(true);
    expect(() => decryptEnvelope(stranger.catalogKey, decodeEnvelope(bytes))).toThrow(/catalog key is wrong/);
  });

  it('splits an object payload into entries under the limit and refuses other oversized payloads', () => {
    const contents = Array.from({ length: 20_000 }, (_, i) => ({ hash: createHash('sha256').update(String(i)).digest('hex'), offset: i * 4096, length: 4096 }));
    const volume: ObjectPayload = { k: 'object', id: 'v', kind: 'volume', name: 'v.iso', size: 1, plainSize: 1, merkleRoot: ZERO_HASH, leafSize: 1, contents, time: 1 };
    const records = prepareEntries([volume]);
    expect(records.length).toBeGreaterThan(1);
    for (const record of records) {
      expect(Buffer.byteLength(record.json)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
      expect(JSON.parse(record.json)).toEqual(record.payload);
    }
    expect(records.map((r) => r.payload.k)).toEqual(['object', ...records.slice(1).map(() => 'contents')]);
    expect(records.flatMap((r) => (r.payload as { contents: unknown[] }).contents)).toEqual(contents);
    expect(() => prepareEntries([{ k: 'run', run: 'x'.repeat(MAX_PAYLOAD_BYTES), phase: 'end', time: 1 }])).toThrow(/record limit/);
    // Each split entry is near the limit, so each is a record of its own.
    expect(groupIntoRecords(records).map((r) => r.length)).toEqual(records.map(() => 1));
  });

  it('groups consecutive entries into records of at most the target size, and reads them back', () => {
    const payloads: CatalogPayload[] = Array.from({ length: 2000 }, (_, i) => ({ k: 'run', run: `r${i}`, phase: 'start', time: i, stats: { note: 'é'.repeat(i % 50) } }));
    const entries = prepareEntries(payloads);
    const records = groupIntoRecords(entries);
    expect(records.length).toBeGreaterThan(1);
    expect(records.flat()).toEqual(entries);
    for (const record of records) {
      const plaintext = recordPlaintext(record);
      expect(plaintext.length).toBeLessThanOrEqual(RECORD_TARGET_BYTES);
      expect(recordEntries(plaintext)).toEqual(record.map((e) => ({ payload: e.payload, json: e.json })));
    }
    // A full record could not have taken its successor's first entry.
    for (let i = 0; i + 1 < records.length; i++) {
      expect(recordPlaintext([...records[i]!, records[i + 1]![0]!]).length).toBeGreaterThan(RECORD_TARGET_BYTES);
    }
    // One entry is stored as a plain object, as records always were; lone surrogates survive.
    const raw = prepareEntries([{ k: 'delete', source: 's', path: 'caf\udce9', time: 1 }]);
    expect(recordPlaintext(raw).toString()).toBe(raw[0]!.json);
    expect(recordEntries(recordPlaintext([...raw, ...raw]))[1]!.payload).toEqual(raw[0]!.payload);
    expect(() => recordEntries(Buffer.from('[]'))).toThrow(/empty/);
    expect(() => recordEntries(Buffer.from('{"k":'))).toThrow();
  });
});
