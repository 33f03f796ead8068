import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { peerIdFromSeed } from '../node/peer-id.ts';

describe('PeerId without libp2p', () => {
  it('matches libp2p for random seeds', async () => {
    for (let i = 0; i < 20; i++) {
      const seed = randomBytes(32);
      expect(peerIdFromSeed(seed)).toBe(peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed)).toString());
    }
  });
});
