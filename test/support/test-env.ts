import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SA } from '../../src/workflows/definitions';

/**
 * A Temporal dev server of the describe block's own (the CLI binary the test stack built, Clover's search
 * attributes registered), started before its tests and torn down after them; the returned function
 * gives the environment inside a test.
 */
export function ownDevServer(): () => TestWorkflowEnvironment {
  let env: TestWorkflowEnvironment | undefined;
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: process.env.CLOVER_TEMPORAL_BIN! }, searchAttributes: Object.values(SA) },
    });
  });
  afterAll(async () => {
    await env?.teardown();
  });
  return () => {
    if (!env) throw new Error('the dev server is not started yet (call ownDevServer() in a describe block)');
    return env;
  };
}
