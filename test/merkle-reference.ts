// An independent, deliberately plain Merkle Tree Hash (RFC 6962 section 2.1) over
// fixed-size leaves, to check storage/merkle.ts and the encode pipeline against.
import { createHash } from 'node:crypto';

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return h.digest();
}

function treeHash(leaves: Uint8Array[]): Buffer {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return sha256(Buffer.from([0]), leaves[0]!);
  let split = 1;
  while (split * 2 < leaves.length) split *= 2;
  return sha256(Buffer.from([1]), treeHash(leaves.slice(0, split)), treeHash(leaves.slice(split)));
}

export function referenceLeaves(bytes: Uint8Array, leafSize: number): Uint8Array[] {
  const leaves: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += leafSize) leaves.push(bytes.subarray(off, off + leafSize));
  return leaves;
}

export function referenceRoot(bytes: Uint8Array, leafSize: number): string {
  return treeHash(referenceLeaves(bytes, leafSize)).toString('hex');
}
