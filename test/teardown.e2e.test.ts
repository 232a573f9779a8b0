import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers';
import { recordedProcesses, stillRunning, type RecordedProcess } from './support/processes';
import { waitUntil } from './support/wait';

/**
 * A test run never leaves a process behind. Each case runs a nested jest (test/fixtures/teardown) with its
 * own stack in its own temporary folder, watches the processes that run records while it runs, and then
 * checks from /proc that none of them is still alive.
 */
describe('test-run teardown', () => {
  const nested: ChildProcess[] = [];
  const folders: string[] = [];
  afterAll(() => {
    for (const j of nested) if (j.exitCode === null && j.signalCode === null) j.kill('SIGKILL');
    for (const f of folders) rmSync(f, { recursive: true, force: true });
  });

  /**
   * Starts `jest --config test/fixtures/teardown/jest.config.js` with an environment cleaned of this run's
   * stack (its own TMPDIR, so its stack folder is the one clover-test-* folder in there), and collects
   * every process its registry names, for as long as the registry exists.
   */
  const runNested = (env: NodeJS.ProcessEnv) => {
    const tmp = mkdtempSync(join(tmpdir(), 'clover-nested-'));
    folders.push(tmp);
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(CLOVER_|TEMPORAL_|JEST_)/.test(k) || /^CLOVER_(TOOLS_DIR|\w+_BIN)$/.test(k)));
    const child = spawn(process.execPath, [join(ROOT, 'node_modules', '.bin', 'jest'), '--config', join(ROOT, 'test', 'fixtures', 'teardown', 'jest.config.js')], {
      cwd: ROOT,
      env: { ...clean, TMPDIR: tmp, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    nested.push(child);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | NodeJS.Signals>((ok) => child.on('exit', (code, signal) => ok(code ?? signal!)));
    const seen = new Map<number, RecordedProcess>();
    const stackDir = () => readdirSync(tmp).filter((f) => f.startsWith('clover-test-')).map((f) => join(tmp, f))[0];
    const poll = setInterval(() => {
      const dir = stackDir();
      if (dir) for (const r of recordedProcesses(dir)) seen.set(r.pid, r);
    }, 50);
    void exited.then(() => clearInterval(poll));
    return { child, exited, seen, stackDir, output: () => output };
  };
  const names = (seen: Map<number, RecordedProcess>) => [...seen.values()].map((r) => r.name).sort();

  it('a test that exceeds its timeout: its worker and the whole stack are stopped, the folder removed', async () => {
    const run = runNested({ CLOVER_FIXTURE_TIMEOUT_MS: '4000' });
    const code = await run.exited;
    expect(run.output()).toMatch(/Exceeded timeout of 4000 ms/);
    expect(code).toBe(1);
    // The worker the fixture started and every service were recorded...
    expect(names(run.seen)).toEqual(expect.arrayContaining(['worker fixture-worker', 'temporal', 'site-sg', 'site-us', 'site-eu-ie', 'site-eu-no', 'toxiproxy', 'watchdog']));
    // ... and none of them runs any more.
    expect(stillRunning([...run.seen.values()])).toEqual([]);
    expect(run.stackDir()).toBeUndefined();
  }, 180_000);

  it('a global setup that fails after starting the stack stops what it started', async () => {
    // Keep the folder, so the registry can be read after the run.
    const run = runNested({ CLOVER_FIXTURE_FAIL_SETUP: '1', CLOVER_KEEP_TEST_DIR: '1' });
    const code = await run.exited;
    expect(run.output()).toMatch(/failing on purpose after starting the stack/);
    expect(code).not.toBe(0);
    const recorded = recordedProcesses(run.stackDir()!);
    expect(recorded.map((r) => r.name).sort()).toEqual(['site-eu-ie', 'site-eu-no', 'site-sg', 'site-us', 'temporal', 'toxiproxy', 'watchdog']);
    expect(stillRunning(recorded)).toEqual([]);
  }, 180_000);

  it('a jest process killed with SIGKILL: the watchdog stops its worker and stack and removes the folder', async () => {
    const run = runNested({ CLOVER_FIXTURE_TIMEOUT_MS: '600000' });
    await waitUntil('the fixture worker is recorded and running', () => [...run.seen.values()].find((r) => r.name === 'worker fixture-worker'), (w) => w !== undefined && stillRunning([w]).length === 1, { timeoutMs: 150_000 });
    const dir = run.stackDir()!;
    run.child.kill('SIGKILL');
    await run.exited;
    await waitUntil('every process the killed run recorded is gone', () => stillRunning([...run.seen.values()]), (pids) => pids.length === 0, { timeoutMs: 30_000 });
    expect(names(run.seen)).toEqual(expect.arrayContaining(['worker fixture-worker', 'temporal', 'site-sg', 'toxiproxy', 'watchdog']));
    await waitUntil(`the watchdog removes ${dir}`, () => !existsSync(dir), Boolean, { timeoutMs: 15_000 });
  }, 180_000);
});
