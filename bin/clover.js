#!/usr/bin/env -S node --max-semi-space-size=8
// An 8 MiB young generation (V8 semi-space): small enough to keep a worker's resident memory near its byte budget, large enough that a copy's short-lived request objects die young instead of filling the old generation; see README, "Worker memory".
// Runs the TypeScript sources directly (tsx), so `npx clover` works right after `npm ci` with no build step.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs/api').register();
require('../scripts/cli.ts').main(process.argv);
