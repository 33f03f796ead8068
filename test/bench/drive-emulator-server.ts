// The Drive v3 emulator (test/helpers/drive-emulator.ts) as its own process for the
// Drive part of `npm run bench`, so its CPU and memory count in neither uploader's
// figures. It prints one JSON line: the root URL, an OAuth client, a refresh token
// and an empty folder. Each "count" line on stdin is answered with one JSON line of
// the requests received since the last one (by operation: token, list, about,
// upload-multipart, upload-start, upload-chunk, ...) and the bytes stored; the
// stored files are then dropped, so memory stays at one run's worth.
import { createInterface } from 'node:readline';
import { startDriveEmulator } from '../helpers/drive-emulator.ts';

const FOLDER_MIME = 'application/vnd.google-apps.folder';
const emu = await startDriveEmulator();
const clientId = 'bench-client';
const clientSecret = 'bench-secret';
emu.addClient(clientId, clientSecret);
const tokens = emu.issueTokens(clientId);
const made = await fetch(`${emu.url}drive/v3/files?fields=id`, {
  method: 'POST',
  headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'Hearth bench', mimeType: FOLDER_MIME }),
});
const folderId = ((await made.json()) as { id: string }).id;
emu.ledger.length = 0;
process.stdout.write(JSON.stringify({ url: emu.url, clientId, clientSecret, refreshToken: tokens.refresh_token, folderId }) + '\n');

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'count') continue;
  const requests: Record<string, number> = {};
  for (const e of emu.ledger) requests[e.op] = (requests[e.op] ?? 0) + 1;
  const stored = emu.files().filter((f) => f.mimeType !== FOLDER_MIME);
  process.stdout.write(JSON.stringify({ requests, files: stored.length, bytes: stored.reduce((n, f) => n + f.data.length, 0) }) + '\n');
  emu.ledger.length = 0;
  for (const f of stored) emu.remove(f.id);
}
await emu.stop();
