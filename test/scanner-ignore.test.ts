import { describe, expect, it } from 'vitest';
import { compileIgnore, DEFAULT_IGNORES } from '../storage/scanner/ignore.ts';

function matches(patterns: string[], path: string, isDirectory = false): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return compileIgnore(patterns)(path, name, isDirectory);
}

describe('ignore patterns', () => {
  it('matches a pattern without "/" against the name at any depth', () => {
    expect(matches(['*.tmp'], 'a/b/c.tmp')).toBe(true);
    expect(matches(['*.tmp'], 'a/b/c.tmp.jpg')).toBe(false);
    expect(matches(['IMG_????.jpg'], 'x/IMG_0001.jpg')).toBe(true);
    expect(matches(['IMG_????.jpg'], 'x/IMG_001.jpg')).toBe(false);
  });

  it('matches a pattern with "/" against the whole relative path', () => {
    expect(matches(['photos/*.jpg'], 'photos/a.jpg')).toBe(true);
    expect(matches(['photos/*.jpg'], 'photos/2024/a.jpg')).toBe(false);
    expect(matches(['photos/*.jpg'], 'old/photos/a.jpg')).toBe(false);
    expect(matches(['/top'], 'top')).toBe(true);
    expect(matches(['/top'], 'sub/top')).toBe(false);
  });

  it('lets "**" cross folders, including none', () => {
    expect(matches(['**/cache'], 'cache')).toBe(true);
    expect(matches(['**/cache'], 'a/b/cache')).toBe(true);
    expect(matches(['a/**/z.txt'], 'a/z.txt')).toBe(true);
    expect(matches(['a/**/z.txt'], 'a/b/c/z.txt')).toBe(true);
    expect(matches(['a/**'], 'a/b/c')).toBe(true);
    expect(matches(['a/**'], 'b/a/c')).toBe(false);
  });

  it('restricts a pattern ending in "/" to folders', () => {
    expect(matches(['build/'], 'x/build', true)).toBe(true);
    expect(matches(['build/'], 'x/build', false)).toBe(false);
    expect(matches(['x/build/'], 'x/build', true)).toBe(true);
    expect(matches(['x/build/'], 'y/x/build', true)).toBe(false);
  });

  it('handles classes, negation, a leading "]", an unclosed "[" and escapes', () => {
    expect(matches(['[abc].txt'], 'b.txt')).toBe(true);
    expect(matches(['[abc].txt'], 'd.txt')).toBe(false);
    expect(matches(['[a-c]1'], 'b1')).toBe(true);
    expect(matches(['[!a-c]1'], 'b1')).toBe(false);
    expect(matches(['[^a-c]1'], 'z1')).toBe(true);
    expect(matches(['[]x]'], ']')).toBe(true);
    expect(matches(['a[b'], 'a[b')).toBe(true);
    expect(matches(['\\*'], '*')).toBe(true);
    expect(matches(['\\*'], 'x')).toBe(false);
    expect(matches(['a.b'], 'axb')).toBe(false);
    expect(matches(['(x)+{1}|$^'], '(x)+{1}|$^')).toBe(true);
  });

  it('matches names carrying raw bytes as lone surrogates', () => {
    expect(matches(['caf?'], 'caf\udce9')).toBe(true);
    expect(matches(['*\udcff*'], 'a\udcffb')).toBe(true);
  });

  it('ships defaults for OS and NAS clutter', () => {
    const isDefault = (path: string, isDirectory = false) => matches([...DEFAULT_IGNORES], path, isDirectory);
    expect(isDefault('photos/.DS_Store')).toBe(true);
    expect(isDefault('photos/._IMG_1.jpg')).toBe(true);
    expect(isDefault('photos/@eaDir', true)).toBe(true);
    expect(isDefault('#recycle', true)).toBe(true);
    expect(isDefault('photos/Thumbs.db')).toBe(true);
    expect(isDefault('photos/IMG_1.jpg')).toBe(false);
    expect(isDefault('photos/thumbs', true)).toBe(false);
  });

  it('refuses an empty pattern', () => {
    expect(() => compileIgnore([''])).toThrow(/ignore pattern "" matches nothing useful/);
    expect(() => compileIgnore(['/'])).toThrow(/ignore pattern "\/"/);
  });
});
