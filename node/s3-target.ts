// S3 targets in a home: how one is opened from its config entry, and the checks
// `hearth target add s3` makes before recording one (docs/s3-tier.md).
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { S3Tier, createS3Client } from '../storage/tier/s3.ts';
import type { Config, S3TargetConfig } from './config.ts';
import type { HomePaths } from './home.ts';
import { CloudCatalogLog } from './cloud-catalog.ts';
import { RetryTier } from '../storage/tier/retry.ts';
import type { RequestLedger } from './request-ledger.ts';
import type { DeferredDeletes } from './deferred-deletes.ts';
import { priceTable } from './prices.ts';

export interface S3TargetOptions {
  bucket: string;
  prefix?: string;
  region?: string;
  endpoint?: string;
  pathStyle?: boolean;
  storageClass?: string;
  profile?: string;
}

/** AWS's own classes; a provider's archive class (e.g. Scaleway's) is accepted too. */
const STORAGE_CLASS = /^[A-Z][A-Z0-9_]{1,40}$/;

/**
 * The bucket folder of one home: derived from its PeerId, so a home recovered from
 * its phrase finds its objects again, and hashed, so the bucket does not show which
 * libp2p node owns them.
 */
export function s3HomeId(peerId: string): string {
  return createHash('sha256').update(`hearth s3 home\0${peerId}`).digest('hex').slice(0, 24);
}

export function s3TargetConfig(name: string, o: S3TargetOptions): S3TargetConfig {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(o.bucket) && !(o.endpoint && /^[A-Za-z0-9._-]{1,255}$/.test(o.bucket))) {
    throw new Error(`"${o.bucket}" is not a bucket name: S3 bucket names are 3-63 lowercase letters, digits, dots and hyphens`);
  }
  if (o.endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(o.endpoint);
    } catch {
      throw new Error(`--endpoint "${o.endpoint}" is not a URL: give the store's address, like https://s3.example.com`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`--endpoint must be an http(s) URL, got "${o.endpoint}"`);
  }
  const storageClass = o.storageClass ?? (o.endpoint ? undefined : 'DEEP_ARCHIVE');
  if (storageClass !== undefined && !STORAGE_CLASS.test(storageClass)) {
    throw new Error(`--storage-class "${storageClass}" is not a storage class: use DEEP_ARCHIVE, GLACIER, GLACIER_IR, STANDARD_IA, STANDARD or your provider's class name`);
  }
  const target: S3TargetConfig = { name, kind: 's3', bucket: o.bucket, prefix: (o.prefix ?? 'hearth').replace(/^\/+|\/+$/g, '') };
  if (o.region) target.region = o.region;
  if (o.endpoint) target.endpoint = o.endpoint;
  if (o.pathStyle) target.pathStyle = true;
  if (storageClass) target.storageClass = storageClass;
  if (o.profile) target.profile = o.profile;
  return target;
}

/**
 * `folder`: a namespace beside the home's objects (the catalog's), none for the objects.
 * `ledger`: counts every request sent, for `hearth cost`.
 */
export function openS3Tier(target: S3TargetConfig, paths: HomePaths, peerId: string, config: Config, options: { folder?: string; ledger?: RequestLedger; deferred?: DeferredDeletes } = {}): S3Tier {
  const { folder, ledger, deferred } = options;
  const prices = priceTable(config);
  const client = createS3Client({ region: target.region, endpoint: target.endpoint, pathStyle: target.pathStyle, profile: target.profile });
  if (ledger) {
    client.middlewareStack.add(
      (next, context) => (args) => {
        ledger.count(target.name, String(context.commandName ?? 'Request').replace(/Command$/, ''));
        return next(args);
      },
      { step: 'finalizeRequest', name: 'hearthRequestLedger' },
    );
  }
  return new S3Tier({
    name: target.name,
    bucket: target.bucket,
    prefix: target.prefix,
    homeId: folder ? `${s3HomeId(peerId)}/${folder}` : s3HomeId(peerId),
    client,
    storageClass: target.storageClass,
    partSize: config.size('s3.partSize'),
    journalDir: join(paths.dir, 's3-uploads', folder ? `${target.name}.${folder}` : target.name),
    label: `s3 target ${target.name}`,
    sha256Checksums: target.endpoint === undefined,
    minimumDuration: deferred ? { days: (c) => prices.minimumDays(c), defer: (state, at) => deferred.defer(target.name, state, at) } : undefined,
  });
}

/**
 * The target's copy of the catalog log: its own folder beside the objects, in a class
 * readable at once (an archived catalog would take 48 hours to recover from).
 */
export function cloudCatalogOf(target: S3TargetConfig, paths: HomePaths, peerId: string, config: Config, ledger?: RequestLedger): CloudCatalogLog {
  const storageClass = target.storageClass === 'STANDARD_IA' || target.storageClass === 'STANDARD' ? target.storageClass : undefined;
  const tier = openS3Tier({ ...target, storageClass }, paths, peerId, config, { folder: 'catalog', ledger });
  return new CloudCatalogLog(target.name, new RetryTier(tier), join(paths.dir, 's3-uploads', `${target.name}.catalog.json`));
}

export function describeTarget(target: S3TargetConfig): string {
  return `s3://${target.bucket}/${target.prefix}${target.endpoint ? ` at ${target.endpoint}` : ''}${target.storageClass ? ` (${target.storageClass})` : ''}`;
}
