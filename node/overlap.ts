// Folders that must not hold each other: a source that holds a target or this
// home's state would back up its own encrypted objects again on every run (578 MB
// became 1.1 GB in two runs), and a source inside another is backed up twice.
// `source add` and `target add` refuse them; overlaps in an older config are
// skipped by the scan (overlapIgnores) and said once per run.
import { relative, sep } from 'node:path';
import type { Config, SourceConfig } from './config.ts';

/** `inner` is `outer` or a folder somewhere inside it. */
export function within(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);
}

/**
 * A source may not hold a target, this home's state (it would back up its own
 * encrypted objects again every run), or another source, nor lie inside one.
 */
export function checkNoOverlap(abs: string, config: Config, home: string, what: 'source' | 'target'): void {
  for (const s of config.data.sources) {
    if (what === 'source' && (within(abs, s.path) || within(s.path, abs))) throw new Error(`${abs} overlaps source ${s.name} (${s.path}): a folder can be backed up once; add the outer folder only, or remove source ${s.name} first`);
    if (what === 'target' && within(abs, s.path)) throw new Error(`${abs} is inside source ${s.name} (${s.path}): every backup would back up its own objects again; put the target outside the sources`);
  }
  if (what === 'source') {
    for (const t of config.data.targets) if (t.kind === 'dir' && within(t.path, abs)) throw new Error(`${abs} holds target ${t.name} (${t.path}): every backup would back up its own objects again; move the target out or choose a folder beside it`);
    if (within(home, abs)) throw new Error(`${abs} holds this Hearth home (${home}), whose objects would be backed up again every run: choose a folder without it, or move the home (--home)`);
  }
}

/**
 * Ignore patterns (storage/scanner/ignore.ts) for the folders inside `source` that
 * its scan must skip: targets, this home, and other sources (backed up as themselves).
 */
export function overlapIgnores(source: SourceConfig, config: Config, home: string): Array<{ pattern: string; what: string }> {
  const inside = [
    ...config.data.targets.flatMap((t) => (t.kind === 'dir' ? [{ path: t.path, what: `target ${t.name}` }] : [])),
    ...config.data.sources.filter((s) => s.name !== source.name).map((s) => ({ path: s.path, what: `source ${s.name}` })),
    { path: home, what: 'this Hearth home' },
  ].filter((f) => f.path !== source.path && within(f.path, source.path));
  return inside.map((f) => ({ pattern: `/${relative(source.path, f.path).split(sep).map(escapeGlob).join('/')}/`, what: `${f.what} (${f.path})` }));
}

function escapeGlob(name: string): string {
  return name.replace(/[\\*?[\]!^]/g, (c) => `\\${c}`);
}
