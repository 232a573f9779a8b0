import { rmSync } from 'node:fs';
import { stopStack } from '../../src/stack/local-stack';
import { stopRecorded } from '../support/processes';

/**
 * Stops every process the run recorded that is still running and still ours (stack services, toxiproxy,
 * worker processes a test left behind, e.g. after a timeout; the watchdog), then deletes the stack folder.
 */
export default async function globalTeardown(): Promise<void> {
  const dir = process.env.CLOVER_TEST_STACK_DIR;
  if (!dir) return;
  const watchdog = Number(process.env.CLOVER_TEST_WATCHDOG_PID);
  // Workers and CLI runs (SIGKILL) and the services (SIGTERM) at once; the watchdog last, once all is stopped.
  await stopRecorded(dir, { exceptPid: watchdog });
  await stopStack(dir, { wipe: true });
  await stopRecorded(dir);
  if (!process.env.CLOVER_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
}
