// `hearth auth google` end to end through the real CLI: the test plays the browser,
// opening the printed URL at the Drive emulator's consent endpoint and following its
// redirect to Hearth's loopback listener. PKCE, the state check, the drive.file
// scope, the token file's mode, refresh, and a lapsed refresh token that says what
// to run. The emulator's endpoints reach the CLI through HEARTH_TEST_GOOGLE only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearthAsync, type CliResult } from './helpers/cli.ts';
import { consent, signIn as signInWith } from './helpers/google-signin.ts';
import { DRIVE_FILE_SCOPE, guardChildren, guardLoopback, startDriveEmulator, type DriveEmulator } from './helpers/drive-emulator.ts';

let work: string;
let emu: DriveEmulator;
let guard: ReturnType<typeof guardLoopback>;
let childGuard: ReturnType<typeof guardChildren>;
let clientFile: string;

beforeAll(async () => {
  guard = guardLoopback();
  work = mkdtempSync(join(tmpdir(), 'hearth-gauth-'));
  emu = await startDriveEmulator();
  emu.addClient('desktop-1.apps.googleusercontent.com', 'GOCSPX-test');
  clientFile = join(work, 'client_secret.json');
  writeFileSync(clientFile, JSON.stringify({ installed: { client_id: 'desktop-1.apps.googleusercontent.com', client_secret: 'GOCSPX-test', project_id: 'hearth-test', redirect_uris: ['http://localhost'] } }));
  process.env.HEARTH_TEST_GOOGLE = emu.url;
  childGuard = guardChildren(work);
});

afterAll(async () => {
  delete process.env.HEARTH_TEST_GOOGLE;
  await emu.stop();
  guard.restore();
  const children = childGuard.violations();
  childGuard.restore();
  rmSync(work, { recursive: true, force: true });
  expect(guard.violations).toEqual([]);
  expect(children).toEqual([]);
});

async function ok(home: string, args: string[]): Promise<string> {
  const r = await hearthAsync(home, args);
  if (r.code !== 0) throw new Error(`hearth ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const signIn = (home: string, browse: (url: URL) => Promise<void>): Promise<CliResult> => signInWith(home, clientFile, browse);

describe('hearth auth google', () => {
  it('signs in through the loopback flow with PKCE and state, stores a 0600 token file, and Drive works with it', async () => {
    const home = join(work, 'home');
    await ok(home, ['init']);
    let loopback: Response | undefined;
    const r = await signIn(home, async (url) => {
      expect(url.origin + url.pathname).toBe(emu.authUrl);
      expect(url.searchParams.get('scope')).toBe(DRIVE_FILE_SCOPE);
      expect(url.searchParams.get('code_challenge_method')).toBe('S256');
      expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(url.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{16,}$/);
      expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      loopback = await consent(url);
    });
    expect(r.code, r.stderr).toBe(0);
    expect(loopback!.status).toBe(200);
    expect(await loopback!.text()).toMatch(/signed in/);
    expect(r.stdout).toMatch(/signed in to Google/);
    const tokenPath = join(home, 'google-token.json');
    expect(statSync(tokenPath).mode & 0o777).toBe(0o600);
    const token = JSON.parse(readFileSync(tokenPath, 'utf8')) as { refreshToken: string; accessToken: string; scope: string };
    expect(token.scope).toBe(DRIVE_FILE_SCOPE);
    expect(token.refreshToken).toMatch(/^1\/\//);

    // An hour later the access token has lapsed: the next command refreshes it and saves the new one.
    emu.clock.advance(2 * 3600_000);
    const tokensBefore = emu.count('token');
    expect(await ok(home, ['target', 'add', 'drive'])).toMatch(/added target drive: Google Drive folder "Hearth [0-9a-f]{12}" \(\d.* free in Drive\)/);
    expect(emu.count('token')).toBe(tokensBefore + 1);
    const refreshed = JSON.parse(readFileSync(tokenPath, 'utf8')) as { accessToken: string };
    expect(refreshed.accessToken).not.toBe(token.accessToken);
    expect(statSync(tokenPath).mode & 0o777).toBe(0o600);
    expect(emu.files().map((f) => f.name).sort()).toEqual([expect.stringMatching(/^Hearth [0-9a-f]{12}$/), 'catalog'].sort());

    // Apps left in "Testing" get refresh tokens for 7 days.
    emu.clock.advance(8 * 24 * 3600_000);
    const lapsed = await hearthAsync(home, ['target', 'add', 'drive', '--name', 'again', '--folder', 'Other']);
    expect(lapsed.code).toBe(1);
    expect(lapsed.stderr.trim().split('\n')).toHaveLength(1);
    expect(lapsed.stderr).toMatch(/the Google sign-in has expired or was revoked \(invalid_grant\): run "hearth auth google --client FILE" again/);
  });

  it('refuses an answer with another state, and a declined consent, in one line each; no token file', async () => {
    const home = join(work, 'forged');
    await ok(home, ['init']);
    const forged = await signIn(home, async (url) => {
      const answer = await fetch(`${url.searchParams.get('redirect_uri')}?code=4/evil&state=not-ours`);
      expect(answer.status).toBe(400);
    });
    expect(forged.code).toBe(1);
    expect(forged.stderr).toMatch(/another state than Hearth sent/);
    emu.consent = 'deny';
    const declined = await signIn(home, async (url) => void (await consent(url)));
    emu.consent = 'approve';
    expect(declined.code).toBe(1);
    expect(declined.stderr).toMatch(/the sign-in was declined in the browser/);
    expect(() => statSync(join(home, 'google-token.json'))).toThrow();
    const noSignIn = await hearthAsync(home, ['target', 'add', 'drive']);
    expect(noSignIn.stderr).toMatch(/not signed in to Google: run "hearth auth google --client FILE" first/);
    const web = join(work, 'web.json');
    writeFileSync(web, JSON.stringify({ web: { client_id: 'x', client_secret: 'y' } }));
    const wrongKind = await hearthAsync(home, ['auth', 'google', '--client', web]);
    expect(wrongKind.stderr).toMatch(/"Web application" client: create an OAuth client of type "Desktop app"/);
  });
});
