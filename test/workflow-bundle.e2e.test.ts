import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { destroySiteClients } from '../src/storage/clients';
import { TASK_QUEUE, clients, get, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * A worker started as operators start it (no CLOVER_WORKFLOW_BUNDLE) bundles the workflow code in a
 * child process once, keeps it in its cache directory, and migrates with it; the next worker of the same
 * sources reuses that bundle instead of bundling again.
 */
describe('workflow bundle', () => {
  const c = clients();
  afterAll(() => destroySiteClients(c));

  it('the first worker builds the bundle once and migrates with it; the second reuses it', async () => {
    const id = uniqueId('bundle');
    const cacheDir = mkdtempSync(join(process.env.CLOVER_TEST_STACK_DIR!, 'cache-'));
    const own = { CLOVER_TASK_QUEUE: `${TASK_QUEUE}-${id}` };
    const logs = join(process.env.CLOVER_TEST_STACK_DIR!, 'logs');
    const bundles = () => readdirSync(cacheDir).filter((n) => n.startsWith('workflow-bundle-'));

    const migrate = async (worker: string) => {
      const userId = `${id}-${worker}`;
      await put(c, 'sg', `users/${userId}/photo`, `bytes of ${userId}`);
      const w = startWorkerProcess(`${id}-${worker}`, [], { ...own, CLOVER_WORKFLOW_BUNDLE: '', CLOVER_CACHE_DIR: cacheDir });
      try {
        const plan = writePlan(tmpPlanDir(), { migrationId: `${id}-${worker}`, sources: ['sg'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }] });
        const r = await runCli(['start', '--plan', plan, '--wait'], own);
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
        expect((await get(c, 'eu-ie', `users/${userId}/photo`))?.body.toString()).toBe(`bytes of ${userId}`);
      } finally {
        await stopProcess(w);
      }
      return readFileSync(join(logs, `${id}-${worker}.log`), 'utf8').split('\n').filter((l) => l.includes('bundling the workflow code')).length;
    };

    expect(await migrate('first')).toBe(1);
    expect(bundles()).toHaveLength(1);
    const bundle = join(cacheDir, bundles()[0]!);
    expect(readFileSync(bundle, 'utf8')).toContain('__TEMPORAL__');
    const built = statSync(bundle).mtimeMs;

    expect(await migrate('second')).toBe(0);
    expect(bundles()).toEqual([bundle.slice(cacheDir.length + 1)]);
    expect(statSync(bundle).mtimeMs).toBe(built);
  });
});
