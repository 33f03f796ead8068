// The reference for Hearth's transfers: N bytes over one bare libp2p stream
// (TCP + Noise + Yamux on 127.0.0.1), the receiver hashing them as a host would.
// Prints one JSON line: {"bytes": N, "seconds": S}. Run: node test/bench/bare-stream.ts BYTES
import { createHash } from 'node:crypto';
import { createLibp2p } from 'libp2p';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { tcp } from '@libp2p/tcp';

const total = Number(process.argv[2] ?? 1 << 30);
const PROTOCOL = '/hearth-bench/bare/1';
const node = () => createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
const [sender, receiver] = await Promise.all([node(), node()]);

const received = new Promise<void>((resolve) => {
  void receiver.handle(PROTOCOL, (stream) => {
    const hash = createHash('sha256');
    let got = 0;
    stream.addEventListener('message', (event) => {
      const data = event.data;
      for (const chunk of data instanceof Uint8Array ? [data] : data) {
        hash.update(chunk);
        got += chunk.byteLength;
      }
      if (got >= total) resolve();
    });
  });
});

const started = process.hrtime.bigint();
const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0]!, PROTOCOL);
const chunk = Buffer.alloc(256 * 1024, 7);
for (let sent = 0; sent < total; sent += chunk.length) {
  if (!stream.send(chunk.subarray(0, Math.min(chunk.length, total - sent)))) await stream.onDrain();
}
await received;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await stream.close().catch(() => undefined);
await Promise.all([sender.stop(), receiver.stop()]);
console.log(JSON.stringify({ bytes: total, seconds }));
