// The merkle stage of the encode pipeline (see encode.ts): hashes each object's age
// bytes into its Merkle tree, one job per object. It loads no cipher or key code.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { MerkleBuilder } from '../merkle.ts';
import type { EncodeEvent, MerkleRequest, StageData } from './messages.ts';

function runMerkle(input: MessagePort, output: MessagePort): void {
  const jobs = new Map<number, MerkleBuilder>();
  input.on('message', (message: MerkleRequest) => {
    const { job } = message;
    if (message.kind === 'start') {
      jobs.set(job, new MerkleBuilder(message.leafSize));
      return;
    }
    if (message.kind === 'error') {
      output.postMessage(message satisfies EncodeEvent);
      return;
    }
    const builder = jobs.get(job);
    if (!builder) return;
    if (message.kind === 'abort') {
      jobs.delete(job);
      return;
    }
    builder.update(new Uint8Array(message.output, 0, message.length));
    if (message.kind === 'data') {
      output.postMessage(message satisfies EncodeEvent, [message.output, message.spare]);
    } else {
      jobs.delete(job);
      const event: EncodeEvent = { ...message, encryptedSize: builder.size, merkleRoot: builder.digest() };
      output.postMessage(event, [message.output]);
    }
  });
}

runMerkle((workerData as StageData).link, parentPort as unknown as MessagePort);
