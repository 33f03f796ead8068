// Names in a pending volume: every path once, none both a file and a folder, each
// name within 255 bytes, and the real path kept wherever it is free.
import { describe, expect, it } from 'vitest';
import { volumePaths } from '../node/volume-paths.ts';
import { encodeFsName } from '../storage/paths.ts';

const h = (c: string) => c.repeat(64);

describe('volumePaths', () => {
  it('keeps free paths, and renames a file whose path is taken or is a folder', () => {
    expect(volumePaths([
      { path: 's/x', hash: h('a') }, { path: 's/x/inner', hash: h('b') },
      { path: 's/y/inner', hash: h('c') }, { path: 's/y', hash: h('d') },
      { path: 's/z', hash: h('e') }, { path: 's/z', hash: h('f') },
      { path: 's/w~aaaaaaaaaaaa', hash: h('1') }, { path: 's/w', hash: h('a') }, { path: 's/w', hash: h('a') },
    ])).toEqual([
      's/x~aaaaaaaaaaaa', 's/x/inner', 's/y/inner', 's/y~dddddddddddd', 's/z', 's/z~ffffffffffff',
      's/w~aaaaaaaaaaaa', 's/w', 's/w~aaaaaaaaaaaa-2',
    ]);
  });

  it('shortens a long name so the renamed one stays within 255 bytes', () => {
    const long = `s/${'é'.repeat(127)}`;
    const [, renamed] = volumePaths([{ path: long, hash: h('a') }, { path: long, hash: h('b') }]);
    const name = renamed!.slice(2);
    expect(encodeFsName(name).length).toBeLessThanOrEqual(255);
    expect(name.endsWith('~bbbbbbbbbbbb')).toBe(true);
  });
});
