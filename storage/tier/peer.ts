// A relative's home as a Tier, through the /hearth/object/1 client.
//
// Layering exception: storage/ normally imports nothing above it, but this tier is
// the wire protocol's client by nature, so it imports protocol/object.ts (which
// imports only storage/ itself, so there is no cycle). The libp2p node is handed in.
import type { Readable } from 'node:stream';
import type { PeerId } from '@libp2p/interface';
import { merkleRootOfSource, ObjectClient, RemoteObjectError, type Dialer, type PutResult, type TransferControl } from '../../protocol/object.ts';
import type { HostedObjectInfo, OwnerUsage } from '../hoststore/host-store.ts';
import { MERKLE_LEAF_SIZE } from '../merkle.ts';
import { ObjectNotFoundError, PermanentTierError, type ByteRange, type ObjectSource, type Tier } from './tier.ts';

/**
 * A source that already knows the Merkle root of its bytes (computed while
 * encrypting, kept in the catalog), which the host checks them against.
 */
export interface HashedObjectSource extends ObjectSource {
  /** RFC 6962 root (hex) over leafSize-byte leaves (storage/merkle.ts). */
  merkleRoot?: string;
  /** Default MERKLE_LEAF_SIZE (2048). */
  leafSize?: number;
}

export interface PeerTierOptions {
  /** The relative's name, as the family knows it. */
  name: string;
  peerId: PeerId;
  /** A started libp2p node that can dial the relative. */
  node: Dialer;
  idleTimeout?: number;
  /** The daemon's bandwidth caps and rate record; none: unlimited. */
  transfers?: TransferControl;
}

/** Stat and list report objects the host still holds with a pending deletion, with its deleteAt. */
export type PeerObjectInfo = HostedObjectInfo;

export class PeerTier implements Tier {
  readonly kind = 'peer' as const;
  readonly name: string;
  readonly peerId: PeerId;
  readonly #client: ObjectClient;

  constructor(options: PeerTierOptions) {
    this.name = options.name;
    this.peerId = options.peerId;
    this.#client = new ObjectClient({ node: options.node, peerId: options.peerId, idleTimeout: options.idleTimeout, transfers: options.transfers });
  }

  location(name: string): string {
    return `peer:${this.name}/${name}`;
  }

  /**
   * Resumes from whatever the host kept of an earlier attempt. The host refuses
   * bytes that do not have source.merkleRoot as their root (PermanentTierError,
   * EHASH); without it the source is read once more to compute it first.
   */
  async put(name: string, source: HashedObjectSource, signal?: AbortSignal): Promise<void> {
    await this.send(name, source, signal);
  }

  /** put(), telling how many bytes crossed the wire (fewer on a resume). */
  async send(name: string, source: HashedObjectSource, signal?: AbortSignal): Promise<PutResult> {
    const leafSize = source.leafSize ?? MERKLE_LEAF_SIZE;
    const merkleRoot = source.merkleRoot ?? (await merkleRootOfSource(source, leafSize, signal));
    return this.#call(name, () => this.#client.put(name, source, { merkleRoot, leafSize }, signal));
  }

  async get(name: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return (await this.#call(name, () => this.#client.get(name, range, signal))).stream;
  }

  async stat(name: string): Promise<PeerObjectInfo> {
    return this.#call(name, () => this.#client.stat(name));
  }

  async *list(): AsyncGenerator<PeerObjectInfo> {
    yield* this.#client.list();
  }

  /** The host keeps the object for its delete delay (readable meanwhile). */
  async delete(name: string): Promise<void> {
    await this.#call(name, () => this.#client.delete(name));
  }

  /** What this relative holds for us and grants us. */
  async usage(): Promise<OwnerUsage> {
    return this.#client.usage();
  }

  /** The libp2p node belongs to the caller; nothing to release here. */
  async close(): Promise<void> {}

  async #call<T>(name: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (!(err instanceof RemoteObjectError)) throw err;
      if (err.code === 'ENOOBJECT') throw new ObjectNotFoundError(`peer ${this.name}`, name);
      if (err.code === 'EINTERNAL') throw err;
      throw new PermanentTierError(`peer ${this.name}: ${err.message}`, { cause: err });
    }
  }
}
