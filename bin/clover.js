#!/usr/bin/env -S node --max-semi-space-size=2
// A 2 MiB young generation (V8 semi-space) keeps a worker's resident memory near its byte budget; see README, "Worker memory".
// Runs the TypeScript sources directly (tsx), so `npx clover` works right after `npm ci` with no build step.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs/api').register();
require('../scripts/cli.ts').main(process.argv);
