// Playing the browser for `hearth auth google`: start the command, wait for the URL
// it prints, and act on it (open the emulator's consent page and follow its
// redirect to Hearth's loopback listener, or send something else there).
import { hearthSpawn, type CliResult } from './cli.ts';

export async function signIn(home: string, clientFile: string, browse: (url: URL) => Promise<void>): Promise<CliResult> {
  const child = hearthSpawn(home, ['auth', 'google', '--client', clientFile, '--no-browser']);
  let stdout = '';
  let stderr = '';
  let urlSeen!: (url: URL) => void;
  const printed = new Promise<URL>((resolve) => (urlSeen = resolve));
  child.stdout.on('data', (d) => {
    stdout += d;
    const m = /^(http\S+)$/m.exec(stdout);
    if (m) urlSeen(new URL(m[1]!));
  });
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const url = await Promise.race([printed, exited.then(() => undefined)]);
  if (url) await browse(url);
  return { code: await exited, stdout, stderr };
}

/** The user approves on the consent page: its 302 leads to the loopback, which answers. */
export async function consent(url: URL): Promise<Response> {
  const page = await fetch(url, { redirect: 'manual' });
  if (page.status !== 302) throw new Error(`the consent page answered ${page.status}: ${await page.text()}`);
  return fetch(page.headers.get('location')!);
}

/** A whole sign-in that must succeed. */
export async function signedIn(home: string, clientFile: string): Promise<void> {
  const r = await signIn(home, clientFile, async (url) => void (await (await consent(url)).text()));
  if (r.code !== 0) throw new Error(`hearth auth google exited ${r.code}\n${r.stdout}\n${r.stderr}`);
}
