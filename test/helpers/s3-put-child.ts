// Child process for the kill -9 test: puts one file to an S3 target through S3Tier,
// so the test can SIGKILL a real upload in the middle; also the Hearth side of the S3
// bench, which reads the requests it sent from its last line. Arguments: endpoint bucket journalDir partSize file name
import { statSync, createReadStream } from 'node:fs';
import { S3Tier, createS3Client } from '../../storage/tier/s3.ts';

const [endpoint, bucket, journalDir, partSize, file, name] = process.argv.slice(2) as [string, string, string, string, string, string];
const client = createS3Client({ endpoint, pathStyle: true, credentials: { accessKeyId: process.env.HEARTH_TEST_S3_KEY ?? 'test', secretAccessKey: process.env.HEARTH_TEST_S3_SECRET ?? 'test' } });
let requests = 0;
client.middlewareStack.add((next) => (args) => {
  requests++;
  return next(args);
}, { step: 'finalizeRequest' });
const tier = new S3Tier({
  name: 'cloud',
  bucket,
  prefix: 'hearth',
  homeId: 'home1',
  client,
  partSize: Number(partSize),
  journalDir,
  sha256Checksums: process.env.HEARTH_TEST_S3_SHA256 !== 'off',
});
const size = statSync(file).size;
await tier.put(name, { size, file, open: (offset) => createReadStream(file, { start: offset }) });
process.stdout.write(JSON.stringify({ requests }) + '\n');
