import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The registry of every process a test run starts (stack services, toxiproxy, workers, CLI runs, the
 * watchdog): one JSON line each in `<CLOVER_TEST_STACK_DIR>/processes.jsonl`. Appends of one short line
 * are atomic, so jest's worker processes and the global setup can all write to it. Global teardown and
 * the watchdog (test/setup/watchdog.ts) stop whatever in it is still running and still ours.
 */
export interface RecordedProcess {
  name: string;
  pid: number;
  /** The program's path as it appears in /proc/<pid>/cmdline (the binary, or the script node runs). */
  binary: string;
  /** How to stop it: SIGTERM first (services), or SIGKILL at once (workers, CLI runs: their state is the test's). */
  stop?: 'SIGTERM' | 'SIGKILL';
}

export const registryFile = (dir: string) => join(dir, 'processes.jsonl');

export function recordProcess(dir: string, rec: RecordedProcess): void {
  appendFileSync(registryFile(dir), JSON.stringify(rec) + '\n');
}

/** The registry's processes plus the services in the stack's stack.json (a restarted Temporal has a new pid there). */
export function recordedProcesses(dir: string): RecordedProcess[] {
  const out = new Map<number, RecordedProcess>();
  if (existsSync(registryFile(dir))) {
    for (const line of readFileSync(registryFile(dir), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as RecordedProcess;
        out.set(r.pid, r);
      } catch {
        // a torn line from a killed writer: skip it
      }
    }
  }
  const stack = join(dir, 'stack.json');
  if (existsSync(stack)) {
    try {
      const s = JSON.parse(readFileSync(stack, 'utf8')) as { services?: { name: string; pid: number; binary: string }[] };
      for (const r of s.services ?? []) if (!out.has(r.pid)) out.set(r.pid, { name: r.name, pid: r.pid, binary: r.binary });
    } catch {
      // being rewritten: the registry has the services too
    }
  }
  return [...out.values()];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie (killed, not yet reaped by its parent) answers kill(0) but is gone.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc
  }
}

/** True when `pid` is alive and still runs the recorded program (a pid may have been reused). */
export function isOurs(rec: RecordedProcess): boolean {
  if (!alive(rec.pid)) return false;
  try {
    return readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0').includes(rec.binary);
  } catch {
    return true; // no /proc (macOS): trust the recorded pid
  }
}

/** Pids among `recs` that are alive and ours. */
export const stillRunning = (recs: RecordedProcess[]) => recs.filter(isOurs).map((r) => r.pid);

/**
 * Stops every recorded process that is still ours (except `exceptPid`): SIGKILL for those that asked for
 * it, SIGTERM for the rest, then SIGKILL for anything still there after `graceMs`. Returns what it stopped.
 */
export async function stopRecorded(dir: string, opts: { exceptPid?: number; graceMs?: number } = {}): Promise<RecordedProcess[]> {
  const recs = recordedProcesses(dir).filter((r) => r.pid !== opts.exceptPid && isOurs(r));
  const signal = (r: RecordedProcess, s: NodeJS.Signals) => {
    try {
      process.kill(r.pid, s);
    } catch {
      // gone meanwhile
    }
  };
  for (const r of recs) signal(r, r.stop ?? 'SIGTERM');
  const deadline = Date.now() + (opts.graceMs ?? 10_000);
  while (recs.some(isOurs) && Date.now() < deadline) await sleep(100);
  for (const r of recs.filter(isOurs)) signal(r, 'SIGKILL');
  while (recs.some(isOurs) && Date.now() < deadline + 5_000) await sleep(50);
  return recs;
}
