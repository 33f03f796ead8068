// The command line as the bytes the shell passed. Node decodes process.argv as UTF-8
// and turns every byte that is not UTF-8 into U+FFFD, so a file name such as
// "inner\xe9.txt" (Latin-1) could never be named. On Linux, /proc/self/cmdline still
// holds the bytes: each argument is read from there into Hearth's path string
// (storage/paths.ts, raw bytes as lone surrogates), wherever it matches what Node made
// of it; elsewhere, or if anything disagrees, process.argv as it is.
import { readFileSync } from 'node:fs';
import { decodeFsName } from '../storage/paths.ts';

export function commandLine(argv: string[] = process.argv): string[] {
  let raw: Buffer[];
  try {
    const cmdline = readFileSync('/proc/self/cmdline');
    raw = [];
    for (let at = 0; at < cmdline.length; ) {
      const end = cmdline.indexOf(0, at);
      raw.push(cmdline.subarray(at, end < 0 ? cmdline.length : end));
      at = end < 0 ? cmdline.length : end + 1;
    }
  } catch {
    return argv;
  }
  // argv[0] and argv[1] (node and the script) are resolved paths; Node's own options
  // sit between them in cmdline. The user's arguments are the last ones of both.
  const users = argv.length - 2;
  if (users <= 0 || raw.length < users) return argv;
  const tail = raw.slice(raw.length - users);
  return [argv[0]!, argv[1]!, ...tail.map((bytes, i) => (bytes.toString('utf8') === argv[i + 2] ? decodeFsName(bytes) : argv[i + 2]!))];
}
