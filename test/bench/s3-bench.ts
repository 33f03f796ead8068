// The S3 part of `npm run bench`: the photo set packed into one volume, uploaded to
// a real S3 server on 127.0.0.1 (OpenStack Swift with s3api, test/helpers/swift.ts)
// by Hearth's S3Tier (multipart from the spool file, 1 GiB parts) and by the SDK's
// own @aws-sdk/lib-storage Upload of the same file, in pairs (Hearth, SDK, Hearth,
// ...), with medians, requests per GB and peak RSS; then what a monthly check of the
// set and the 250 GB scenario cost.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { createS3Client } from '../../storage/tier/s3.ts';
import { startSwift, swiftUnavailable } from '../helpers/swift.ts';
import { seedScenario } from '../../node/cost.ts';
import { priceTable } from '../../node/prices.ts';
import { PAIRS, pairedRuns, pairSummary, run } from './measure.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const HEARTH = join(repo, 'cli', 'hearth.mjs');
const PUT_CHILD = join(repo, 'test', 'helpers', 's3-put-child.ts');
const SDK_CHILD = join(repo, 'test', 'bench', 's3-upload-sdk.ts');

/** Lines for the bench's report; the volume comes from a backup of the photo set to a folder. */
export async function s3Bench(photoDir: string, photoBytes: number, work: string): Promise<string[]> {
  const why = swiftUnavailable();
  if (why) {
    spawnSync('apt-get', ['install', '-y', '-qq', 'swift', 'swift-proxy', 'swift-object', 'swift-container', 'swift-account', 'memcached'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (swiftUnavailable()) return [`\ns3 upload: skipped (${why})`];
  }
  const home = join(work, 's3-home');
  const target = join(work, 's3-volume');
  rmSync(home, { recursive: true, force: true });
  rmSync(target, { recursive: true, force: true });
  const h = (args: string[]) => run(process.execPath, [HEARTH, '--home', home, ...args]);
  await h(['init']);
  await h(['source', 'add', photoDir]);
  mkdirSync(target);
  await h(['target', 'add', 'dir', target]);
  await h(['backup', '--pack']);
  const objects = join(target, 'hearth');
  const volume = readdirSync(objects, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const size = statSync(volume).size;

  const swift = await startSwift();
  const lines: string[] = [];
  try {
    await createS3Client({ endpoint: swift.endpoint, pathStyle: true, credentials: swift.credentials }).send(new CreateBucketCommand({ Bucket: 'bench' }));
    const env = { HEARTH_TEST_S3_KEY: swift.credentials.accessKeyId, HEARTH_TEST_S3_SECRET: swift.credentials.secretAccessKey, HEARTH_TEST_S3_SHA256: 'off' };
    let i = 0;
    let sdkRequests = 0;
    let hearthRequests = 0;
    const p = await pairedRuns('s3 upload vs SDK', PAIRS, 'cold', {
      run: async () => {
        const r = await run(process.execPath, [PUT_CHILD, swift.endpoint, 'bench', join(work, 's3-journal'), String(1024 ** 3), volume, `h${i}`], { env });
        hearthRequests = (JSON.parse(r.stdout) as { requests: number }).requests;
        return r;
      },
    }, {
      run: async () => {
        const r = await run(process.execPath, [SDK_CHILD, swift.endpoint, 'bench', `sdk${i++}`, volume], { env });
        sdkRequests = (JSON.parse(r.stdout) as { requests: number }).requests;
        return r;
      },
    });
    const gb = size / 1e9;
    const up = pairSummary(p, size / 1e6);
    lines.push(`\ns3 upload of the photo set's volume (${(gb).toFixed(2)} GB) to Swift on 127.0.0.1, ${up.pairs} pairs, cold cache:`);
    lines.push(`  hearth S3Tier ${up.hearthRate.toFixed(0)} MB/s, SDK lib-storage Upload ${up.referenceRate.toFixed(0)} MB/s: median ratio ${up.medianRatio.toFixed(2)}x (min ${up.minRatio.toFixed(2)}, max ${up.maxRatio.toFixed(2)}; target >= 0.9x); spreads ${up.hearthSpread.toFixed(2)} / ${up.referenceSpread.toFixed(2)}`);
    lines.push(`  requests per GB: hearth ${(hearthRequests / gb).toFixed(2)} (target <= 2), SDK ${(sdkRequests / gb).toFixed(1)}; peak RSS hearth ${up.hearthPeakRssMb.toFixed(0)} MB (target <= 200), SDK ${up.referencePeakRssMb.toFixed(0)} MB`);
    const volumes = Math.max(1, Math.ceil(photoBytes / (4 * 1024 ** 3)));
    const prices = priceTable();
    lines.push(`  monthly check of the set: ${Math.ceil(volumes / 1000)} LIST + ${volumes} HEAD = $${(Math.ceil(volumes / 1000) * prices.get('price.request.write') / 1000 + volumes * prices.get('price.request.read') / 1000).toPrecision(2)}, nothing retrieved`);
    const s = seedScenario(prices, 'DEEP_ARCHIVE', 4 * 1024 ** 3, 1024 ** 3);
    lines.push(`  250 GB scenario (hearth cost): upload $${s.upload.dollars.toFixed(4)}, $${s.storagePerMonth.toFixed(3)} a month, check $${s.monthlyCheck.dollars.toPrecision(2)} a month; seed per-file: $16.50, $0.90, $22`);
  } finally {
    await swift.stop();
    rmSync(home, { recursive: true, force: true });
    rmSync(target, { recursive: true, force: true });
    rmSync(join(work, 's3-journal'), { recursive: true, force: true });
  }
  return lines;
}
