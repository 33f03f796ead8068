// Everything a command needs from a home when it works on the state directly
// (no daemon): identity, config, the catalog, the tiers, under the home's lock.
import { DirTier } from '../storage/tier/dir.ts';
import { RetryTier } from '../storage/tier/retry.ts';
import { CountingTier } from '../storage/tier/counting.ts';
import type { Tier } from '../storage/tier/tier.ts';
import { Catalog } from '../storage/catalog/catalog.ts';
import type { HomeKeys } from '../storage/keys.ts';
import { ObjectEncoderPool } from '../storage/objects/encode.ts';
import type { Config, TargetConfig } from './config.ts';
import { HomeLock, HomePaths, loadConfig, loadIdentity } from './home.ts';
import { peerIdFromSeed } from './peer-id.ts';
import { cloudCatalogOf, openS3Tier } from './s3-target.ts';
import { driveCatalogOf, openDriveTier } from './drive-target.ts';
import type { CloudCatalogLog } from './cloud-catalog.ts';
import type { S3Tier } from '../storage/tier/s3.ts';
import { RequestLedger } from './request-ledger.ts';
import { DeferredDeletes } from './deferred-deletes.ts';
import { join } from 'node:path';

export class HomeSession {
  readonly paths: HomePaths;
  readonly keys: HomeKeys;
  config: Config;
  readonly catalog: Catalog;
  readonly peerId: string;
  private readonly lock: HomeLock;
  private tierCache: CountingTier[] | undefined;
  private readonly s3Cache = new Map<string, S3Tier>();
  /** Requests sent to cloud targets, by month, for `hearth cost`. */
  readonly requests: RequestLedger;
  /** Deletes of young archived objects, put off until their minimum duration has passed. */
  readonly deferredDeletes: DeferredDeletes;
  private encoderPool: ObjectEncoderPool | undefined;

  private constructor(paths: HomePaths, keys: HomeKeys, config: Config, catalog: Catalog, peerId: string, lock: HomeLock) {
    this.paths = paths;
    this.keys = keys;
    this.config = config;
    this.catalog = catalog;
    this.peerId = peerId;
    this.lock = lock;
    this.requests = new RequestLedger(join(paths.dir, 'requests.json'));
    this.deferredDeletes = new DeferredDeletes(join(paths.dir, 's3-deferred-deletes.json'));
  }

  static async open(dir: string): Promise<HomeSession> {
    const paths = new HomePaths(dir);
    const keys = loadIdentity(paths);
    const lock = HomeLock.acquire(paths);
    try {
      const config = loadConfig(paths);
      const catalog = await Catalog.open(paths.catalog, keys);
      return new HomeSession(paths, keys, config, catalog, peerIdFromSeed(keys.ed25519Seed), lock);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /** Re-read config.json: `hearth source add` and friends edit it while a daemon runs. */
  reloadConfig(): void {
    this.config = loadConfig(this.paths);
    for (const t of this.tierCache ?? []) void t.close();
    this.tierCache = undefined;
    this.s3Cache.clear();
  }

  encoder(): ObjectEncoderPool {
    this.encoderPool ??= new ObjectEncoderPool();
    return this.encoderPool;
  }

  /** Tiers for the configured targets, cheapest to read first: directories, Drive (no egress fee), then S3. */
  tiers(): CountingTier[] {
    const cost = (t: TargetConfig): number => (t.kind === 'dir' ? 0 : t.kind === 'drive' ? 1 : 2);
    this.tierCache ??= [...this.config.data.targets].sort((a, b) => cost(a) - cost(b)).map((t) => new CountingTier(new RetryTier(this.openTarget(t))));
    return this.tierCache;
  }

  /** The S3 targets themselves, for what only they do (restore requests, HEAD state). */
  s3Tiers(): S3Tier[] {
    this.tiers();
    return [...this.s3Cache.values()];
  }

  /** Each S3 and Drive target's copy of the catalog log. */
  cloudCatalogs(): CloudCatalogLog[] {
    return this.config.data.targets.flatMap((t) =>
      t.kind === 's3' ? [cloudCatalogOf(t, this.paths, this.peerId, this.config, this.requests)] : t.kind === 'drive' ? [driveCatalogOf(t, this.paths, this.config)] : [],
    );
  }

  private openTarget(target: TargetConfig): Tier {
    if (target.kind === 's3') {
      const tier = openS3Tier(target, this.paths, this.peerId, this.config, { ledger: this.requests, deferred: this.deferredDeletes });
      this.s3Cache.set(target.name, tier);
      return tier;
    }
    if (target.kind === 'drive') return openDriveTier(target, this.paths, this.config);
    return new DirTier({ name: target.name, root: target.path, ownerId: this.peerId, ...(target.marker !== undefined ? { marker: target.marker } : {}) });
  }

  async close(): Promise<void> {
    for (const t of this.tierCache ?? []) await t.close();
    await this.encoderPool?.close();
    this.requests.flush();
    await this.catalog.close();
    this.lock.release();
  }
}
