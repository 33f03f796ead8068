// Names of files inside a pending volume. The catalog keeps each version's real path
// and its extent, so the image only needs names a directory tree can hold. A pending
// volume mixes old versions (read back from staged blobs) with current ones, so one
// path can come twice, or be a file in one version and a folder in another (photos/x
// a file then, photos/x/ a folder now). Such a file is stored as `name~<hash>` beside
// the other: bsdtar, xorriso and 7z still read the image, and no run fails on it.
import { encodeFsName } from '../storage/paths.ts';

const NAME_MAX = 255;

/** For each item, in order, the path it takes in the image: its own unless that is already a file or a folder there. */
export function volumePaths(items: ReadonlyArray<{ path: string; hash: string }>): string[] {
  const dirs = new Set<string>();
  for (const { path } of items) {
    for (let slash = path.indexOf('/'); slash > 0; slash = path.indexOf('/', slash + 1)) dirs.add(path.slice(0, slash));
  }
  const taken = new Set<string>();
  return items.map(({ path, hash }) => {
    let name = path;
    for (let n = 1; taken.has(name) || dirs.has(name); n++) name = withSuffix(path, `~${hash.slice(0, 12)}${n > 1 ? `-${n}` : ''}`);
    taken.add(name);
    return name;
  });
}

/** The path with `suffix` on its last name, shortened so that name stays within NAME_MAX bytes. */
function withSuffix(path: string, suffix: string): string {
  const slash = path.lastIndexOf('/');
  const chars = [...path.slice(slash + 1)];
  while (chars.length > 0 && encodeFsName(chars.join('') + suffix).length > NAME_MAX) chars.pop();
  return `${path.slice(0, slash + 1)}${chars.join('')}${suffix}`;
}
