// Hearth's side of the Drive upload bench: every file of a folder put through
// DriveTier (the real googleapis client, the emulator's URLs, drive.maxUse as a
// home has it), one after the other as staging does. Prints the upload's own wall
// and CPU time, so Node's start and module loading count on neither side.
// Arguments: rootUrl clientId clientSecret refreshToken folderId journalDir dataDir
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { auth, drive as driveApi } from 'googleapis/build/src/apis/drive/index.js';
import { DriveTier } from '../../storage/tier/drive.ts';
import { FileUploadJournal } from '../../node/drive-target.ts';
import { guardLoopback } from '../helpers/drive-emulator.ts';

guardLoopback();
const [rootUrl, clientId, clientSecret, refreshToken, folderId, journalDir, dataDir] = process.argv.slice(2) as [string, string, string, string, string, string, string];
const oauth = new auth.OAuth2({ clientId, clientSecret, endpoints: { oauth2TokenUrl: `${rootUrl}token` } });
oauth.setCredentials({ refresh_token: refreshToken });
const tier = new DriveTier({ name: 'bench', drive: driveApi({ version: 'v3', auth: oauth, rootUrl }), auth: oauth, rootUrl, folderId, journal: new FileUploadJournal(journalDir), maxUse: 10e9 });
const started = process.hrtime.bigint();
const cpu = process.cpuUsage();
for (const name of readdirSync(dataDir).sort()) {
  const file = join(dataDir, name);
  await tier.put(name, { size: statSync(file).size, file, open: (offset) => createReadStream(file, { start: offset }) });
}
const used = process.cpuUsage(cpu);
process.stdout.write(JSON.stringify({ seconds: Number(process.hrtime.bigint() - started) / 1e9, cpuSeconds: (used.user + used.system) / 1e6 }) + '\n');
