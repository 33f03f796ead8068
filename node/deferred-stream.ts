import { PassThrough, type Readable } from 'node:stream';

/**
 * A stream available at once whose bytes come from an asynchronously opened one,
 * for consumers that open their inputs synchronously; an opening error arrives as
 * the stream's error.
 */
export function deferredReadable(open: () => Promise<Readable>): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  open().then(
    (inner) => {
      inner.on('error', (err) => out.destroy(err));
      inner.pipe(out);
    },
    (err: Error) => out.destroy(err),
  );
  return out;
}
