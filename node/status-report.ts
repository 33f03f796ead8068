// What `hearth status` reports: the last backup, what runs next, each relative's
// health in a word, targets with their free space, open alerts. Times are ISO 8601
// strings and sizes bytes, as in every JSON document; the CLI makes them readable.
import { describeDriveTarget } from './drive-target.ts';
import { hostedDir } from './hosted-dir.ts';
import { statfs } from 'node:fs/promises';
import { AlertCenter } from './alerts.ts';
import { FamilyRoster } from './family.ts';
import type { HomeSession } from './session.ts';
import { describeTarget } from './s3-target.ts';

/** One word per relative: answering, not heard from lately, past policy.unreachableAfter, failing checks, or never seen. */
export type RelativeHealth = 'ok' | 'online' | 'quiet' | 'unreachable' | 'failing' | 'never seen';

/** Not heard from this long, a relative is "quiet" (sleeping computers are normal; unreachable comes later). */
const QUIET_AFTER_MS = 24 * 3600_000;

export interface StatusExtras {
  alerts?: Array<{ key: string; since: string }>;
  schedule?: Array<{ name: string; schedule: string; running: boolean; nextRun?: string; lastRun?: string; lastError?: string }>;
  /** Relatives connected now (names). */
  online?: string[];
  /** How relatives reach this home (docs/nat.md): it relays for them, or through which anchors. */
  reachability?: { anchor: boolean; announced: string[]; relayedVia: string[] };
}

export async function statusReport(session: HomeSession, extras: StatusExtras | undefined, now = Date.now()): Promise<Record<string, unknown>> {
  const config = session.config;
  const runs = await session.catalog.runs();
  const last = runs.at(-1);
  const stats = session.catalog.stats();
  const alerts = extras?.alerts ?? new AlertCenter({ home: session.paths.dir, settings: () => config }).open().map((a) => ({ key: a.key, since: new Date(a.raisedAt).toISOString() }));
  const failing = new Set(alerts.filter((a) => /^(audit-failed|scrub-damage):/.test(a.key)).map((a) => a.key.slice(a.key.indexOf(':') + 1)));
  const unreachableAfter = config.duration('policy.unreachableAfter');
  const roster = await FamilyRoster.open(session.paths.dir);
  const relatives = roster.members().map((m) => {
    const seen = m.lastSeen ? Date.parse(m.lastSeen) : undefined;
    const health: RelativeHealth = failing.has(m.name) ? 'failing'
      : extras?.online?.includes(m.name) ? 'online'
      : seen === undefined ? 'never seen'
      : now - seen > unreachableAfter ? 'unreachable'
      : now - seen > QUIET_AFTER_MS ? 'quiet' : 'ok';
    return { name: m.name, peerId: m.peerId, health, lastSeen: m.lastSeen };
  });
  const startedAt = last && (last.start?.time ?? last.end!.time);
  const lastStats = (last?.end?.stats ?? {}) as Record<string, number | undefined>;
  return {
    home: session.paths.dir,
    name: config.get('name') || undefined,
    peerId: session.peerId,
    daemon: extras !== undefined,
    lastBackup: last ? {
      at: new Date(startedAt!).toISOString(),
      finishedAt: last.end ? new Date(last.end.time).toISOString() : null,
      durationMs: last.end ? last.end.time - startedAt! : null,
      state: !last.end ? 'interrupted' : last.end.ok ? 'complete' : 'errors',
      files: lastStats.files ?? null,
      bytes: lastStats.bytes ?? null,
    } : null,
    schedule: extras?.schedule?.map((j) => ({ name: j.name, schedule: j.schedule, nextRun: j.nextRun ?? null, running: j.running, lastError: j.lastError ?? null })) ?? null,
    sources: config.data.sources,
    targets: await Promise.all(config.data.targets.map(async (t) => ({ ...t, where: t.kind === 'dir' ? t.path : t.kind === 'drive' ? describeDriveTarget(t) : describeTarget(t), ...(t.kind === 'dir' ? await freeSpace(t.path) : { freeBytes: null }) }))),
    relatives,
    reachability: extras?.reachability ?? null,
    alerts,
    catalog: {
      head: session.catalog.head().seq,
      records: stats.records,
      files: stats.files.count,
      folders: stats.folders,
      bytes: stats.files.bytes,
      versions: stats.versions.count,
      objects: stats.objects,
      placements: stats.placements,
      unpacked: stats.unpacked,
      clock: session.catalog.clock(now),
    },
    /** Where relatives' encrypted objects are kept here. */
    hostedDir: hostedDir(session.paths, config),
    volumeSize: config.size('volume.size'),
  };
}

async function freeSpace(path: string): Promise<{ freeBytes: number | null; problem?: string }> {
  try {
    const s = await statfs(path);
    return { freeBytes: s.bavail * s.bsize };
  } catch (err) {
    return { freeBytes: null, problem: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
}
