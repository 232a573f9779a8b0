import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, readStackState, startStack, stopStack } from '../../src/stack/local-stack';
import { ensureTools } from '../../src/stack/tools';
import { recordProcess } from './processes';

export interface PrivateStack {
  /** The stack's folder (its stack.json, the sites' data folders, logs). */
  dir: string;
  sitesFile: string;
  temporalAddress: string;
  /** Environment for a worker or CLI run against this stack. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/**
 * A whole local stack (Temporal dev server and four sites) for one test file alone, under the run's
 * folder: a test that kills or restarts a server does it here, never to the stack other files share.
 * Its processes are recorded in the run's registry, so teardown stops them whatever happens.
 */
export async function startPrivateStack(name: string): Promise<PrivateStack> {
  const runDir = process.env.CLOVER_TEST_STACK_DIR!;
  const dir = mkdtempSync(join(runDir, `${name}-`));
  let state;
  try {
    state = await startStack({ dir, tools: await ensureTools(), ports: await freePorts() });
  } finally {
    for (const s of readStackState(dir)?.services ?? []) recordProcess(runDir, { name: `${name} ${s.name}`, pid: s.pid, binary: s.binary });
  }
  return {
    dir,
    sitesFile: state.sitesFile,
    temporalAddress: state.temporalAddress,
    env: { CLOVER_SITES: state.sitesFile, TEMPORAL_ADDRESS: state.temporalAddress, CLOVER_TEMPORAL_UI_URL: state.uiUrl },
    stop: async () => void (await stopStack(dir)),
  };
}
