// File names on Linux are bytes, not text. Hearth keeps every path as a JS string
// in which bytes that are not valid UTF-8 are carried as lone surrogates
// U+DC80..U+DCFF (Python's "surrogateescape"). Valid UTF-8 never decodes to a lone
// surrogate, so the mapping is lossless and the common case is the plain name.

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** Decode raw file-name bytes into Hearth's path string. */
export function decodeFsName(bytes: Uint8Array): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return decodeMixed(bytes);
  }
}

function decodeMixed(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const len = utf8SequenceLength(bytes, i);
    if (len > 0) {
      out += utf8Strict.decode(bytes.subarray(i, i + len));
      i += len;
    } else {
      out += String.fromCharCode(0xdc00 + bytes[i]!);
      i += 1;
    }
  }
  return out;
}

/** Length of a well-formed UTF-8 sequence at i, or 0 if the byte there starts none. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (len === 0 || i + len > b.length) return 0;
  try {
    utf8Strict.decode(b.subarray(i, i + len));
    return len;
  } catch {
    return 0;
  }
}

/** Encode a Hearth path string back into the exact file-name bytes. */
export function encodeFsName(name: string): Buffer {
  if (!/[\udc80-\udcff]/.test(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let run = '';
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    const isEscape = code >= 0xdc80 && code <= 0xdcff && !(i > 0 && isHighSurrogate(name.charCodeAt(i - 1)));
    if (isEscape) {
      if (run) parts.push(Buffer.from(run, 'utf8'));
      run = '';
      parts.push(Buffer.from([code - 0xdc00]));
    } else {
      run += name[i];
    }
  }
  if (run) parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** True when the name carries bytes that are not valid UTF-8. */
export function hasRawBytes(name: string): boolean {
  return /[\udc80-\udcff]/.test(name);
}

/**
 * A printable form for messages and listings: a byte that is not UTF-8 shown as
 * \xNN, and a backslash doubled, so the form is unambiguous and parseDisplayPath
 * reads it back.
 */
export function displayPath(name: string): string {
  return name.replace(/\\|[\udc80-\udcff]/g, (ch) => (ch === '\\' ? '\\\\' : `\\x${(ch.charCodeAt(0) - 0xdc00).toString(16).padStart(2, '0')}`));
}

/**
 * A path as the user typed it back from displayPath's form: \xNN is the byte NN and
 * \\ a backslash (any other backslash stays as it is); the bytes are then read as
 * decodeFsName reads a name, so "\xc3\xa9" is "é".
 */
export function parseDisplayPath(typed: string): string {
  if (!typed.includes('\\')) return typed;
  const parts: Buffer[] = [];
  let plain = 0;
  for (const m of typed.matchAll(/\\(\\|x[0-9a-fA-F]{2})/g)) {
    parts.push(encodeFsName(typed.slice(plain, m.index)));
    parts.push(m[1] === '\\' ? Buffer.from('\\') : Buffer.from([parseInt(m[1]!.slice(1), 16)]));
    plain = m.index + m[0].length;
  }
  parts.push(encodeFsName(typed.slice(plain)));
  return decodeFsName(Buffer.concat(parts));
}

/**
 * The byte key that orders paths the way a depth-first walk with byte-sorted
 * children visits them: the raw name bytes with each '/' replaced by 0x00. Names
 * never contain 0x00 or '/', so the key is unambiguous, and "a/b" sorts before
 * "a.b" exactly as the walk reaches it. The scanner and the catalog's path index
 * both use this order, so a scan is a merge-join against the catalog.
 */
export function pathSortKey(path: string): Buffer {
  const bytes = encodeFsName(path);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x2f) bytes[i] = 0;
  return bytes;
}

export function comparePaths(a: string, b: string): number {
  return Buffer.compare(pathSortKey(a), pathSortKey(b));
}
