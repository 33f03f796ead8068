// Ignore patterns, glob-like. A pattern without '/' matches an entry's name at any
// depth; a pattern with '/' matches the path relative to the source root (a leading
// '/' is allowed and changes nothing). A trailing '/' restricts the pattern to
// directories. '*' and '?' never cross '/'; '**' does; '[...]' is a character
// class ('!' or '^' negates, ranges allowed); '\' makes the next character literal.

/** Clutter from operating systems and NAS boxes that no one wants restored. */
export const DEFAULT_IGNORES: readonly string[] = [
  '.DS_Store',
  '._*',
  '.Spotlight-V100',
  '.Trashes',
  '.fseventsd',
  '.TemporaryItems',
  'Thumbs.db',
  'ehthumbs.db',
  'desktop.ini',
  '$RECYCLE.BIN',
  'System Volume Information',
  '.Trash-*',
  'lost+found',
  '.git',
  '@eaDir',
  '#recycle',
  '#snapshot',
  '~$*',
];

export type IgnoreMatcher = (relativePath: string, name: string, isDirectory: boolean) => boolean;

export function compileIgnore(patterns: readonly string[]): IgnoreMatcher {
  const names: string[] = [];
  const paths: string[] = [];
  const dirNames: string[] = [];
  const dirPaths: string[] = [];
  for (const raw of patterns) {
    const dirOnly = raw.endsWith('/') && !raw.endsWith('\\/');
    const pattern = dirOnly ? raw.slice(0, -1) : raw;
    if (pattern === '' || pattern === '/') throw new Error(`ignore pattern "${raw}" matches nothing useful; remove it`);
    const isPath = pattern.includes('/');
    const source = globToRegExpSource(isPath ? pattern.replace(/^\/+/, '') : pattern);
    (dirOnly ? (isPath ? dirPaths : dirNames) : isPath ? paths : names).push(source);
  }
  const name = anyOf(names);
  const path = anyOf(paths);
  const dirName = anyOf(dirNames);
  const dirPath = anyOf(dirPaths);
  return (relativePath, entryName, isDirectory) =>
    (name?.test(entryName) ?? false) ||
    (path?.test(relativePath) ?? false) ||
    (isDirectory && ((dirName?.test(entryName) ?? false) || (dirPath?.test(relativePath) ?? false)));
}

// One regular expression per kind keeps the per-entry cost flat in the number of patterns.
function anyOf(sources: string[]): RegExp | undefined {
  return sources.length === 0 ? undefined : new RegExp(`^(?:${sources.join('|')})$`, 'u');
}

function globToRegExpSource(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          out += '(?:[^/]*/)*';
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const cls = characterClass(glob, i);
      if (cls) {
        out += cls.source;
        i = cls.end;
      } else {
        out += '\\[';
      }
    } else if (c === '\\' && i + 1 < glob.length) {
      out += escapeChar(glob[++i]!);
    } else {
      out += escapeChar(c);
    }
  }
  return out;
}

/** The class starting at glob[start] === '[', or undefined when it is never closed. */
function characterClass(glob: string, start: number): { source: string; end: number } | undefined {
  let i = start + 1;
  const negated = glob[i] === '!' || glob[i] === '^';
  if (negated) i++;
  let body = '';
  // A ']' first in the class is a member, as in POSIX globs.
  for (let first = true; i < glob.length; i++, first = false) {
    const c = glob[i]!;
    if (c === ']' && !first) return { source: negated ? `[^/${body}]` : `[${body}]`, end: i };
    if (c === '\\' && i + 1 < glob.length) body += escapeChar(glob[++i]!);
    else body += c === '-' ? '-' : escapeChar(c);
  }
  return undefined;
}

function escapeChar(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}
