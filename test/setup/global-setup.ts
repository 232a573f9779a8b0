import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DefaultLogger, bundleWorkflowCode } from '@temporalio/worker';
import { freePorts, startStack } from '../../src/stack/local-stack';
import { ensureTools } from '../../src/stack/tools';

/**
 * Starts the real services the tests need: a Temporal dev server and four versitygw sites, on free
 * ports in a temporary folder (so a running local stack is never disturbed), and bundles the workflow
 * code once for every worker the tests start. global-teardown stops them.
 */
export default async function globalSetup(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const tools = await ensureTools();
  const dir = mkdtempSync(join(tmpdir(), 'clover-test-'));
  const ports = await freePorts();
  const state = await startStack({ dir, tools, ports });
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('WARN') });
  const bundlePath = join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  Object.assign(process.env, {
    CLOVER_TEST_STACK_DIR: dir,
    CLOVER_SITES: state.sitesFile,
    TEMPORAL_ADDRESS: state.temporalAddress,
    TEMPORAL_NAMESPACE: 'default',
    CLOVER_TEMPORAL_UI_URL: state.uiUrl,
    CLOVER_TEMPORAL_BIN: tools.temporal,
    CLOVER_WORKFLOW_BUNDLE: bundlePath,
  });
}
