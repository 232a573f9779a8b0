/**
 * The test run's watchdog: `node -r tsx/cjs watchdog.ts <stack dir> <jest pid>`, started detached by the
 * global setup. When the jest process dies without its global teardown (SIGKILL, a crash), it stops every
 * process in the run's registry and removes the stack's folder. A normal teardown simply kills it.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { stopRecorded } from '../support/processes';

const [dirArg, parentArg] = process.argv.slice(2);
if (!dirArg || !parentArg) throw new Error('usage: watchdog.ts <stack dir> <jest pid>');
const dir: string = dirArg;
const parent = Number(parentArg);

/** Our parent's pid, read live: node's process.ppid is fixed at start-up. */
function currentParent(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function parentAlive(): boolean {
  const ppid = currentParent();
  if (ppid !== undefined) return ppid === parent;
  try {
    process.kill(parent, 0);
    return true;
  } catch {
    return false;
  }
}

let cleaning = false;
const timer = setInterval(() => {
  if (cleaning) return;
  if (!existsSync(dir)) process.exit(0); // torn down normally
  if (parentAlive()) return;
  cleaning = true;
  clearInterval(timer);
  void stopRecorded(dir, { exceptPid: process.pid, graceMs: 5_000 }).finally(() => {
    if (!process.env.CLOVER_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
}, 250);
