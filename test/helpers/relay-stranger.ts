// A libp2p node that is no family member, run by the NAT lab tests inside the
// stranger's namespace: it asks an anchor for a relay reservation and for a relayed
// connection to a home, and prints what each came to as one JSON line.
//   node relay-stranger.ts <anchor multiaddr with /p2p> <destination PeerId>
import { createLibp2p } from 'libp2p';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { tcp } from '@libp2p/tcp';
import { identify } from '@libp2p/identify';
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { multiaddr } from '@multiformats/multiaddr';
import type { TransportManager } from '@libp2p/interface-internal';

const [anchorArg, destination] = process.argv.slice(2);
if (!anchorArg || !destination) throw new Error('usage: relay-stranger.ts <anchor multiaddr/p2p/ID> <destination PeerId>');
const anchor = multiaddr(anchorArg);

let transportManager: TransportManager | undefined;
const node = await createLibp2p({
  transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: 5000 })],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    // libp2p has no public listen-after-start; a reservation is a listen on a relay.
    capture: (components: { transportManager: TransportManager }) => {
      transportManager = components.transportManager;
      return {};
    },
  },
});

const outcome = async (work: () => Promise<unknown>): Promise<string> => {
  try {
    await work();
    return 'ok';
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`;
  }
};

const connect = await outcome(() => node.dial(anchor, { signal: AbortSignal.timeout(5000) }).then((c) => new Promise((r) => setTimeout(r, 500, c))).then(() => {
  // The gater of a home that admits no stranger closes the connection once Noise has named us.
  if (node.getConnections().length === 0) throw new Error('the anchor closed the connection');
}));
const reserve = connect === 'ok' ? await outcome(() => transportManager!.listen([anchor.encapsulate('/p2p-circuit')])) : 'not connected';
const relayed = connect === 'ok' ? await outcome(() => node.dial(anchor.encapsulate(`/p2p-circuit/p2p/${destination}`), { signal: AbortSignal.timeout(5000) })) : 'not connected';
process.stdout.write(`${JSON.stringify({ connect, reserve, relayed })}\n`);
await node.stop();
