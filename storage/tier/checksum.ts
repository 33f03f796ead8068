// The checksum a cloud place keeps of an object, in one form for every kind of
// place, so the catalog can record it when the object is placed and the monthly
// check can compare it with what the place reports later, without reading the
// bytes. Forms (docs/catalog-format.md, `place`):
//   sha256:<base64>      a full-object SHA-256 (Drive's sha256Checksum, S3 PutObject on AWS)
//   sha256:<base64>-N    S3's composite SHA-256 of a multipart upload of N parts
//   md5:<hex>            a full-object MD5 (Drive's md5Checksum)
//   etag:<etag>          S3's ETag without its quotes, where that is all the store keeps
// Two checksums compare only in the same algorithm; the part after the colon is
// compared as the place reports it.

/** The algorithm of a checksum: the part before the colon. */
export function checksumAlgorithm(checksum: string): string {
  return checksum.slice(0, checksum.indexOf(':'));
}

/** A checksum in a form this version can compare; a later version's other algorithm is left alone. */
export function isKnownChecksum(value: unknown): value is string {
  return typeof value === 'string' && /^(sha256|md5|etag):\S+$/.test(value) && value.length <= 200;
}

/** S3's ETag header or listing element: `"<hex>"` or `"<hex>-N"`. */
export function etagChecksum(etag: string | undefined): string | undefined {
  const bare = etag?.replace(/^W\//, '').replace(/^"|"$/g, '');
  return bare ? `etag:${bare}` : undefined;
}

/** S3's x-amz-checksum-sha256: base64, with `-N` for a composite. */
export function s3Sha256Checksum(value: string | undefined): string | undefined {
  return value ? `sha256:${value}` : undefined;
}

/** Drive's hex sha256Checksum, or its md5Checksum. */
export function hexSha256Checksum(hex: string | undefined | null): string | undefined {
  return hex ? `sha256:${Buffer.from(hex, 'hex').toString('base64')}` : undefined;
}

export function hexMd5Checksum(hex: string | undefined | null): string | undefined {
  return hex ? `md5:${hex.toLowerCase()}` : undefined;
}

/** Of the checksums a place reports, the one in the recorded checksum's algorithm. */
export function reportedChecksum(recorded: string, reported: readonly string[] | undefined): string | undefined {
  const algorithm = checksumAlgorithm(recorded);
  return reported?.find((c) => checksumAlgorithm(c) === algorithm);
}
