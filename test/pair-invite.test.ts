import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { multiaddr } from '@multiformats/multiaddr';
import { bech32m } from '@scure/base';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { encodeInvite, InviteCodeError, parseInvite, selectDialable, type Invite } from '../protocol/invite.ts';

const NOW = new Date('2026-11-22T12:00:00Z');

async function sampleInvite(overrides: Partial<Invite> = {}): Promise<Invite> {
  const key = await generateKeyPairFromSeed('Ed25519', randomBytes(32));
  return {
    inviter: peerIdFromPrivateKey(key).toString(),
    addrs: ['/ip4/192.168.1.20/tcp/4001', '/ip6/2001:db8::7/tcp/4001', '/dns4/home.example.org/tcp/4001'],
    secret: randomBytes(16),
    expiresAt: new Date('2026-11-23T12:00:00Z'),
    inviterName: 'Grand-mère Hélène',
    quota: 500 * 1024 ** 3,
    ...overrides,
  };
}

const sample = await sampleInvite();

function parseError(text: string, now = NOW): InviteCodeError {
  try {
    parseInvite(text, now);
  } catch (err) {
    if (err instanceof InviteCodeError) return err;
    throw err;
  }
  throw new Error('the code parsed');
}

describe('invite codes', () => {
  it('round-trips every field, and is compact', async () => {
    const invite = await sampleInvite();
    const code = encodeInvite(invite);
    expect(code).toMatch(/^hearth1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]+$/);
    expect(code.length).toBeLessThan(260);
    expect(parseInvite(code, NOW)).toEqual(invite);
  });

  it('leaves the optional name and quota out when not given', async () => {
    const { inviterName: _name, quota: _quota, ...bare } = await sampleInvite({ addrs: ['/ip4/10.0.0.2/tcp/4001'] });
    const parsed = parseInvite(encodeInvite(bare), NOW);
    expect(parsed).toEqual(bare);
    expect('quota' in parsed || 'inviterName' in parsed).toBe(false);
  });

  it('detects every single-character typo as damage', async () => {
    const code = encodeInvite(await sampleInvite());
    const alphabet = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
    for (let i = 'hearth1'.length; i < code.length; i++) {
      const replacement = alphabet[(alphabet.indexOf(code[i]!) + 1 + (i % 31)) % 32]!;
      const typo = code.slice(0, i) + replacement + code.slice(i + 1);
      expect(parseError(typo).kind, `position ${i}`).toBe('damaged');
    }
    const err = parseError(code.slice(0, 30) + code.slice(31));
    expect(err.message).toBe('invite code is damaged (checksum mismatch): copy it again');
  });

  it('reports expiry with the time it expired', async () => {
    const code = encodeInvite(await sampleInvite());
    const err = parseError(code, new Date('2026-11-23T12:00:00Z'));
    expect(err.kind).toBe('expired');
    expect(err.message).toBe('invite code expired at 2026-11-23T12:00:00.000Z: ask for a new one (`hearth invite`)');
    expect(parseInvite(code, new Date('2026-11-23T11:59:59Z')).inviter).toBeTruthy();
  });

  it('reports malformed codes in one line', () => {
    expect(parseError('').kind).toBe('malformed');
    expect(parseError('age1qqqqqqqqqqqqqqqq').message).toBe('invite code is malformed (it must start with "hearth1"): copy the whole code that `hearth invite` printed');
  });

  it('refuses a validly checksummed code whose contents are wrong', async () => {
    const wrap = (bytes: Uint8Array): string => bech32m.encode('hearth', bech32m.toWords(bytes), false);
    const good = Buffer.from(bech32m.fromWords(bech32m.decode(encodeInvite(await sampleInvite()) as `${string}1${string}`, false).words));
    const cases: Array<[Uint8Array, RegExp]> = [
      [Buffer.concat([Buffer.from([2]), good.subarray(1)]), /version 2 is not supported by this Hearth; update Hearth/],
      [good.subarray(0, 30), /truncated/],
      [Buffer.concat([good, Buffer.from([0])]), /trailing bytes/],
      [Buffer.from([1, 0, 4, 1, 2, 3, 4]), /inviter PeerId is not valid/],
    ];
    for (const [bytes, message] of cases) {
      const err = parseError(wrap(bytes));
      expect(err.kind).toBe('malformed');
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('\n');
    }
  });

  it('refuses to encode what it could not carry', async () => {
    expect(() => encodeInvite({ ...sample, addrs: [] })).toThrow(/at least one address/);
    expect(() => encodeInvite({ ...sample, secret: Buffer.alloc(8) })).toThrow(/16 bytes/);
    expect(() => encodeInvite({ ...sample, inviterName: 'x'.repeat(65) })).toThrow(/1\.\.64 bytes/);
    expect(() => encodeInvite({ ...sample, quota: -1 })).toThrow(/whole number of bytes/);
  });
});

describe('selectDialable', () => {
  it('drops wildcard, link-local and /p2p parts; keeps loopback only when nothing else', () => {
    const peer = '/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN';
    const addrs = [
      '/ip4/127.0.0.1/tcp/4001', '/ip4/0.0.0.0/tcp/4001', '/ip4/169.254.3.4/tcp/4001', '/ip6/fe80::1/tcp/4001',
      `/ip4/192.168.1.5/tcp/4001${peer}`, '/ip6/::1/tcp/4001', '/ip4/192.168.1.5/tcp/4001',
    ].map((a) => multiaddr(a));
    expect(selectDialable(addrs)).toEqual(['/ip4/192.168.1.5/tcp/4001']);
    expect(selectDialable([multiaddr(`/ip4/127.0.0.1/tcp/5${peer}`)])).toEqual(['/ip4/127.0.0.1/tcp/5']);
  });

  it("puts addresses through an anchor's relay after the direct ones, so a home behind NAT can be joined", () => {
    const anchor = '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN';
    const self = '/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp';
    const relayed = `/ip4/192.0.2.10/tcp/4001/p2p/${anchor}/p2p-circuit`;
    const addrs = [`${relayed}${self}`, `/ip4/10.1.0.2/tcp/4001${self}`, '/ip4/127.0.0.1/tcp/4001', `/ip4/127.0.0.1/tcp/4001/p2p/${anchor}/p2p-circuit`].map((a) => multiaddr(a));
    expect(selectDialable(addrs)).toEqual(['/ip4/10.1.0.2/tcp/4001', relayed]);
    // Behind NAT with only loopback and a relay: the relay, never a loopback circuit.
    expect(selectDialable([multiaddr('/ip4/127.0.0.1/tcp/4001'), multiaddr(relayed)])).toEqual([relayed]);
  });
});
