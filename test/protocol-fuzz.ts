// Shared by the protocol fuzz tests: how many messages a run generates, and
// fast-check arbitraries that mutate valid messages (as the project's own clients
// send them) field by field, or make JSON of any shape.
import fc from 'fast-check';

/** Messages per protocol; HEARTH_FUZZ_RUNS raises it for a longer campaign. */
export const FUZZ_RUNS = Math.max(1, Number(process.env.HEARTH_FUZZ_RUNS ?? 100_000));
/** A fixed seed unless HEARTH_FUZZ_SEED asks for another, so a failure can be replayed. */
export const FUZZ_SEED = Number(process.env.HEARTH_FUZZ_SEED ?? 20261207);

/** Values that break naive number, string and list checks. */
export const awkward: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    -1, 0, 1, 2, 0.5, -0, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e308, -1e308, Number.MIN_VALUE,
    '', '0', '-1', 'x'.repeat(129), 'a'.repeat(5000), '__proto__', 'constructor', '\u0000', '\u001b[31m', '\ud800',
    null, true, false, [], {}, [null], { seq: 0 }, '../../etc/passwd', 'ab'.repeat(32), '0'.repeat(64),
  ),
  fc.integer(),
  fc.double(),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.stringMatching(/^[0-9a-f]{0,70}$/),
  fc.jsonValue({ maxDepth: 2 }),
);

type Mutation = { key: string; value?: unknown };

function applyMutations(seed: Record<string, unknown>, mutations: Mutation[]): Record<string, unknown> {
  const message: Record<string, unknown> = structuredClone(seed);
  for (const { key, value } of mutations) {
    if (value === undefined) delete message[key];
    else message[key] = value;
  }
  return message;
}

/**
 * What reaches a decoder after JSON.parse on the wire: valid seeds with a few
 * fields replaced, removed or added (most runs), dictionaries over the protocol's
 * field names, and any JSON value at all. Round-tripped through JSON, so only
 * what a peer can really send arrives.
 */
export function wireMessages(seeds: Record<string, unknown>[], fields: string[]): fc.Arbitrary<unknown> {
  const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...fields) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) });
  const mutation: fc.Arbitrary<Mutation> = fc.record({ key, value: fc.option(awkward, { nil: undefined, freq: 5 }) });
  return fc
    .oneof(
      { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 0, maxLength: 4 })).map(([seed, ms]) => applyMutations(seed, ms)) },
      { weight: 2, arbitrary: fc.dictionary(key, awkward, { maxKeys: 6 }) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    )
    .map((value) => {
      const json = JSON.stringify(value);
      return json === undefined ? null : (JSON.parse(json) as unknown);
    });
}

/** Bytes of `base` with a few bytes flipped, cut short, or extended. */
export function mutatedBytes(base: Buffer): fc.Arbitrary<Buffer> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.array(fc.tuple(fc.nat(Math.max(0, base.length - 1)), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }).map((flips) => {
        const out = Buffer.from(base);
        for (const [at, xor] of flips) if (out.length > 0) out[at] ^= xor;
        return out;
      }),
    },
    { weight: 1, arbitrary: fc.nat(base.length).map((length) => Buffer.from(base.subarray(0, length))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((extra) => Buffer.concat([base, extra])) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes)) },
  );
}

/**
 * Run `decode` on `runs` generated inputs: each must decode to a value `valid`
 * accepts or throw an `expected` error; anything else (a TypeError, a RangeError,
 * a valid-looking result that breaks the protocol's own rules) fails the run with
 * fast-check's shrunk counterexample.
 */
export function fuzzDecoder<T>(
  input: fc.Arbitrary<T>,
  decode: (input: T) => unknown,
  expected: ReadonlyArray<abstract new (...args: never[]) => Error>,
  valid: (decoded: unknown, input: T) => boolean,
  runs = FUZZ_RUNS,
): { decoded: number; refused: number } {
  const counts = { decoded: 0, refused: 0 };
  fc.assert(
    fc.property(input, (value) => {
      let decoded: unknown;
      try {
        decoded = decode(value);
      } catch (err) {
        if (expected.some((type) => err instanceof type)) {
          counts.refused++;
          return true;
        }
        throw err;
      }
      counts.decoded++;
      return valid(decoded, value);
    }),
    { numRuns: runs, seed: FUZZ_SEED },
  );
  return counts;
}
