#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=1114112 MALLOC_TRIM_THRESHOLD_=4194304 node --max-semi-space-size=8
// An 8 MiB young generation (V8 semi-space): small enough to keep a worker's resident memory near its byte budget, large enough that a copy's short-lived request objects die young instead of filling the old generation; see README, "Worker memory".
// Fixed glibc malloc thresholds: an allocation above 1 MiB + 64 KiB (a multipart part) is mapped and unmapped on its own, and free memory above 4 MiB goes back to the system. Left to itself, glibc raises both after the first part is freed and then keeps up to twice a part's size free in each thread's arena: one 2 GiB object peaked at 272-307 MiB, against 263 with these (3 runs each). A threshold of exactly 1 MiB cost 1 MiB objects about 12% more CPU (each buffer mapped anew); see README, "Worker memory".
// Runs the TypeScript sources directly (tsx), so `npx clover` works right after `npm ci` with no build step.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs/api').register();
require('../scripts/cli.ts').main(process.argv);
