// How a relative is connected, read from a libp2p connection's remote multiaddr:
// a WebRTC connection's address has /webrtc (or /webrtc-direct), a relayed one has
// /p2p-circuit after the relay's /p2p/<id>, anything else is direct.

export type ConnectionKind = { kind: 'direct' } | { kind: 'webrtc' } | { kind: 'relayed'; relay: string | null };

export function connectionKind(remoteAddr: string): ConnectionKind {
  const protocols = remoteAddr.split('/');
  if (protocols.includes('webrtc') || protocols.includes('webrtc-direct')) return { kind: 'webrtc' };
  const circuit = protocols.indexOf('p2p-circuit');
  if (circuit === -1) return { kind: 'direct' };
  const before = protocols.slice(0, circuit);
  const at = before.lastIndexOf('p2p');
  return { kind: 'relayed', relay: at === -1 ? null : (before[at + 1] ?? null) };
}

const PREFERENCE: Record<ConnectionKind['kind'], number> = { direct: 0, webrtc: 1, relayed: 2 };

/** The best of a relative's open connections (direct before WebRTC before relayed); null when none is open. */
export function bestConnection(remoteAddrs: readonly string[]): ConnectionKind | null {
  const kinds = remoteAddrs.map(connectionKind).sort((a, b) => PREFERENCE[a.kind] - PREFERENCE[b.kind]);
  return kinds[0] ?? null;
}
