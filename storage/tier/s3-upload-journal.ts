// The local record of multipart uploads in flight to an S3 target, one small JSON
// file per object (docs/s3-tier.md). It is what lets a killed upload send only the
// parts that are missing: S3 keeps the parts of an unfinished upload, but some stores
// cannot list them (no ListParts) and none tells whether a part holds the bytes we
// would send now. Each part's SHA-256 is kept so a resumed upload re-sends a part
// whose bytes changed (an object encrypted again has other ciphertext under the
// same id) instead of completing a mix of two encryptions.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, fsyncSync, openSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export interface JournalPart {
  partNumber: number;
  size: number;
  etag: string;
  /** base64 SHA-256 of the part's bytes, as S3's x-amz-checksum-sha256 carries it. */
  sha256: string;
}

export interface UploadJournalEntry {
  version: 1;
  key: string;
  uploadId: string;
  size: number;
  partSize: number;
  storageClass?: string;
  parts: JournalPart[];
  startedAt: string;
}

const ENTRY_NAME = /^[A-Za-z0-9._-]{1,200}$/;

export class S3UploadJournal {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  private file(name: string): string {
    if (!ENTRY_NAME.test(name)) throw new Error(`object name ${JSON.stringify(name)} cannot name an upload journal entry`);
    return join(this.dir, `${name}.json`);
  }

  read(name: string): UploadJournalEntry | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const entry = JSON.parse(text) as UploadJournalEntry;
      return entry.version === 1 && typeof entry.uploadId === 'string' && Array.isArray(entry.parts) ? entry : undefined;
    } catch {
      // A torn entry (it is written atomically, so only by hand): start that upload over.
      return undefined;
    }
  }

  /** Written whole and renamed into place, so a kill leaves the old entry or the new one. */
  write(name: string, entry: UploadJournalEntry): void {
    mkdirSync(this.dir, { recursive: true });
    const path = this.file(name);
    const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
    writeFileSync(tmp, JSON.stringify(entry));
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }

  remove(name: string): void {
    rmSync(this.file(name), { force: true });
  }
}
