import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, freePorts, readStackState, startStack } from '../../src/stack/local-stack';
import { ensureTools } from '../../src/stack/tools';
import { recordProcess, stopRecorded } from '../support/processes';
import { waitUntil } from '../support/wait';
import { ensureWorkflowBundle } from '../../src/worker/workflow-bundle';

export interface SetUpOptions {
  /** For the teardown test: fail on purpose once this much has started. */
  failAfter?: 'stack';
}

/**
 * Starts a detached process that outlives us, logging to `<dir>/logs/<name>.log`, and records it under
 * `program` (what its /proc cmdline shows: the binary, or the script node runs).
 */
function spawnService(dir: string, name: string, program: string, command: string, args: string[]): number {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const fd = openSync(join(dir, 'logs', `${name}.log`), 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  recordProcess(dir, { name, pid: child.pid!, binary: program });
  return child.pid!;
}

/**
 * Starts the real services the tests need: a Temporal dev server and four versitygw sites, on free
 * ports in a temporary folder (so a running local stack is never disturbed), one toxiproxy server for
 * the tests that inject network faults (test/support/proxy.ts), and bundles the workflow code once for
 * every worker the tests start. global-teardown stops them.
 *
 * Every process started is recorded (test/support/processes.ts); a watchdog stops them all if jest dies
 * without its teardown, and a setup that fails part-way stops what it started before it rethrows.
 */
export async function setUp(opts: SetUpOptions = {}): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const tools = await ensureTools();
  const dir = mkdtempSync(join(tmpdir(), 'clover-test-'));
  const watchdog = join(__dirname, 'watchdog.ts');
  const watchdogPid = spawnService(dir, 'watchdog', watchdog, process.execPath, ['-r', 'tsx/cjs', watchdog, dir, String(process.pid)]);
  try {
    const ports = await freePorts();
    let state;
    try {
      state = await startStack({ dir, tools, ports });
    } finally {
      for (const s of readStackState(dir)?.services ?? []) recordProcess(dir, { name: s.name, pid: s.pid, binary: s.binary });
    }

    const toxiPort = await freePort();
    const toxiproxyUrl = `http://127.0.0.1:${toxiPort}`;
    const toxiPid = spawnService(dir, 'toxiproxy', tools.toxiproxy, tools.toxiproxy, ['-host', '127.0.0.1', '-port', String(toxiPort)]);
    await waitUntil(`toxiproxy (pid ${toxiPid}) answers on ${toxiproxyUrl}; see ${join(dir, 'logs', 'toxiproxy.log')}`, async () => {
      const res = await fetch(`${toxiproxyUrl}/version`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.ok;
    }, Boolean, { timeoutMs: 20_000 });
    if (opts.failAfter === 'stack') throw new Error('global setup failing on purpose after starting the stack (teardown test)');

    // The bundle a worker of these sources builds and reuses (src/worker/workflow-bundle.ts); tests' in-process workers take it too.
    const bundlePath = await ensureWorkflowBundle();
    Object.assign(process.env, {
      CLOVER_TEST_STACK_DIR: dir,
      CLOVER_SITES: state.sitesFile,
      // The stack's evidence signing key (made beside its sites file); workers the tests start inherit it.
      CLOVER_SIGNING_KEY_FILE: state.signingKeyFile ?? join(dir, 'signing-key.pem'),
      TEMPORAL_ADDRESS: state.temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      CLOVER_TEMPORAL_UI_URL: state.uiUrl,
      CLOVER_TEMPORAL_BIN: tools.temporal,
      CLOVER_TOXIPROXY_URL: toxiproxyUrl,
      CLOVER_WORKFLOW_BUNDLE: bundlePath,
      CLOVER_TEST_WATCHDOG_PID: String(watchdogPid),
    });
  } catch (err) {
    // jest runs no global teardown after a failed setup: stop what started here (the watchdog too).
    await stopRecorded(dir);
    if (!process.env.CLOVER_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export default async function globalSetup(): Promise<void> {
  await setUp();
}
