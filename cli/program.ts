// The hearth command's program: parse, call node/, print. No logic of its own.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { defaultHomeDir } from '../node/home.ts';
import * as ops from '../node/commands.ts';
import { createProgress } from '../node/progress.ts';
import { parseTime } from '../node/units.ts';
import { printCost, printBackup, printCheck, printDoctor, printVerify, printDrift, printLs, printObjects, printPeers, printRestore, printSettings, printSnapshots, printStatus, printTable } from './format.ts';
import { formatSize } from '../node/units.ts';
import type { SourceConfig, TargetConfig } from '../node/config.ts';
import { parseDisplayPath } from '../storage/paths.ts';
import { commandLine } from './argv.ts';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return `hearth ${pkg.version} (Node.js ${process.versions.node})`;
}

const program = new Command();
program
  .name('hearth')
  .description('Family backup node: encrypted backups to your other homes, ISO volumes, cold cloud copies')
  .version(packageVersion(), '-V, --version', 'print the version of hearth')
  .option('--home <dir>', 'state directory (env HEARTH_HOME; default ~/.local/share/hearth)')
  .showHelpAfterError(false)
  .exitOverride();

const home = (): string => {
  const dir = program.opts<{ home?: string }>().home;
  return dir ?? defaultHomeDir();
};

const printJson = (doc: unknown): void => {
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
};

function readPhrase(file: string | undefined): string {
  if (file) return readFileSync(file, 'utf8');
  if (process.stdin.isTTY) throw new Error('give the recovery phrase with --phrase-file FILE, or pipe it on stdin');
  return readFileSync(0, 'utf8');
}

program
  .command('init')
  .description('create a new home and its 24-word recovery phrase (or rebuild one with --recover)')
  .option('--recover', 'rebuild the identity from an existing recovery phrase')
  .option('--phrase-file <file>', 'read the recovery phrase from a file (default: stdin)')
  .option('--json', 'print one JSON document')
  .action(async (o: { recover?: boolean; phraseFile?: string; json?: boolean }) => {
    const result = await ops.initHome(home(), { phrase: o.recover ? readPhrase(o.phraseFile) : undefined });
    if (o.json) return printJson(result);
    console.log(`home:      ${result.home}`);
    console.log(`peer id:   ${result.peerId}`);
    console.log(`age key:   ${result.ageRecipient}`);
    if (result.phrase) {
      console.log('\nYour recovery phrase. Write it down and keep it safe: with it, and nothing else,');
      console.log('you can get every file back after losing this machine.\n');
      console.log(`  ${result.phrase}\n`);
    } else {
      console.log('identity recovered from the phrase. Next steps:');
      console.log('  1. hearth daemon             (another terminal, or the service: see the README)');
      console.log('  2. hearth join CODE          with a code from any relative (they run "hearth invite"): the catalog,');
      console.log('                               this home\'s name, sources, targets and settings, and the rest of the family come back');
      console.log('  3. hearth restore --to DIR   every file, from the targets and relatives that hold it');
    }
  });

const source = program.command('source').description('folders to back up');
source
  .command('add <path>')
  .option('--name <name>', 'short name (default: the folder name)')
  .action((path: string, o: { name?: string }) => {
    const s = ops.addSource(home(), path, o.name);
    console.log(`added source ${s.name}: ${s.path}`);
  });
source.command('ls').option('--json', 'print one JSON document').action((o: { json?: boolean }) => {
  const list = ops.listEntries(home(), 'sources') as SourceConfig[];
  if (o.json) printJson(list);
  else printTable(list.map((s) => [s.name, s.path]), ['NAME', 'PATH']);
});
source.command('rm <name>').action((name: string) => {
  ops.removeEntry(home(), 'sources', name);
  console.log(`removed source ${name} (its backed-up versions stay in the catalog)`);
});

const target = program.command('target').description('places backups go');
target
  .command('add <kind> [path]')
  .description('add a target; kind: dir PATH (a local folder, USB disk or NAS mount), s3 --bucket B (AWS or any S3-compatible store) or drive (Google Drive, after "hearth auth google")')
  .option('--name <name>', 'short name (default: the folder or bucket name, or "drive")')
  .option('--folder <name>', 'drive: the Drive folder (default: "Hearth" and an id derived from this home)')
  .option('--bucket <bucket>', 's3: the bucket')
  .option('--prefix <prefix>', 's3: key prefix inside the bucket', 'hearth')
  .option('--region <region>', 's3: the bucket\'s region (default: the SDK\'s, e.g. AWS_REGION)')
  .option('--endpoint <url>', 's3: an S3-compatible store\'s URL (Backblaze B2, Wasabi, R2, MinIO, Scaleway, Swift)')
  .option('--path-style', 's3: address the bucket in the path (most self-hosted stores)')
  .option('--storage-class <class>', 's3: DEEP_ARCHIVE (default on AWS), GLACIER, GLACIER_IR, STANDARD_IA, STANDARD or the provider\'s own; none by default with --endpoint')
  .option('--profile <name>', 's3: a profile of ~/.aws/credentials and ~/.aws/config')
  .action(async (kind: string, path: string | undefined, o: { name?: string; folder?: string; bucket?: string; prefix?: string; region?: string; endpoint?: string; pathStyle?: boolean; storageClass?: string; profile?: string }) => {
    if (kind === 's3') {
      if (!o.bucket) throw new Error('target add s3 needs --bucket BUCKET');
      if (path !== undefined) throw new Error(`target add s3 takes no path (got "${path}"): give --bucket, and --prefix for a folder inside it`);
      const t = await ops.addS3Target(home(), { name: o.name, bucket: o.bucket, prefix: o.prefix, region: o.region, endpoint: o.endpoint, pathStyle: o.pathStyle, storageClass: o.storageClass, profile: o.profile });
      console.log(`added target ${t.name}: ${t.where} (checked: the bucket answered, and a test object was written and deleted)`);
      const { pulled } = await ops.pullCatalog(home(), t.name);
      for (const p of pulled) if (p.records) console.log(`recovered this home's catalog from ${p.target}: ${p.records} records; restore with "hearth restore --to DIR"`);
      return;
    }
    if (kind === 'drive') {
      if (path !== undefined) throw new Error(`target add drive takes no path (got "${path}"): name the Drive folder with --folder`);
      const t = await ops.addDriveTarget(home(), { name: o.name, folder: o.folder });
      console.log(`added target ${t.name}: ${t.where}${t.free !== undefined ? ` (${formatSize(Math.max(0, t.free))} free in Drive)` : ''}`);
      const { pulled } = await ops.pullCatalog(home(), t.name);
      for (const p of pulled) if (p.records) console.log(`recovered this home's catalog from ${p.target}: ${p.records} records; restore with "hearth restore --to DIR"`);
      return;
    }
    if (kind !== 'dir') throw new Error(`unknown target kind "${kind}": use "dir PATH", "s3 --bucket BUCKET" or "drive"`);
    if (path === undefined) throw new Error('target add dir needs a PATH: the folder, USB disk or NAS mount to back up into');
    const t = ops.addDirTarget(home(), path, o.name);
    console.log(`added target ${t.name}: ${ops.targetWhere(t)}`);
  });
target.command('ls').option('--json', 'print one JSON document').action((o: { json?: boolean }) => {
  const list = ops.listEntries(home(), 'targets') as TargetConfig[];
  if (o.json) printJson(list);
  else printTable(list.map((t) => [t.name, t.kind, ops.targetWhere(t)]), ['NAME', 'KIND', 'WHERE']);
});
target.command('rm <name>').action(async (name: string) => {
  const { abortedUploads } = await ops.removeTarget(home(), name);
  console.log(`removed target ${name}${abortedUploads ? ` (aborted ${abortedUploads} unfinished uploads there, so the bucket does not bill their parts)` : ''}`);
});

const authCmd = program.command('auth').description('sign-ins to cloud accounts');
authCmd
  .command('google')
  .description('sign in to Google for Drive targets (scope drive.file: Hearth sees only the files it creates)')
  .requiredOption('--client <file>', 'your desktop OAuth client file (client_secret_....json from Google Cloud console)')
  .option('--no-browser', 'only print the URL to open')
  .action(async (o: { client: string; browser: boolean }) => {
    const r = await ops.authGoogle(home(), {
      client: o.client,
      onUrl: (url) => {
        console.log(`Open this URL in a browser to sign in to Google:\n${url}`);
        if (o.browser) ops.openBrowser(url);
      },
    });
    console.log(`signed in to Google (${r.scope}); token saved in ${r.tokenFile}; add Drive with "hearth target add drive"`);
  });

const config = program.command('config').description('settings (volume.size, ignore, ...)');
config.command('get <key>').action((key: string) => console.log(ops.getSetting(home(), key)));
config.command('ls').description('every setting: value, default and meaning').option('--json', 'print one JSON document').action((o: { json?: boolean }) => {
  const list = ops.listSettings(home());
  if (o.json) printJson(list);
  else printSettings(list);
});
// A value like "-1" is the value, not an option: it must reach the setting's check.
config.command('set <key> <value>').allowUnknownOption().helpOption(false).action((key: string, value: string) => {
  ops.setSetting(home(), key, value);
  console.log(`${key} = ${value}`);
});

program
  .command('backup')
  .description('scan sources, store new and changed files, pack full volumes')
  .option('--pack', 'pack everything staged into a volume now')
  .option('--json', 'print one JSON document; progress as JSON lines on stderr')
  .action(async (o: { pack?: boolean; json?: boolean }) => {
    const report = await ops.backup(home(), { pack: Boolean(o.pack), progress: createProgress({ json: Boolean(o.json) }) });
    if (o.json) printJson(report);
    else printBackup(report);
    if (!report.ok) process.exitCode = 3;
  });

program
  .command('status')
  .description('what this home backs up, where, and how much')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean }) => {
    const s = await ops.status(home());
    if (o.json) printJson(s);
    else printStatus(s);
  });

program
  .command('ls [path]')
  .description('list backed-up files (source/folder/...), as of now or --at TIME; a byte that is not UTF-8 is shown as \\xNN (and read back so)')
  .option('--at <time>', 'a date (2026-05-01), date-time, or age (3d)')
  .option('--json', 'print one JSON document')
  .action(async (path: string | undefined, o: { at?: string; json?: boolean }) => {
    const list = await ops.listFiles(home(), { path: path === undefined ? undefined : parseDisplayPath(path), at: o.at ? parseTime(o.at) : undefined });
    if (o.json) printJson(list);
    else printLs(list);
  });

program
  .command('snapshots')
  .description('the backup runs: when, how long, files, bytes, complete or not (each time works with --at)')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean }) => {
    const list = await ops.snapshots(home());
    if (o.json) printJson(list);
    else printSnapshots(list);
  });

program
  .command('objects')
  .description('encrypted objects (blobs and volumes) and where each is placed')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean }) => {
    const list = await ops.listObjects(home());
    if (o.json) printJson(list);
    else printObjects(list);
  });

program
  .command('restore [paths...]')
  .description('restore the whole library, a folder or a file (source/folder/...)')
  .requiredOption('--to <dir>', 'folder to restore into')
  .option('--at <time>', 'as of a date (2026-05-01), date-time, or age (3d)')
  .option('--overwrite', 'replace files that already exist in the destination')
  .option('--skip-existing', 'leave files that already match the backup (size and SHA-256): completes an interrupted restore')
  .option('--from <place>', 'read only from this target or relative (by name; peer:NAME if a target has the same name)')
  .option('--wait', 'when files must first come back from cold storage (S3 Glacier), wait for them instead of exiting with status 6')
  .option('--tier <tier>', 'cold retrieval: Bulk (default: within 48 h, cheapest) or Standard (within 12 h)', 'Bulk')
  .option('--days <n>', 'days a restored cold object stays online', '7')
  .option('--json', 'print one JSON document; progress as JSON lines on stderr')
  .action(async (paths: string[], o: { to: string; at?: string; overwrite?: boolean; skipExisting?: boolean; from?: string; wait?: boolean; tier: string; days: string; json?: boolean }) => {
    if (!['Bulk', 'Standard', 'Expedited'].includes(o.tier)) throw new Error(`--tier must be Bulk or Standard, got "${o.tier}"`);
    if (!/^\d+$/.test(o.days) || Number(o.days) < 1) throw new Error(`--days must be a whole number of days (1 or more), got "${o.days}"`);
    const report = await ops.restore(home(), {
      paths: paths.map(parseDisplayPath), to: o.to, at: o.at ? parseTime(o.at) : undefined, overwrite: Boolean(o.overwrite), skipExisting: Boolean(o.skipExisting), from: o.from,
      wait: Boolean(o.wait), tier: o.tier as 'Bulk' | 'Standard' | 'Expedited', days: Number(o.days), progress: createProgress({ json: Boolean(o.json) }),
    });
    if (o.json) printJson(report);
    else printRestore(report);
    if (report.cold?.waiting.length) process.exitCode = 6;
    else if (report.failed.length) {
      process.stderr.write(`hearth: restore finished with per-file errors: ${report.failed.length} not restored (listed above); fix the cause and run the same command again with --skip-existing\n`);
      process.exitCode = 3;
    }
  });

const key = program.command('key').description('keys derived from the recovery phrase');
key
  .command('export-age')
  .description('print the age identity (AGE-SECRET-KEY-1...) that decrypts every object')
  .action(() => console.log(ops.exportAgeKey(home())));

key
  .command('phrase')
  .description('print the 24-word recovery phrase again (from the key file)')
  .action(() => {
    const phrase = ops.recoveryPhrase(home());
    process.stderr.write('warning: these 24 words are this home: whoever sees them can read every backup and act as this home. Do not show them on a shared screen or store them in plain text online.\n');
    console.log(phrase);
  });

const catalog = program.command('catalog').description('the signed, encrypted log of backups');
catalog.command('verify').description('check every record: signature, hash chain, decryption').option('--json').action(async (o: { json?: boolean }) => {
  const r = await ops.verifyCatalog(home());
  if (o.json) printJson(r);
  else if (r.ok) console.log(`catalog ok: ${r.records} records verified`);
  if (!r.ok) {
    if (!o.json) console.error(`hearth: catalog damaged at record ${r.error!.seq}: ${r.error!.reason}`);
    process.exitCode = 4;
  }
});
catalog
  .command('pull [target]')
  .description('bring this home\'s catalog back from an s3 target\'s copy (recovery with the phrase and the cloud alone)')
  .option('--json', 'print one JSON document')
  .action(async (name: string | undefined, o: { json?: boolean }) => {
    const r = await ops.pullCatalog(home(), name);
    if (o.json) return printJson(r);
    for (const p of r.pulled) console.log(`${p.target}: ${p.records} records pulled, catalog at record ${p.head}`);
  });
catalog.command('rebuild').description('rebuild the local indexes from the log').action(async () => {
  const r = await ops.rebuildCatalog(home());
  console.log(`indexes rebuilt from ${r.records} records`);
});

program
  .command('daemon')
  .description('run this home: the family network, replication, and the control socket for other commands')
  .option('--listen <multiaddr...>', 'addresses to listen on (default /ip4/0.0.0.0/tcp/4001)')
  .option('--announce <multiaddr...>', 'addresses relatives should dial instead (a port forwarded on the router, a container host); invite codes carry these, and the home relays for its family (an anchor)')
  .option('--relay-only', 'only relay for the family (a small rented server): stores nothing, backs up nothing; needs --announce')
  .action(async (o: { listen?: string[]; announce?: string[]; relayOnly?: boolean }) => {
    const { runDaemon } = await import('../node/daemon.ts');
    await runDaemon(home(), { listen: o.listen, announce: o.announce, relayOnly: o.relayOnly === true });
  });

program
  .command('invite')
  .description('print a one-time code another home uses to join this family')
  .option('--name <name>', 'what this home will call the one who joins')
  .option('--quota <size>', 'space this home grants them (default host.quota)')
  .option('--expires <duration>', 'how long the code works (default 24h)')
  .option('--json', 'print one JSON document')
  .action(async (o: { name?: string; quota?: string; expires?: string; json?: boolean }) => {
    const { code } = await ops.invite(home(), o);
    if (o.json) printJson({ code });
    else {
      console.log('Give this code to the home that joins (it works once):');
      console.log(code);
    }
  });

program
  .command('join <code>')
  .description('join the family of the home that printed the code')
  .option('--name <name>', 'what this home will call the inviter (default: its own name)')
  .option('--quota <size>', 'space this home grants the inviter (default host.quota)')
  .option('--json', 'print one JSON document')
  .action(async (code: string, o: { name?: string; quota?: string; json?: boolean }) => {
    const r = await ops.join(home(), code, { name: o.name, quota: o.quota, progress: createProgress({ json: Boolean(o.json) }) });
    if (o.json) printJson(r);
    else {
      console.log(`${r.relinked ? 're-linked with' : 'joined'} ${r.name} (${r.peerId})`);
      if (r.clockWarning) console.log(`warning: ${r.clockWarning}: set this computer's clock right (timedatectl set-ntp true)`);
      const rec = r.recoveredCatalog as { records: number; settings: boolean; relatives: string[] } | undefined;
      if (rec) {
        console.log(`recovered this home's catalog: ${rec.records} records; restore with "hearth restore --to DIR"`);
        if (rec.settings) console.log('recovered this home\'s name, sources, targets and settings (see "hearth status", "hearth config ls")');
        if (rec.relatives.length) console.log(`recovered the family: ${rec.relatives.join(', ')} (re-linked as soon as each comes online)`);
      }
    }
  });

const peersCmd = program.command('peers').description('the relatives this home is paired with');
peersCmd.option('--json', 'print one JSON document').action(async (o: { json?: boolean }) => {
  const list = await ops.peers(home());
  if (o.json) printJson(list);
  else printPeers(list);
});
peersCmd.command('rm <name>').description('unpair a relative: its connections close and it is refused until invited again (its copies are re-placed elsewhere)').action(async (name: string) => {
  const r = await ops.removePeer(home(), name);
  console.log(`removed ${r.removed} (${r.peerId})`);
});

program
  .command('verify')
  .description('audit relatives now: each proves it still holds this home\'s objects')
  .option('--peer <name>', 'audit only this relative')
  .option('--json', 'print one JSON document')
  .action(async (o: { peer?: string; json?: boolean }) => {
    const reports = await ops.verify(home(), o.peer, createProgress({ json: Boolean(o.json) }));
    // 3: a relative answered and failed; 5: none failed, but one could not be reached.
    if (reports.some((r) => r.status === 'failed')) process.exitCode = 3;
    else if (reports.some((r) => r.status === 'unreachable')) process.exitCode = 5;
    if (o.json) return printJson(reports);
    printVerify(reports);
  });

program
  .command('scrub')
  .description('re-hash every object this home keeps for relatives; damage is reported to their owners')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean }) => {
    const r = (await ops.scrub(home(), createProgress({ json: Boolean(o.json) }))) as { objects: number; bytes: number; unsaved?: string; owners: Array<{ owner: string; damaged: Array<{ id: string; reason: string }> }> };
    const damaged = r.owners.flatMap((w) => w.damaged.map((d) => ({ ...d, owner: w.owner })));
    if (damaged.length) process.exitCode = 3;
    if (o.json) return printJson(r);
    console.log(`scrubbed ${r.objects} objects (${formatSize(r.bytes)}): ${damaged.length ? `${damaged.length} damaged` : 'all intact'}`);
    for (const d of damaged) console.log(`damaged: ${d.id} of ${d.owner} (${d.reason})`);
    if (r.unsaved) console.log(`warning: ${r.unsaved}`);
  });

program
  .command('check')
  .description('check this home\'s own targets: every object there, its size, and with --read-data its bytes; bad copies are repaired and alerted')
  .option('--read-data', 'read every object and compare its Merkle root with the catalog\'s')
  .option('--read-data-subset <percent>', 'read and hash only this share of the objects, like 5%')
  .option('--target <name>', 'check only this target')
  .option('--json', 'print one JSON document; progress as JSON lines on stderr')
  .action(async (o: { readData?: boolean; readDataSubset?: string; target?: string; json?: boolean }) => {
    if (o.readData && o.readDataSubset !== undefined) throw new Error('give --read-data or --read-data-subset, not both');
    const r = await ops.check(home(), { readData: o.readData ? '100%' : o.readDataSubset, target: o.target, progress: createProgress({ json: Boolean(o.json) }) });
    if (!r.ok) process.exitCode = 3;
    if (o.json) return printJson(r);
    printCheck(r);
  });

program
  .command('drift')
  .description('per source: local files against the latest backup, and what changed or vanished since')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean }) => {
    const r = await ops.drift(home());
    if (o.json) printJson(r);
    else printDrift(r);
  });

program
  .command('doctor')
  .description('check what this home needs to keep working: key file, daemon, free space, last backup, schedule, relatives and their clocks')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean }) => {
    const checks = await ops.doctor(home());
    if (checks.some((c) => !c.ok)) process.exitCode = 3;
    if (o.json) return printJson(checks);
    printDoctor(checks);
  });

const alert = program.command('alert').description('email and webhook alerts (alerts.* settings)');
alert.command('test').description('send a test message through every configured channel').option('--json').action(async (o: { json?: boolean }) => {
  const results = await ops.alertTest(home());
  if (o.json) printJson(results);
  else for (const r of results) console.log(`${r.channel}: ${r.ok ? 'sent' : 'FAILED'}: ${r.detail}`);
  if (results.some((r) => !r.ok)) process.exitCode = 3;
});

program
  .command('replicate')
  .description('send objects and the catalog to relatives now (the daemon also does this on its own)')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean }) => {
    const r = (await ops.replicate(home(), createProgress({ json: Boolean(o.json) }))) as { placed: unknown[]; retired: number; pending: number; failed: Array<{ peer: string; error: string }> };
    if (o.json) return printJson(r);
    console.log(`placed ${r.placed.length} objects at relatives, retired ${r.retired} blobs; ${r.pending} objects still below policy`);
    for (const f of r.failed) console.log(`failed: ${f.peer}: ${f.error}`);
  });

program
  .command('cost')
  .description('what each target holds and costs a month, this month\'s cloud requests, deletes put off, and the 250 GB scenario')
  .option('--delete-early', 'send the deletes put off now, paying the early-delete charge cost shows')
  .option('--json', 'print one JSON document')
  .action(async (o: { json?: boolean; deleteEarly?: boolean }) => {
    const r = await ops.cost(home(), { deleteEarly: o.deleteEarly === true });
    if (o.json) return printJson(r);
    if (o.deleteEarly) console.log(`sent ${r.deletedEarly} deletes put off`);
    printCost(r);
  });

program
  .command('quickstart')
  .description('set up a home on defaults (if needed) and run a backup: ~/Pictures to ~/hearth-backup')
  .option('--source <dir>', 'folder to back up (default $HEARTH_SOURCE or ~/Pictures)')
  .option('--target <dir>', 'backup folder (default $HEARTH_TARGET or ~/hearth-backup)')
  .action(async (o: { source?: string; target?: string }) => {
    const report = await ops.quickstart(home(), { source: o.source, target: o.target, progress: createProgress({ json: false }), say: (l) => console.log(l) });
    printBackup(report);
  });

try {
  await program.parseAsync(commandLine());
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    const message = (err as Error).message ?? String(err);
    process.stderr.write(`hearth: error: ${message.split('\n')[0]}\n`);
    if (process.env.HEARTH_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 1;
  }
}
