#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so `npx clover` works right after `npm ci` with no build step.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs/api').register();
require('../scripts/cli.ts').main(process.argv);
