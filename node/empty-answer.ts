// Why a selection (`ls PATH`, `restore PATH`, `--at TIME`) matched nothing, said in
// one line that names what does exist: a wrong-case source, the folder's real
// entries, the first backup's time. An empty answer is never silent.
import type { Catalog } from '../storage/catalog/catalog.ts';
import { displayPath } from '../storage/paths.ts';
import { parseSelection } from './restore.ts';
import { formatLocalTime } from './units.ts';

/** Names shown in one message at most; the rest are counted. */
const NAMES_SHOWN = 10;

/** Throws the explanation when `path` (or the whole library) holds nothing as of `at`. */
export async function requireMatch(catalog: Catalog, path: string | undefined, at: number | undefined): Promise<void> {
  const sel = path ? parseSelection(path) : {};
  for await (const _ of catalog.snapshot(at, sel)) return;
  throw new Error(await explainEmpty(catalog, path, at));
}

export async function explainEmpty(catalog: Catalog, path: string | undefined, at: number | undefined): Promise<string> {
  const sources = await catalog.sources();
  if (sources.length === 0) return 'nothing is backed up yet: run "hearth backup" first';
  const asOf = at === undefined ? '' : ` as of ${formatLocalTime(at)}`;
  const runs = await catalog.runs();
  const first = runs.find((r) => r.start)?.start?.time;
  if (at !== undefined && first !== undefined && at < first) {
    return `no backup as of ${formatLocalTime(at)}: the first backup was at ${formatLocalTime(first)} (see "hearth snapshots" for every backup time)`;
  }
  if (!path) return `nothing backed up${asOf}: see "hearth snapshots" for the backup times`;
  const sel = parseSelection(path);
  if (!sources.includes(sel.source!)) {
    const like = sources.find((s) => s.toLowerCase() === sel.source!.toLowerCase());
    const hint = like ? ` (did you mean "${like}"? names are case-sensitive)` : '';
    return `no source named "${displayPath(sel.source!)}"${hint}: backed-up sources are ${listNames(sources)}`;
  }
  const shown = displayPath(`${sel.source}/${sel.prefix}`);
  // Walk up to the nearest folder that exists as of `at`, and name what it holds.
  const parts = sel.prefix!.split('/').filter(Boolean);
  for (let depth = parts.length - 1; depth >= 0; depth--) {
    const parent = parts.slice(0, depth).join('/');
    const children = await childNames(catalog, sel.source!, parent, at);
    if (children.length === 0) continue;
    const missing = parts[depth]!;
    const like = children.find((c) => c.toLowerCase() === missing.toLowerCase());
    const hint = like ? ` (did you mean "${displayPath(like)}"? names are case-sensitive)` : '';
    const folder = displayPath(parent ? `${sel.source}/${parent}` : sel.source!);
    return `nothing backed up at "${shown}"${asOf}${hint}: ${folder}/ holds ${listNames(children.map(displayPath))} (see "hearth ls ${folder}")`;
  }
  return `nothing backed up at "${shown}"${asOf}: source ${displayPath(sel.source!)} holds nothing then (see "hearth snapshots")`;
}

/** The names directly inside `folder` ('' = the source's top) as of `at`. */
async function childNames(catalog: Catalog, source: string, folder: string, at: number | undefined): Promise<string[]> {
  const names = new Set<string>();
  const inside = folder ? `${folder}/` : '';
  for await (const rec of catalog.snapshot(at, folder ? { source, prefix: folder } : { source })) {
    if (!rec.path.startsWith(inside) || rec.path === folder) continue;
    names.add(rec.path.slice(inside.length).split('/')[0]!);
  }
  return [...names];
}

function listNames(names: string[]): string {
  const quoted = names.slice(0, NAMES_SHOWN).map((n) => `"${n}"`).join(', ');
  return names.length > NAMES_SHOWN ? `${quoted} and ${names.length - NAMES_SHOWN} more` : quoted;
}
