// The price table Hearth estimates cloud costs with: defaults for AWS S3 (us-east-1,
// checked December 2026; FIELD-NOTES "Cloud"), each one a setting (`price.*`) so a
// user on another region or provider can put in their own. Estimates only: the
// provider's bill is the truth.
import type { Config } from './config.ts';

export const PRICE_DEFAULTS = {
  /** Storage, $ per GB-month, by class. */
  'price.storage.DEEP_ARCHIVE': 0.00099,
  'price.storage.GLACIER': 0.0036,
  'price.storage.GLACIER_IR': 0.004,
  'price.storage.STANDARD_IA': 0.0125,
  'price.storage.STANDARD': 0.023,
  /** PUT, COPY, POST, LIST and each UploadPart, $ per 1,000. */
  'price.request.write': 0.05,
  /** GET and HEAD, $ per 1,000. */
  'price.request.read': 0.0004,
  /** Retrieval from Deep Archive, $ per GB. */
  'price.retrieval.Bulk': 0.0025,
  'price.retrieval.Standard': 0.02,
  'price.retrieval.Expedited': 0.03,
  /** Transfer out to the internet, $ per GB, after the free allowance. */
  'price.egress': 0.09,
  'price.egress.freeGB': 100,
  /** Minimum storage duration of the archive classes, days. */
  'price.minimumDays.DEEP_ARCHIVE': 180,
  'price.minimumDays.GLACIER': 90,
} as const;

export type PriceKey = keyof typeof PRICE_DEFAULTS;

/** Per object in an archive class: 8 KB billed at STANDARD and 32 KB at the archive rate. */
export const ARCHIVE_OVERHEAD = { standardBytes: 8 * 1024, archiveBytes: 32 * 1024 };

export interface PriceTable {
  get(key: PriceKey): number;
  storage(storageClass: string | undefined): number;
  minimumDays(storageClass: string | undefined): number;
}

export function priceTable(config?: Config): PriceTable {
  const get = (key: PriceKey): number => Number(config ? config.get(key) : PRICE_DEFAULTS[key]);
  return {
    get,
    storage: (c) => get(`price.storage.${c ?? 'STANDARD'}` as PriceKey) || get('price.storage.STANDARD'),
    minimumDays: (c) => (c === 'DEEP_ARCHIVE' || c === 'GLACIER' ? get(`price.minimumDays.${c}`) : 0),
  };
}
