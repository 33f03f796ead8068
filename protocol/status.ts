// /hearth/status/1: a relative asks this home what it holds for them: the quota it
// grants, the bytes it stores for them, deletions it is still delaying, its free
// disk, its version, and the asker's objects its scrub found damaged. Shaped like js-libp2p's ping service: protocol id and
// limits, handler and client side by side. The figures come from callbacks because
// the host store belongs to another module. Wire format: docs/protocols.md.
import { statfs } from 'node:fs/promises';
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface';
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal';
import { asRecord, wholeNumber, jsonFrames, ProtocolMessageError } from './json-frames.ts';
import { isValidObjectId } from '../storage/hoststore/host-store.ts';

export const STATUS_PROTOCOL = '/hearth/status/1';

/** Damaged ids in one answer; the rest follow as the owner repairs these. */
export const MAX_DAMAGED_IN_STATUS = 1000;

export const STATUS_LIMITS = {
  /** The request; and the answer of a host that reports no damage. */
  maxMessageBytes: 1024,
  /** The answer an asker accepts: room for MAX_DAMAGED_IN_STATUS ids of up to 128 characters. */
  maxReplyBytes: 256 * 1024,
  timeoutMs: 10_000,
  maxInboundStreams: 4,
  maxOutboundStreams: 4,
};

export interface HostStatus {
  version: string;
  /** Bytes the host grants the asker. */
  quotaBytes: number;
  /** Bytes of the asker's objects the host stores. */
  storedBytes: number;
  /** The asker's objects whose deletion the host is still delaying. */
  pendingDeletions: number;
  /** Free bytes on the host's disk. */
  freeBytes: number;
  /** The host's clock when it answered (ms since the epoch); absent from older hosts. */
  time?: number;
  /**
   * The asker's objects the host's scrub found damaged and that were not put again
   * since (at most MAX_DAMAGED_IN_STATUS). Absent from hosts that do not scrub.
   */
  damaged?: string[];
  /** How many damaged objects there are in all, when `damaged` is present. */
  damagedTotal?: number;
}

/** Where the answers come from, for the peer asking. */
export interface StatusSource {
  version: string;
  quotaFor(peerId: string): number;
  storedBytesFor(peerId: string): Promise<number>;
  pendingDeletionsFor(peerId: string): Promise<number>;
  freeBytes(): Promise<number>;
  /** Object ids of the asker's that the host's scrub found damaged (storage/hoststore/scrub.ts damagedFor). */
  damagedFor?(peerId: string): Promise<string[]>;
}

export interface StatusServiceInit {
  source: StatusSource;
  timeoutMs?: number;
  maxMessageBytes?: number;
  maxReplyBytes?: number;
  maxInboundStreams?: number;
  maxOutboundStreams?: number;
}

export interface StatusComponents {
  registrar: Registrar;
  connectionManager: ConnectionManager;
}

export class StatusService implements Startable {
  readonly protocol = STATUS_PROTOCOL;
  private readonly components: StatusComponents;
  private readonly source: StatusSource;
  private readonly timeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly maxReplyBytes: number;
  private readonly maxInboundStreams: number;
  private readonly maxOutboundStreams: number;

  constructor(components: StatusComponents, init: StatusServiceInit) {
    this.components = components;
    this.source = init.source;
    this.timeoutMs = init.timeoutMs ?? STATUS_LIMITS.timeoutMs;
    this.maxMessageBytes = init.maxMessageBytes ?? STATUS_LIMITS.maxMessageBytes;
    this.maxReplyBytes = init.maxReplyBytes ?? STATUS_LIMITS.maxReplyBytes;
    this.maxInboundStreams = init.maxInboundStreams ?? STATUS_LIMITS.maxInboundStreams;
    this.maxOutboundStreams = init.maxOutboundStreams ?? STATUS_LIMITS.maxOutboundStreams;
    this.handleStatus = this.handleStatus.bind(this);
  }

  readonly [Symbol.toStringTag] = '@hearth/status';

  async start(): Promise<void> {
    await this.components.registrar.handle(this.protocol, this.handleStatus, {
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxOutboundStreams,
    });
  }

  async stop(): Promise<void> {
    await this.components.registrar.unhandle(this.protocol);
  }

  /** Ask a relative (dialled by PeerId: its addresses must be known) for its status. */
  async query(peer: PeerId, options: { signal?: AbortSignal } = {}): Promise<HostStatus> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const stream = await this.components.connectionManager.openStream(peer, this.protocol, { signal });
    try {
      const frames = jsonFrames(stream, this.maxReplyBytes);
      await frames.write({}, signal);
      const status = parseStatus(await frames.read(signal));
      await stream.close({ signal });
      return status;
    } catch (err) {
      stream.abort(err as Error);
      throw err;
    }
  }

  private async handleStatus(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const asker = connection.remotePeer.toString();
    try {
      const frames = jsonFrames(stream, this.maxMessageBytes);
      asRecord(await frames.read(signal), 'status request');
      const [storedBytes, pendingDeletions, freeBytes, damaged] = await Promise.all([
        this.source.storedBytesFor(asker),
        this.source.pendingDeletionsFor(asker),
        this.source.freeBytes(),
        this.source.damagedFor?.(asker),
      ]);
      const status: HostStatus = { version: this.source.version, quotaBytes: this.source.quotaFor(asker), storedBytes, pendingDeletions, freeBytes, time: Date.now() };
      if (damaged) {
        status.damaged = damaged.slice(0, MAX_DAMAGED_IN_STATUS);
        status.damagedTotal = damaged.length;
      }
      await frames.write(status, signal);
      await stream.close({ signal });
    } catch (err) {
      stream.abort(err as Error);
    }
  }
}

export function statusService(init: StatusServiceInit): (components: StatusComponents) => StatusService {
  return (components) => new StatusService(components, init);
}

/** Free bytes an unprivileged process can use on the file system holding `path`. */
export async function freeBytesAt(path: string): Promise<number> {
  const stats = await statfs(path);
  return stats.bavail * stats.bsize;
}

export function parseStatus(value: unknown): HostStatus {
  const message = asRecord(value, 'status reply');
  if (typeof message.version !== 'string' || message.version.length > 64) throw new ProtocolMessageError('status reply: version must be a short string');
  return {
    version: message.version,
    quotaBytes: wholeNumber(message.quotaBytes, 'status reply: quotaBytes'),
    storedBytes: wholeNumber(message.storedBytes, 'status reply: storedBytes'),
    pendingDeletions: wholeNumber(message.pendingDeletions, 'status reply: pendingDeletions'),
    freeBytes: wholeNumber(message.freeBytes, 'status reply: freeBytes'),
    ...(message.time === undefined ? {} : { time: wholeNumber(message.time, 'status reply: time') }),
    ...parseDamaged(message),
  };
}

function parseDamaged(message: Record<string, unknown>): Pick<HostStatus, 'damaged' | 'damagedTotal'> {
  if (message.damaged === undefined) return {};
  const damaged = message.damaged;
  if (!Array.isArray(damaged) || damaged.length > MAX_DAMAGED_IN_STATUS || !damaged.every(isValidObjectId)) {
    throw new ProtocolMessageError(`status reply: damaged must list at most ${MAX_DAMAGED_IN_STATUS} object ids`);
  }
  const damagedTotal = wholeNumber(message.damagedTotal, 'status reply: damagedTotal');
  if (damagedTotal < damaged.length) throw new ProtocolMessageError('status reply: damagedTotal is smaller than the damaged list');
  return { damaged, damagedTotal };
}
