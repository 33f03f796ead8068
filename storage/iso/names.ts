// Identifiers for the two directory hierarchies. Rock Ridge NM carries the real name
// byte-exactly; these are what readers without Rock Ridge see:
// - primary (ECMA-119 Level 2/3 names): d-characters A-Z 0-9 _, files NAME.EXT;1
//   with NAME+EXT <= 30, directories <= 31 characters;
// - Joliet: UTF-16BE, at most 64 code units (";1" not counted), without the
//   characters Joliet forbids.
// Either form is made unique within its directory by replacing the end of the name
// with a counter, in the order of the children's byte-sorted real names, so the
// result depends only on the directory's contents.

export interface ChildName {
  name: string;
  isDir: boolean;
}

const PRIMARY_FILE_MAX = 30;
const PRIMARY_DIR_MAX = 31;
const PRIMARY_EXT_MAX = 8;
const JOLIET_MAX = 64;
/** An extension longer than this is not worth keeping when a Joliet name is cut. */
const JOLIET_EXT_KEEP_MAX = 16;

/** ECMA-119 identifiers, parallel to `children`; files and symlinks carry ";1". */
export function primaryIdentifiers(children: readonly ChildName[]): string[] {
  const used = new Set<string>();
  return children.map(({ name, isDir }) => {
    if (isDir) {
      const base = toDCharacters(name);
      return unique(used, (suffix) => base.slice(0, PRIMARY_DIR_MAX - suffix.length) + suffix, '_');
    }
    const [rawBase, rawExt] = splitExtension(name);
    const base = toDCharacters(rawBase);
    const ext = rawExt === undefined ? '' : toDCharacters(rawExt).slice(0, PRIMARY_EXT_MAX);
    // Readers without Rock Ridge show "NAME." as "NAME", so the key ignores the dot
    // and a file cannot take a name a directory already shows.
    const key = unique(used, (suffix) => {
      const stem = base.slice(0, PRIMARY_FILE_MAX - ext.length - suffix.length) + suffix;
      return ext ? `${stem}.${ext}` : stem;
    }, '_');
    return key.includes('.') ? `${key};1` : `${key}.;1`;
  });
}

/** Joliet identifiers (as JS strings, encoded UTF-16BE by the caller), parallel to `children`. */
export function jolietIdentifiers(children: readonly ChildName[]): string[] {
  const used = new Set<string>();
  return children.map(({ name, isDir }) => {
    const whole = toJolietCharacters(name);
    const [base, ext] = isDir ? [whole, undefined] : splitExtension(whole);
    const keptExt = ext !== undefined && ext.length + 1 <= JOLIET_EXT_KEEP_MAX ? ext : undefined;
    const key = unique(used, (suffix) => {
      if (!suffix && whole.length <= JOLIET_MAX) return whole;
      if (keptExt !== undefined) return cutCodeUnits(base, JOLIET_MAX - keptExt.length - 1 - suffix.length) + suffix + '.' + keptExt;
      return cutCodeUnits(whole, JOLIET_MAX - suffix.length) + suffix;
    }, '~');
    return isDir ? key : `${key};1`;
  });
}

/** The volume identifier as the primary (32 d-characters) and Joliet (16 code units) descriptors carry it. */
export function volumeIdentifiers(volumeId: string): { primary: string; joliet: string } {
  return { primary: toDCharacters(volumeId).slice(0, 32), joliet: cutCodeUnits(toJolietCharacters(volumeId), 16) };
}

/**
 * ECMA-119 9.3 order: name part, then extension, each compared as if padded with
 * spaces; the version is ignored because every file here is version 1.
 */
export function compareIdentifiers(a: string, b: string): number {
  const [aName, aExt] = identifierParts(a);
  const [bName, bExt] = identifierParts(b);
  return comparePadded(aName, bName) || comparePadded(aExt, bExt);
}

function identifierParts(identifier: string): [string, string] {
  const semicolon = identifier.lastIndexOf(';');
  const bare = semicolon >= 0 ? identifier.slice(0, semicolon) : identifier;
  const dot = bare.lastIndexOf('.');
  return dot >= 0 ? [bare.slice(0, dot), bare.slice(dot + 1)] : [bare, ''];
}

function comparePadded(a: string, b: string): number {
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = i < a.length ? a.charCodeAt(i) : 0x20;
    const y = i < b.length ? b.charCodeAt(i) : 0x20;
    if (x !== y) return x - y;
  }
  return 0;
}

/**
 * The first candidate not yet used, trying no suffix, then `${mark}1`, `${mark}2`...
 * Candidates for different counters differ in their endings, so at most
 * used.size + 1 are tried.
 */
function unique(used: Set<string>, candidate: (suffix: string) => string, mark: string): string {
  for (let n = 0; ; n++) {
    const name = candidate(n === 0 ? '' : `${mark}${n}`);
    if (!used.has(name)) {
      used.add(name);
      return name;
    }
  }
}

/** [base, extension] split at the last dot; a leading dot belongs to the base. */
function splitExtension(name: string): [string, string | undefined] {
  const dot = name.lastIndexOf('.');
  return dot > 0 && dot < name.length - 1 ? [name.slice(0, dot), name.slice(dot + 1)] : [name, undefined];
}

function toDCharacters(name: string): string {
  let out = '';
  for (const ch of name.toUpperCase()) out += /^[A-Z0-9_]$/.test(ch) ? ch : '_';
  return out || '_';
}

// Joliet forbids * / : ; ? \ and control characters. Lone surrogates stand for raw
// non-UTF-8 bytes, which UTF-16 cannot carry.
function toJolietCharacters(name: string): string {
  let out = '';
  for (const ch of name) {
    const code = ch.codePointAt(0)!;
    const forbidden = code < 0x20 || (code >= 0xd800 && code <= 0xdfff) || '*/:;?\\'.includes(ch);
    out += forbidden ? '_' : ch;
  }
  return out;
}

/** At most `max` UTF-16 code units, never splitting a surrogate pair. */
function cutCodeUnits(s: string, max: number): string {
  if (s.length <= max) return s;
  const high = s.charCodeAt(max - 1);
  return s.slice(0, high >= 0xd800 && high <= 0xdbff ? max - 1 : max);
}
