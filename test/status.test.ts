import { afterEach, describe, expect, it } from 'vitest';
import { lpStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { STATUS_LIMITS, STATUS_PROTOCOL } from '../protocol/status.ts';
import { cleanup, pairHomes, startHome, TEST_VERSION, type TestHome } from './host-fixture.ts';

const homes: TestHome[] = [];
afterEach(async () => {
  await cleanup(homes.splice(0));
});

async function pairedHomes(): Promise<[TestHome, TestHome]> {
  const host = await startHome({ name: 'host' });
  const owner = await startHome({ name: 'owner' });
  homes.push(host, owner);
  await pairHomes(host, owner, 3_000_000);
  return [host, owner];
}

/** Send raw bytes on a fresh status stream and report how the host ended it. */
async function sendRaw(from: TestHome, to: TestHome, bytes: Uint8Array): Promise<{ stream: Stream; error: Error }> {
  const stream = await from.node.dialProtocol(to.node.peerId, STATUS_PROTOCOL);
  stream.send(bytes);
  try {
    await lpStream(stream).read({ signal: AbortSignal.timeout(5000) });
  } catch (error) {
    return { stream, error: error as Error };
  }
  throw new Error('the host answered a bad request');
}

function varint(value: number): Uint8Array {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) + 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return Uint8Array.from(out);
}

describe('/hearth/status/1', () => {
  it('answers a member with its quota, the bytes stored for it, free disk and version', async () => {
    const [host, owner] = await pairedHomes();
    host.stored.set(owner.peerId, 987_654);
    const status = await owner.node.services.status.query(host.node.peerId);
    const before = Date.now();
    expect(status).toEqual({ version: TEST_VERSION, quotaBytes: 3_000_000, storedBytes: 987_654, pendingDeletions: 0, freeBytes: expect.any(Number), time: expect.any(Number) });
    expect(status.time).toBeLessThanOrEqual(before);
    expect(status.freeBytes).toBeGreaterThan(0);
  });

  it('resets the stream on an oversized or malformed request and keeps serving', async () => {
    const [host, owner] = await pairedHomes();
    const oversized = Buffer.concat([varint(STATUS_LIMITS.maxMessageBytes + 1), Buffer.alloc(64, 0x20)]);
    const notJson = Buffer.concat([varint(9), Buffer.from('not json{')]);
    const notObject = Buffer.concat([varint(2), Buffer.from('42')]);
    for (const bad of [oversized, notJson, notObject]) {
      const { stream, error } = await sendRaw(owner, host, bad);
      expect(error.name).toBe('StreamResetError');
      expect(stream.status).toBe('reset');
      // The same node, on the same connection, still answers a good request.
      expect((await owner.node.services.status.query(host.node.peerId)).quotaBytes).toBe(3_000_000);
    }
    expect(owner.node.getConnections(host.node.peerId)).toHaveLength(1);
  });

  it('refuses a reply that breaks the format (client side)', async () => {
    const [host, owner] = await pairedHomes();
    host.stored.set(owner.peerId, -1);
    await expect(owner.node.services.status.query(host.node.peerId)).rejects.toThrow(/storedBytes must be a whole number/);
  });
});
