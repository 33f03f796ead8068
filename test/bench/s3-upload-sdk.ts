// The reference for the S3 upload bench: @aws-sdk/lib-storage's Upload of one file,
// as a program that uses the SDK alone would send it (its default 5 MiB parts, four
// at once). Arguments: endpoint bucket key file
import { createReadStream, statSync } from 'node:fs';
import { Upload } from '@aws-sdk/lib-storage';
import { createS3Client } from '../../storage/tier/s3.ts';

const [endpoint, bucket, key, file] = process.argv.slice(2) as [string, string, string, string];
const client = createS3Client({ endpoint, pathStyle: true, credentials: { accessKeyId: process.env.HEARTH_TEST_S3_KEY!, secretAccessKey: process.env.HEARTH_TEST_S3_SECRET! } });
let requests = 0;
client.middlewareStack.add((next) => (args) => {
  requests++;
  return next(args);
}, { step: 'finalizeRequest' });
await new Upload({ client, params: { Bucket: bucket, Key: key, Body: createReadStream(file), ContentLength: statSync(file).size } }).done();
process.stdout.write(JSON.stringify({ requests }) + '\n');
