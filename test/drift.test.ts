import { createHash, randomBytes } from 'node:crypto';
import { appendFile, chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DRIFT_LIST_LIMIT, driftReport, hasDrift } from '../node/drift.ts';
import { Catalog, type CatalogPayload } from '../storage/catalog/catalog.ts';
import { deriveKeys } from '../storage/keys.ts';
import { DEFAULT_IGNORES } from '../storage/scanner/scanner.ts';

// Every file starts with this access time: any read of it moves the time forward
// (ext4 relatime updates an atime older than the mtime), so a drift report that
// opened a file would show.
const OLD_ATIME = new Date(Date.UTC(2001, 0, 1));
const MTIME = new Date(Date.UTC(2026, 0, 15, 12));
const RUN_END = Date.UTC(2026, 5, 1);

let tmp: string;
let catalog: Catalog;

beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'hearth-drift-'));
  catalog = await Catalog.open(join(tmp, 'catalog'), deriveKeys(randomBytes(32)));
});

afterEach(async () => {
  await catalog.close();
  await rm(tmp, { recursive: true, force: true });
});

async function makeFile(path: string, content: string | Buffer): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  await utimes(path, OLD_ATIME, MTIME);
}

/**
 * Record `root` in the catalog as a backup would, from metadata alone (the content
 * hash is a stand-in: the report never compares hashes), skipping .DS_Store.
 */
async function recordBackup(source: string, root: string, time: number): Promise<void> {
  const records: CatalogPayload[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      if (name === '.DS_Store') continue;
      const abs = join(dir, name);
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(abs);
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
      records.push({
        k: 'file', source, path, type, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, mode: st.mode,
        uid: st.uid, gid: st.gid, time,
        ...(type === 'file' ? { hash: createHash('sha256').update(path).digest('hex') } : {}),
        ...(type === 'symlink' ? { target: await readlink(abs) } : {}),
      });
      if (type === 'dir') await walk(abs, path);
    }
  };
  await walk(root, '');
  await catalog.append(records);
}

async function endRun(ok: boolean): Promise<void> {
  await catalog.append([{ k: 'run', run: 'r1', phase: 'end', time: RUN_END, ok }]);
}

async function atimesUnder(root: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const abs = join(dir, name);
      const st = await lstat(abs);
      if (st.isDirectory()) await walk(abs);
      else if (st.isFile()) out.set(abs, st.atimeMs);
    }
  };
  await walk(root);
  return out;
}

describe('drift report', () => {
  it('lists changed, missing and new files per source and counts both sides, without reading a file', async () => {
    const photos = join(tmp, 'photos');
    await makeFile(join(photos, 'keep.jpg'), 'k'.repeat(1000));
    await makeFile(join(photos, 'edit.jpg'), 'e'.repeat(2000));
    await makeFile(join(photos, 'grow.jpg'), 'g'.repeat(3000));
    await makeFile(join(photos, 'gone.jpg'), 'x'.repeat(400));
    await makeFile(join(photos, 'was-file'), 'w'.repeat(50));
    await makeFile(join(photos, 'sub', 'deep.jpg'), 'd'.repeat(5000));
    await makeFile(join(photos, 'sub', 'gone2.jpg'), 'y'.repeat(600));
    await makeFile(join(photos, 'locked.jpg'), 'l'.repeat(700));
    await chmod(join(photos, 'locked.jpg'), 0o000);
    await symlink('keep.jpg', join(photos, 'link'));
    await makeFile(join(photos, '.DS_Store'), 'junk');
    const docs = join(tmp, 'docs');
    await makeFile(join(docs, 'letter.txt'), 'dear');
    await recordBackup('photos', photos, RUN_END - 1000);
    await recordBackup('docs', docs, RUN_END - 1000);
    await endRun(true);
    const head = catalog.head();

    // What happened since the backup.
    await writeFile(join(photos, 'edit.jpg'), 'E'.repeat(2000));
    await appendFile(join(photos, 'grow.jpg'), 'more');
    await rm(join(photos, 'gone.jpg'));
    await rm(join(photos, 'sub', 'gone2.jpg'));
    await rm(join(photos, 'was-file'));
    await makeFile(join(photos, 'was-file', 'inner.jpg'), 'i'.repeat(10));
    await makeFile(join(photos, 'new.jpg'), 'n'.repeat(100));
    await makeFile(join(photos, 'album', 'new2.jpg'), 'm'.repeat(200));
    await writeFile(join(photos, '.DS_Store'), 'more junk');
    const control = join(tmp, 'control.txt');
    await makeFile(control, 'read me');
    const before = await atimesUnder(photos);

    const [photoDrift, docDrift] = await driftReport({
      catalog,
      sources: [{ name: 'photos', path: photos }, { name: 'docs', path: docs }],
      ignore: DEFAULT_IGNORES,
    });

    expect(photoDrift).toMatchObject({
      source: 'photos',
      changed: ['edit.jpg', 'grow.jpg', 'was-file'],
      missing: ['gone.jpg', 'sub/gone2.jpg'],
      new: ['album/new2.jpg', 'new.jpg', 'was-file/inner.jpg'],
      errors: [],
      counts: { unchanged: 4, changed: 3, missing: 2, new: 3, errors: 0 },
    });
    expect(photoDrift.unavailable).toBeUndefined();
    // Local: keep, edit, grow, deep, locked, link, new, new2, inner (symlink counted, not its bytes).
    expect(photoDrift.local).toEqual({ files: 9, bytes: 1000 + 2000 + 3004 + 5000 + 700 + 100 + 200 + 10, newestMtime: expect.any(Number) });
    expect(photoDrift.local!.newestMtime).toBe((await lstat(join(photos, 'grow.jpg'))).mtimeMs);
    // Backup: keep, edit, grow, gone, was-file, deep, gone2, locked, link.
    expect(photoDrift.backup).toEqual({ files: 9, bytes: 1000 + 2000 + 3000 + 400 + 50 + 5000 + 600 + 700, newestMtime: MTIME.getTime(), lastBackupAt: RUN_END });
    expect(docDrift).toMatchObject({
      source: 'docs',
      local: { files: 1, bytes: 4, newestMtime: MTIME.getTime() },
      backup: { files: 1, bytes: 4, newestMtime: MTIME.getTime(), lastBackupAt: RUN_END },
      counts: { unchanged: 1, changed: 0, missing: 0, new: 0, errors: 0 },
    });
    expect(hasDrift(photoDrift)).toBe(true);
    expect(hasDrift(docDrift)).toBe(false);

    // No file was opened: every access time is as it was; a read does move it here.
    expect(await atimesUnder(photos)).toEqual(before);
    await readFile(control);
    expect((await lstat(control)).atimeMs).toBeGreaterThan(OLD_ATIME.getTime());
    // And nothing was recorded.
    expect(catalog.head()).toEqual(head);
  });

  it('reports an unmounted or missing source folder as such, not as every file missing', async () => {
    const usb = join(tmp, 'usb');
    const nas = join(tmp, 'nas');
    for (const root of [usb, nas]) {
      await makeFile(join(root, 'a.jpg'), 'a'.repeat(10));
      await makeFile(join(root, 'b', 'c.jpg'), 'c'.repeat(20));
    }
    await recordBackup('usb', usb, RUN_END - 1000);
    await recordBackup('nas', nas, RUN_END - 1000);
    await endRun(true);
    await rm(usb, { recursive: true });
    // An unmounted share leaves its empty mount point behind.
    await rm(nas, { recursive: true });
    await mkdir(nas);

    const [usbDrift, nasDrift] = await driftReport({ catalog, sources: [{ name: 'usb', path: usb }, { name: 'nas', path: nas }], ignore: DEFAULT_IGNORES });
    for (const drift of [usbDrift, nasDrift]) {
      expect(drift.local).toBeNull();
      expect(drift.missing).toEqual([]);
      expect(drift.counts.missing).toBe(0);
      expect(drift.backup).toEqual({ files: 2, bytes: 30, newestMtime: MTIME.getTime(), lastBackupAt: RUN_END });
      expect(hasDrift(drift)).toBe(true);
    }
    expect(usbDrift.unavailable).toBe(`cannot read ${usb} (ENOENT): is the disk mounted?`);
    expect(nasDrift.unavailable).toBe(`${nas} is empty but its last backup had 2 files: is the disk mounted?`);
  });

  it('caps the path lists and keeps the counts whole', async () => {
    const root = join(tmp, 'many');
    await mkdir(root);
    await recordBackup('many', root, RUN_END - 1000);
    for (let i = 0; i < 7; i++) await makeFile(join(root, `f${i}.jpg`), 'z');
    const [drift] = await driftReport({ catalog, sources: [{ name: 'many', path: root }], ignore: [], listLimit: 3 });
    expect(drift!.new).toEqual(['f0.jpg', 'f1.jpg', 'f2.jpg']);
    expect(drift!.counts.new).toBe(7);
    expect(drift!.local!.files).toBe(7);
    expect(DRIFT_LIST_LIMIT).toBe(100);
  });

  it('dates the backup by its newest version when the last run had errors, and never-backed-up sources as null', async () => {
    const root = join(tmp, 'cam');
    await makeFile(join(root, 'a.jpg'), 'a');
    await recordBackup('cam', root, RUN_END - 5000);
    await endRun(false);
    const fresh = join(tmp, 'fresh');
    await makeFile(join(fresh, 'b.jpg'), 'b');
    const [cam, added] = await driftReport({ catalog, sources: [{ name: 'cam', path: root }, { name: 'fresh', path: fresh }], ignore: [] });
    expect(cam!.backup.lastBackupAt).toBe(RUN_END - 5000);
    expect(added!.backup).toEqual({ files: 0, bytes: 0, newestMtime: null, lastBackupAt: null });
    expect(added!.new).toEqual(['b.jpg']);
  });
});
