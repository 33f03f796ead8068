// The backup and restore rows of `npm run bench`: Hearth (to a directory target) and
// restic (a local repository) on one data set, in pairs (measure.ts pairedRuns): the
// first backup into a fresh repository, a run with nothing changed, and a restore of
// everything into an empty folder.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pairedRuns, pairSummary, run, type CacheState, type Comparison, type Run, type Side } from './measure.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const HEARTH = join(repo, 'cli', 'hearth.mjs');

/** What the bench does with one tool: set up an empty repository, back up, restore into a folder. */
interface Tool {
  fresh(): Promise<unknown>;
  backup(): Promise<Run>;
  restore(to: string): Promise<Run>;
  remove(): void;
}

function hearthTool(source: string, work: string, label: string): Tool {
  const home = join(work, `hearth-${label}`);
  const target = join(work, `target-${label}`);
  const h = (args: string[]) => run(process.execPath, [HEARTH, '--home', home, ...args]);
  const remove = () => {
    rmSync(home, { recursive: true, force: true });
    rmSync(target, { recursive: true, force: true });
  };
  return {
    fresh: async () => {
      remove();
      await h(['init', '--json']);
      await h(['source', 'add', source]);
      mkdirSync(target);
      await h(['target', 'add', 'dir', target]);
    },
    backup: () => h(['backup', '--json']),
    restore: (to) => h(['restore', '--to', to, '--json']),
    remove,
  };
}

function resticTool(source: string, work: string, label: string): Tool {
  const repoDir = join(work, `restic-${label}`);
  const cache = join(work, `restic-cache-${label}`);
  const env = { RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: repoDir, RESTIC_CACHE_DIR: cache };
  const remove = () => {
    rmSync(repoDir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  };
  return {
    fresh: () => {
      remove();
      return run('restic', ['init', '--quiet'], { env });
    },
    backup: () => run('restic', ['backup', '--quiet', source], { env }),
    restore: (to) => run('restic', ['restore', 'latest', '--quiet', '--target', to], { env }),
    remove,
  };
}

export interface DataSet {
  /** Names the rows ("photo set") and the working folders ("photos"). */
  name: string;
  label: string;
  dir: string;
  files: number;
  bytes: number;
  /** Rows are in MB/s for big files, files/s for small ones. */
  unit: Comparison['unit'];
}

/** Which rows of a set are headline rows with a target, and which ceilings bound each (ceilings.ts). */
export interface SetRows {
  first: { target?: string; bounds: string[] };
  noChange: { target?: string; bounds: string[] };
  /** The run with nothing changed once more from a cold cache, as after a night's sleep. */
  noChangeCold?: { bounds: string[] };
  restore: { target?: string; bounds: string[] };
}

/**
 * Each row's pairs run one after another, Hearth first: first backups (cold), runs
 * with nothing changed against the last pair's repositories (warm, and cold when
 * asked), restores of those repositories (cold). Without restic, Hearth's runs alone.
 */
export async function backupComparisons(set: DataSet, rows: SetRows, work: string, pairs: number, withRestic: boolean): Promise<{ comparisons: Comparison[]; report: any }> {
  const hearth = hearthTool(set.dir, work, set.label);
  const restic = withRestic ? resticTool(set.dir, work, set.label) : undefined;
  const amount = set.unit === 'MB/s' ? set.bytes / 1e6 : set.files;
  const comparisons: Comparison[] = [];
  const compare = async (label: string, cache: CacheState, sides: (tool: Tool) => Side, row: { target?: string; bounds: string[] }) => {
    const name = `${label}, ${set.name}${restic ? ' vs restic' : ''}`;
    const p = await pairedRuns(name, pairs, cache, sides(hearth), restic && sides(restic));
    comparisons.push({ label: name, unit: set.unit, summary: pairSummary(p, amount), ...row });
    return p;
  };
  const restoreTo = (tool: Tool, name: string): Side => {
    const to = join(work, `restored-${name}-${set.label}`);
    return { prepare: () => rmSync(to, { recursive: true, force: true }), run: () => tool.restore(to) };
  };
  try {
    const first = await compare('first backup', 'cold', (tool) => ({ prepare: tool.fresh, run: tool.backup }), rows.first);
    await compare('no-change run', 'warm', (tool) => ({ run: tool.backup }), rows.noChange);
    if (rows.noChangeCold) await compare('no-change run', 'cold', (tool) => ({ run: tool.backup }), rows.noChangeCold);
    await compare('restore', 'cold', (tool) => restoreTo(tool, tool === hearth ? 'hearth' : 'restic'), rows.restore);
    return { comparisons, report: JSON.parse(first.hearth.at(-1)!.stdout) };
  } finally {
    hearth.remove();
    restic?.remove();
    for (const name of ['hearth', 'restic']) rmSync(join(work, `restored-${name}-${set.label}`), { recursive: true, force: true });
  }
}
