// The reference for the Drive upload bench: every file of a folder sent the way a
// program using `googleapis` alone sends it, drive.files.create with a media body
// stream, asked for uploadType resumable and rootUrl on the call (uploads ignore
// the client's). googleapis sends such a call as one multipart/related request
// whatever uploadType says (googleapis-common's createAPIRequest sets it), so this
// is one streamed request per file, no checksums compared. Prints the upload's own wall and CPU time.
// Arguments: rootUrl clientId clientSecret refreshToken folderId dataDir
import { createReadStream, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { auth, drive as driveApi } from 'googleapis/build/src/apis/drive/index.js';
import { guardLoopback } from '../helpers/drive-emulator.ts';

guardLoopback();
const [rootUrl, clientId, clientSecret, refreshToken, folderId, dataDir] = process.argv.slice(2) as [string, string, string, string, string, string];
const oauth = new auth.OAuth2({ clientId, clientSecret, endpoints: { oauth2TokenUrl: `${rootUrl}token` } });
oauth.setCredentials({ refresh_token: refreshToken });
const drive = driveApi({ version: 'v3', auth: oauth, rootUrl });
const started = process.hrtime.bigint();
const cpu = process.cpuUsage();
for (const name of readdirSync(dataDir).sort()) {
  const mimeType = 'application/octet-stream';
  await drive.files.create({ uploadType: 'resumable', requestBody: { name, parents: [folderId], mimeType }, media: { mimeType, body: createReadStream(join(dataDir, name)) }, fields: 'id,size' }, { rootUrl });
}
const used = process.cpuUsage(cpu);
process.stdout.write(JSON.stringify({ seconds: Number(process.hrtime.bigint() - started) / 1e9, cpuSeconds: (used.user + used.system) / 1e6 }) + '\n');
