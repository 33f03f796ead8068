// Google Drive targets in a home (docs/drive-tier.md): the folder `target add drive`
// finds or creates, the tier opened from a config entry with the home's sign-in,
// the journal of resumable uploads, and the folder's copy of the catalog log.
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { drive as driveApi, type drive_v3 } from 'googleapis/build/src/apis/drive/index.js';
import { DriveTier, FOLDER_MIME, type DriveUploadEntry, type DriveUploadJournal } from '../storage/tier/drive.ts';
import { RetryTier } from '../storage/tier/retry.ts';
import type { Config, DriveTargetConfig } from './config.ts';
import type { HomePaths } from './home.ts';
import { CloudCatalogLog } from './cloud-catalog.ts';
import { writeFileAtomicSync } from './atomic-file.ts';
import { googleClient, googleEndpoints, readJsonFile, SIGN_IN_HINT } from './google-auth.ts';

/** The default folder of a home: derived from its PeerId, so a recovered home finds it again by name. */
export function driveFolderName(peerId: string): string {
  return `Hearth ${createHash('sha256').update(`hearth drive home\0${peerId}`).digest('hex').slice(0, 12)}`;
}

function quoted(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Resumable sessions, one small file per object under drive-uploads/ (mode 0600: a session URI lets anyone upload). */
export class FileUploadJournal implements DriveUploadJournal {
  private readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  private file(name: string): string {
    return join(this.dir, `${name}.json`);
  }
  read(name: string): DriveUploadEntry | undefined {
    // A torn or foreign entry starts that upload over.
    const e = readJsonFile(this.file(name)) as DriveUploadEntry | undefined;
    return e?.version === 1 && typeof e.sessionUri === 'string' ? e : undefined;
  }
  write(name: string, entry: DriveUploadEntry): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomicSync(this.file(name), JSON.stringify(entry) + '\n', 0o600);
  }
  remove(name: string): void {
    rmSync(this.file(name), { force: true });
  }
}

export function driveClient(paths: HomePaths): { drive: drive_v3.Drive; auth: ReturnType<typeof googleClient>; rootUrl: string } {
  const auth = googleClient(paths.dir);
  const rootUrl = googleEndpoints().api;
  return { drive: driveApi({ version: 'v3', auth, rootUrl }), auth, rootUrl };
}

/** The folder named `name` under `parent` that this OAuth client created, made when missing. */
async function folderIn(drive: drive_v3.Drive, rootUrl: string, name: string, parent: string): Promise<string> {
  const q = `name = ${quoted(name)} and mimeType = '${FOLDER_MIME}' and ${quoted(parent)} in parents and trashed = false`;
  const found = await drive.files.list({ q, fields: 'files(id)', pageSize: 10, spaces: 'drive' }, { rootUrl });
  const id = found.data.files?.[0]?.id;
  if (id) return id;
  const created = await drive.files.create({ requestBody: { name, mimeType: FOLDER_MIME, parents: [parent] }, fields: 'id' }, { rootUrl });
  return created.data.id!;
}

/**
 * The target's folders, found again when they exist (a recovered home, or the same
 * Google account from another machine with the same OAuth client), made otherwise.
 * Errors come back through DriveTier's one-line messages.
 */
export async function resolveDriveTarget(paths: HomePaths, peerId: string, config: Config, name: string, folder: string | undefined): Promise<DriveTargetConfig> {
  const { drive, rootUrl } = driveClient(paths);
  const folderName = folder ?? driveFolderName(peerId);
  const probe = openDriveTier({ name, kind: 'drive', folder: folderName, folderId: 'root', catalogFolderId: 'root' }, paths, config);
  const folderId = await probe.guard('find or create the folder', () => folderIn(drive, rootUrl, folderName, 'root'));
  const catalogFolderId = await probe.guard('find or create the catalog folder', () => folderIn(drive, rootUrl, 'catalog', folderId));
  return { name, kind: 'drive', folder: folderName, folderId, catalogFolderId };
}

export function openDriveTier(target: DriveTargetConfig, paths: HomePaths, config: Config, catalog = false): DriveTier {
  const { drive, auth, rootUrl } = driveClient(paths);
  return new DriveTier({
    name: target.name,
    drive,
    auth,
    rootUrl,
    folderId: catalog ? target.catalogFolderId : target.folderId,
    journal: new FileUploadJournal(join(paths.dir, 'drive-uploads', catalog ? `${target.name}.catalog` : target.name)),
    // The catalog must always go up: it is what recovery needs, and small.
    maxUse: catalog ? undefined : config.size('drive.maxUse'),
    label: `drive target ${target.name} (folder ${target.folder})`,
    signInHint: SIGN_IN_HINT,
  });
}

export function driveCatalogOf(target: DriveTargetConfig, paths: HomePaths, config: Config): CloudCatalogLog {
  return new CloudCatalogLog(target.name, new RetryTier(openDriveTier(target, paths, config, true)), join(paths.dir, 'drive-uploads', `${target.name}.catalog.json`));
}

export function describeDriveTarget(target: DriveTargetConfig): string {
  return `Google Drive folder "${target.folder}"`;
}
