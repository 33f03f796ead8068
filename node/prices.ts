// Cloud prices Hearth estimates costs with (AWS S3, us-east-1, checked December 2026;
// FIELD-NOTES "Cloud"). Estimates only: the provider's bill is the truth.

/** Retrieval from Glacier Deep Archive, $ per GB, by restore tier. */
export const RETRIEVAL_PER_GB = { Bulk: 0.0025, Standard: 0.02, Expedited: 0.03 } as const;
/** Data transfer out to the internet, $ per GB (the first 100 GB a month are free). */
export const EGRESS_PER_GB = 0.09;
/** A restored copy is billed at S3 Standard for the days it stays online. */
export const STANDARD_STORAGE_PER_GB_MONTH = 0.023;
