// Signing in to Google for a Drive target (docs/drive-tier.md, "Sign-in"): the
// loopback flow desktop apps must use, with PKCE and a checked state, on 127.0.0.1
// at a random port; the token file kept in the home (mode 0600); and the OAuth
// client the Drive tier uses, which refreshes the access token and saves it back.
// Scope drive.file only: Hearth sees only the files it created.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { auth } from 'googleapis/build/src/apis/drive/index.js';
import { writeFileAtomicSync } from './atomic-file.ts';

export const DRIVE_FILE_SCOPE = 'https://www.googleapis.com/auth/drive.file';
const TOKEN_FILE = 'google-token.json';

export interface GoogleEndpoints {
  auth: string;
  token: string;
  /** The APIs' root URL (googleapis `rootUrl`). */
  api: string;
}

/**
 * Google's endpoints, or, for tests only, a local emulator's named by
 * HEARTH_TEST_GOOGLE (a loopback URL; anything else is refused).
 */
export function googleEndpoints(): GoogleEndpoints {
  const test = process.env.HEARTH_TEST_GOOGLE;
  if (test) {
    const url = new URL(test);
    if (url.protocol !== 'http:' || (url.hostname !== '127.0.0.1' && url.hostname !== '[::1]')) throw new Error(`HEARTH_TEST_GOOGLE must be a loopback http URL (tests only), got "${test}"`);
    const root = url.href.endsWith('/') ? url.href : `${url.href}/`;
    return { auth: `${root}o/oauth2/v2/auth`, token: `${root}token`, api: root };
  }
  return { auth: 'https://accounts.google.com/o/oauth2/v2/auth', token: 'https://oauth2.googleapis.com/token', api: 'https://www.googleapis.com/' };
}

export interface GoogleToken {
  version: 1;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  accessToken?: string;
  expiryDate?: number;
  scope: string;
  signedInAt: string;
}

/** A small JSON file, or undefined when it is absent or not JSON. */
export function readJsonFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

export function tokenFile(home: string): string {
  return join(home, TOKEN_FILE);
}

export const SIGN_IN_HINT = 'run "hearth auth google --client FILE" again with your OAuth client file (apps left in "Testing" get refresh tokens that last 7 days: publish yours, see the README)';

export function loadToken(home: string): GoogleToken {
  const token = readJsonFile(tokenFile(home)) as GoogleToken | undefined;
  if (token?.version !== 1 || typeof token.refreshToken !== 'string') throw new Error(`this home is not signed in to Google: run "hearth auth google --client FILE" first`);
  return token;
}

function saveToken(home: string, token: GoogleToken): void {
  writeFileAtomicSync(tokenFile(home), JSON.stringify(token, null, 2) + '\n', 0o600);
}

/** A desktop OAuth client file as Google Cloud console downloads it. */
export function readClientFile(file: string): { clientId: string; clientSecret: string } {
  let parsed: { installed?: { client_id?: string; client_secret?: string }; web?: unknown };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as typeof parsed;
  } catch (err) {
    throw new Error(`cannot read the OAuth client file ${file}: ${(err as Error).message}; download it from Google Cloud console, APIs & Services, Credentials`);
  }
  if (parsed.web) throw new Error(`${file} is a "Web application" client: create an OAuth client of type "Desktop app" and download that`);
  const c = parsed.installed;
  if (!c?.client_id || !c.client_secret) throw new Error(`${file} is not a desktop OAuth client file (no "installed" client_id and client_secret)`);
  return { clientId: c.client_id, clientSecret: c.client_secret };
}

export interface SignInOptions {
  home: string;
  clientFile: string;
  /** Told the URL the user opens (printed; a browser is opened by the CLI when it can). */
  onUrl: (url: string) => void;
  timeoutMs?: number;
}

/** The loopback flow; resolves once the token file is written. */
export async function signInGoogle(o: SignInOptions): Promise<{ tokenFile: string; scope: string }> {
  const client = readClientFile(o.clientFile);
  const endpoints = googleEndpoints();
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(16).toString('base64url');
  let settle!: { resolve: (code: string) => void; reject: (err: Error) => void };
  const codeArrived = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/') return void res.writeHead(404).end();
    const answer = (status: number, text: string): void => void res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
    if (url.searchParams.get('state') !== state) {
      answer(400, 'Hearth: this answer does not belong to the sign-in in progress (state mismatch). Start again.');
      return settle.reject(new Error('the sign-in answer had another state than Hearth sent (a stale or forged redirect): run "hearth auth google" again'));
    }
    const error = url.searchParams.get('error');
    if (error) {
      answer(400, `Hearth: Google answered ${error}. You can close this tab.`);
      return settle.reject(new Error(error === 'access_denied' ? 'the sign-in was declined in the browser: run "hearth auth google" again and allow access' : `Google refused the sign-in: ${error}`));
    }
    const code = url.searchParams.get('code');
    if (!code) return answer(400, 'Hearth: no code in this answer.');
    answer(200, 'Hearth is signed in to Google Drive. You can close this tab.');
    settle.resolve(code);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    const url = new URL(endpoints.auth);
    url.search = new URLSearchParams({
      client_id: client.clientId,
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: DRIVE_FILE_SCOPE,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      // A refresh token, every time (Google gives one only at the first consent otherwise).
      access_type: 'offline',
      prompt: 'consent',
    }).toString();
    o.onUrl(url.toString());
    const timeout = setTimeout(() => settle.reject(new Error('no answer from the browser within the time allowed: run "hearth auth google" again and finish the sign-in there')), o.timeoutMs ?? 5 * 60_000);
    let code: string;
    try {
      code = await codeArrived;
    } finally {
      clearTimeout(timeout);
    }
    const res = await fetch(endpoints.token, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: redirectUri, client_id: client.clientId, client_secret: client.clientSecret }),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; refresh_token?: string; expires_in?: number; scope?: string; error?: string; error_description?: string };
    if (!res.ok) throw new Error(`Google refused to exchange the sign-in code (${body.error ?? res.status}${body.error_description ? `: ${body.error_description}` : ''}); check the client file and run "hearth auth google" again`);
    if (!body.refresh_token) throw new Error('Google gave no refresh token: remove Hearth\'s access at myaccount.google.com/permissions and sign in again');
    const scope = body.scope ?? '';
    if (!scope.split(' ').includes(DRIVE_FILE_SCOPE)) throw new Error(`Google granted "${scope}" without ${DRIVE_FILE_SCOPE}: allow access to the files Hearth creates when asked`);
    saveToken(o.home, {
      version: 1,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
      refreshToken: body.refresh_token,
      accessToken: body.access_token,
      expiryDate: body.expires_in ? Date.now() + body.expires_in * 1000 : undefined,
      scope,
      signedInAt: new Date().toISOString(),
    });
    return { tokenFile: tokenFile(o.home), scope };
  } finally {
    server.close();
    server.closeAllConnections();
  }
}

export type GoogleOAuthClient = InstanceType<typeof auth.OAuth2>;

/** The OAuth client for API calls: refreshes the access token when it lapses and saves the new one. */
export function googleClient(home: string): GoogleOAuthClient {
  const token = loadToken(home);
  // forceRefreshOnFailure: a 401 refreshes once even when the saved expiry says the
  // token is fresh (revoked token, a clock off by an hour).
  const client = new auth.OAuth2({ clientId: token.clientId, clientSecret: token.clientSecret, endpoints: { oauth2TokenUrl: googleEndpoints().token }, forceRefreshOnFailure: true });
  client.setCredentials({ refresh_token: token.refreshToken, access_token: token.accessToken, expiry_date: token.expiryDate });
  client.on('tokens', (t) => {
    if (!t.access_token) return;
    try {
      saveToken(home, { ...loadToken(home), accessToken: t.access_token, expiryDate: t.expiry_date ?? undefined });
    } catch {
      // The file was replaced or removed meanwhile (a new sign-in): the fresh token lives in memory.
    }
  });
  return client;
}

/** Opens `url` in the desktop's browser when there is one; the URL is printed either way. */
export function openBrowser(url: string): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : process.env.DISPLAY || process.env.WAYLAND_DISPLAY ? 'xdg-open' : undefined;
  if (!command) return;
  const child = spawn(command, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => {});
  child.unref();
}
