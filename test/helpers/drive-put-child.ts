// Child process for the kill -9 test: puts one file to a Drive folder through
// DriveTier (the real googleapis client, the emulator's URLs), so the test can
// SIGKILL a real resumable upload in the middle.
// Arguments: rootUrl clientId clientSecret refreshToken folderId journalDir chunkSize file name
import { createReadStream, statSync } from 'node:fs';
import { auth, drive as driveApi } from 'googleapis/build/src/apis/drive/index.js';
import { DriveTier } from '../../storage/tier/drive.ts';
import { FileUploadJournal } from '../../node/drive-target.ts';
import { guardLoopback } from './drive-emulator.ts';

guardLoopback();
const [rootUrl, clientId, clientSecret, refreshToken, folderId, journalDir, chunkSize, file, name] = process.argv.slice(2) as string[] as [string, string, string, string, string, string, string, string, string];
const oauth = new auth.OAuth2({ clientId, clientSecret, endpoints: { oauth2TokenUrl: `${rootUrl}token` } });
oauth.setCredentials({ refresh_token: refreshToken });
const tier = new DriveTier({ name: 'drive', drive: driveApi({ version: 'v3', auth: oauth, rootUrl }), auth: oauth, rootUrl, folderId, journal: new FileUploadJournal(journalDir), chunkSize: Number(chunkSize) });
await tier.put(name, { size: statSync(file).size, file, open: (offset) => createReadStream(file, { start: offset }) });
process.stdout.write('done\n');
