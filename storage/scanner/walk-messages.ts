// Messages of the walk (walk.ts) to the scanner, sent across threads when the walk
// has one (walk-worker.ts). A batch is a few typed arrays and string lists, cheap to
// clone, rather than an object per entry.

/** What an entry of a batch is. */
export const EntryCode = {
  file: 0,
  dir: 1,
  symlink: 2,
  /** lstat found no file, folder or symlink (it became a socket or FIFO): not backed up. */
  gone: 3,
  /** lstat or reading the folder failed; nothing below it is known this time. */
  unreadable: 4,
  /** The symlink's target could not be read. */
  linkUnreadable: 5,
} as const;
export type EntryCode = (typeof EntryCode)[keyof typeof EntryCode];

/** Numbers per entry: code, size, mtimeMs, ctimeMs, ino, dev, mode, uid, gid, nlink. */
export const FIELDS = 10;
export const BATCH_ENTRIES = 512;

export interface WalkStart {
  /** Absolute, resolved. */
  root: string;
  ignore: readonly string[];
}

export interface WalkError {
  doing: string;
  code: string | undefined;
  message: string;
}

export type WalkMessage =
  | {
      kind: 'batch';
      numbers: Float64Array;
      /** Each entry's pathSortKey, concatenated; entry i ends at keyEnds[i]. */
      keys: Uint8Array;
      keyEnds: Uint32Array;
      paths: string[];
      /** A symlink's target, or what failed. */
      extras: Array<string | WalkError | null>;
    }
  | { kind: 'fatal'; message: string }
  | { kind: 'done' };
