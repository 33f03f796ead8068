// The home's settings and family, backed up as `home` catalog records (encrypted and
// signed like every record, held by every relative), and put back on a home
// recovered from its phrase. Format: docs/catalog-format.md (kind `home`).
import type { Catalog, HomePayload } from '../storage/catalog/catalog.ts';
import type { Config, TargetConfig } from './config.ts';
import type { FamilyRoster } from './family.ts';

function homeDocument(config: Config, roster: FamilyRoster, time: number): HomePayload {
  return {
    k: 'home',
    name: config.get('name'),
    sources: config.data.sources.map(({ name, path }) => ({ name, path })),
    targets: config.data.targets.map((t) => ({ ...t })),
    settings: { ...config.data.settings },
    members: roster.members().map(({ name, peerId, addrs, quotaTheyGrantUs, quotaWeGrantThem, pairedAt }) => ({ name, peerId, addrs, quotaTheyGrantUs, quotaWeGrantThem, pairedAt })),
    time,
  };
}

const withoutTime = ({ time: _, ...rest }: HomePayload): string => JSON.stringify(rest);

/** Append a `home` record when the settings or the family differ from the last one recorded. */
export async function recordHomeIfChanged(catalog: Catalog, config: Config, roster: FamilyRoster, now = Date.now()): Promise<boolean> {
  const doc = homeDocument(config, roster, now);
  const last = await catalog.home();
  if (last && withoutTime(last) === withoutTime(doc)) return false;
  await catalog.append([doc]);
  return true;
}

export interface RecoveredHome {
  /** Whether name, sources, targets and settings came back (only into a home that had none of its own). */
  settings: boolean;
  /** Relatives put back in the roster; the daemon dials them and they know this home's PeerId. */
  relatives: string[];
}

/**
 * After the catalog came back from the family: the recorded settings into a config
 * that has no sources or targets yet, and every recorded relative not in the roster.
 */
export async function applyRecoveredHome(catalog: Catalog, config: Config, roster: FamilyRoster, self: string): Promise<RecoveredHome> {
  const doc = await catalog.home();
  if (!doc) return { settings: false, relatives: [] };
  const fresh = config.data.sources.length === 0 && config.data.targets.length === 0;
  if (fresh) {
    config.data.sources = doc.sources;
    config.data.targets = doc.targets as unknown as TargetConfig[];
    config.data.settings = { ...doc.settings, ...config.data.settings };
    config.save();
  }
  const relatives = await roster.restoreMembers(doc.members.filter((m) => m.peerId !== self));
  return { settings: fresh, relatives };
}
