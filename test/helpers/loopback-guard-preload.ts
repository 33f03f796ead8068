// Loaded into the hearth processes a Drive test starts (NODE_OPTIONS=--import):
// the same loopback guard as in the test process, each refused host appended to the
// file HEARTH_TEST_GUARD_LOG names, which the test asserts stays empty.
import { appendFileSync } from 'node:fs';
import { guardLoopback } from './drive-emulator.ts';

const log = process.env.HEARTH_TEST_GUARD_LOG;
if (log) guardLoopback((host) => appendFileSync(log, `${process.pid} ${host}\n`));
