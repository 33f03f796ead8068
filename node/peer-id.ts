// The PeerId of the Ed25519 identity derived from the recovery phrase, computed
// without loading libp2p (CLI commands that need no network stay fast): a PeerId
// is the base58btc identity multihash of the protobuf-encoded public key.
import { base58 } from '@scure/base';
import { createPublicKey } from 'node:crypto';
import { ed25519PrivateKey } from '../storage/keys.ts';

const PROTOBUF_ED25519_PUBLIC = Buffer.from([0x08, 0x01, 0x12, 0x20]);
const IDENTITY_MULTIHASH_36 = Buffer.from([0x00, 0x24]);

export function peerIdFromPublicKey(publicRaw: Uint8Array): string {
  return base58.encode(Buffer.concat([IDENTITY_MULTIHASH_36, PROTOBUF_ED25519_PUBLIC, publicRaw]));
}

export function peerIdFromSeed(seed: Uint8Array): string {
  const der = createPublicKey(ed25519PrivateKey(Buffer.from(seed))).export({ format: 'der', type: 'spki' });
  return peerIdFromPublicKey(der.subarray(der.length - 32));
}
