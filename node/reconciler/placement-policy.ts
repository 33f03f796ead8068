// The one placement policy: which kinds of place an object should be held at, given
// where it is held now. The backup's object store (what goes where when an object
// is first stored) and the reconciler (what is placed or dropped later, at
// relatives, on Drive and in cold storage: node/reconciler/reconciler.ts) both ask
// these functions, so the rules live in one place.
import type { PlacementRecord } from '../../storage/catalog/catalog.ts';
import type { TierKind } from '../../storage/tier/tier.ts';
import type { Config } from '../config.ts';

export type ColdPolicy = 'fallback' | 'always' | 'never';

export interface PlacementPolicy {
  /** Copies wanted at relatives (all of them when the family is smaller). */
  peers: number;
  cold: ColdPolicy;
  /** How long a volume may stay below `peers` relatives before it goes cold (ms). */
  fallbackAfterMs: number;
  /** Where staged blobs wait: at relatives (Drive as their fallback) or on Drive too. Default relatives. */
  staging?: 'relatives' | 'drive';
}

export interface ObjectPlacementState {
  kind: 'blob' | 'volume';
  /** When the object was stored (its catalog record's time). */
  time: number;
  /** Relatives that hold it and still count (not gone quiet for too long). */
  peerCopies: number;
  /** Relatives in the family. */
  relatives: number;
  /**
   * Whether any place other than the one asked about holds or will hold it (a
   * directory target, a relative, the outbox waiting for relatives). Without one, a
   * cold copy is the object's only copy and cannot wait.
   */
  heldElsewhere: boolean;
}

export function placementPolicyOf(config: Config): PlacementPolicy {
  return {
    peers: Number(config.get('policy.peers')),
    cold: config.get('policy.cold') as ColdPolicy,
    fallbackAfterMs: config.duration('policy.fallbackAfter'),
    staging: config.get('policy.staging') as 'relatives' | 'drive',
  };
}

/** Whether `object` should (still) get a copy on a tier of `kind`. */
export function wantsCopy(kind: TierKind, object: ObjectPlacementState, policy: PlacementPolicy, now: number): boolean {
  switch (kind) {
    case 'dir':
      // Every directory target holds everything: it is the cheapest place to restore from.
      return true;
    case 'peer':
      return object.peerCopies < Math.min(policy.peers, object.relatives);
    case 's3':
      // A home whose only place is the bucket (no disk, no relatives yet) keeps
      // everything there, whatever the cost: an object placed nowhere is lost.
      if (!object.heldElsewhere) return true;
      // Otherwise staged blobs stay off cold storage: its 180-day minimum and 40 KB
      // per object make small, short-lived objects cost more than they protect.
      if (object.kind !== 'volume' || policy.cold === 'never') return false;
      if (policy.cold === 'always') return true;
      return object.peerCopies < policy.peers && now - object.time >= policy.fallbackAfterMs;
    case 'drive':
      // Drive is the staging tier (docs/drive-tier.md): staged blobs wait there when
      // relatives are away, or always with policy.staging drive; volumes belong at
      // relatives and in cold storage, unless Drive is the home's only place.
      if (!object.heldElsewhere) return true;
      if (object.kind !== 'blob') return false;
      if (policy.staging === 'drive') return true;
      return object.peerCopies < policy.peers && now - object.time >= policy.fallbackAfterMs;
  }
}

/**
 * Whether a copy that `object` has on a tier of `kind` should go. Only staged
 * copies on Drive do, once relatives hold the blob as the policy wants (they came
 * back): Drive's free space is small and shared with the user's mail. Copies in
 * cold storage stay (the 180-day minimum is paid either way), and directory
 * targets and relatives keep everything they were given.
 */
export function dropsCopy(kind: TierKind, object: ObjectPlacementState, policy: PlacementPolicy, now: number): boolean {
  if (kind !== 'drive' || object.kind !== 'blob') return false;
  if (object.relatives === 0 || object.peerCopies < Math.min(policy.peers, object.relatives)) return false;
  return !wantsCopy(kind, object, policy, now);
}

/**
 * Whether a volume placed so covers the staged blobs whose content it holds, so
 * they can be retired: every directory target and the wanted number of relatives
 * hold it. A cold copy is not needed first: relatives and directory targets are
 * what the policy requires of every volume. A copy marked damaged (node/checks/)
 * holds nothing a blob could be given up for.
 */
export function volumeCovers(placements: PlacementRecord[], dirTargets: string[], peersWanted: number): boolean {
  return dirTargets.every((t) => placements.some((p) => p.target === t && p.damaged === undefined)) && placements.filter((p) => p.tier === 'peer').length >= peersWanted;
}
