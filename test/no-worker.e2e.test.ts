import { Client, Connection } from '@temporalio/client';
import { migrationWorkflowId } from '../src/workflows/definitions';
import { destroySiteClients } from '../src/storage/clients';
import { clients, exists, put, runCli, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * Operator commands with no worker on the migration's task queue (this file never starts one): each
 * says so in one line within a bounded time and exits 3, instead of waiting forever.
 */
describe('operator commands with no worker running', () => {
  const c = clients();
  let connection: Connection;
  let client: Client;
  const started: string[] = [];

  const startWithoutWorker = async (tag: string): Promise<string> => {
    const id = uniqueId(tag);
    await put(c, 'sg', `users/${id}-u/a.txt`, 'waits for a worker');
    const plan = writePlan(tmpPlanDir(), { migrationId: id, sources: ['sg'], routing: { default: 'eu-ie' }, users: [{ userId: `${id}-u`, country: 'DE' }] });
    const r = await runCli(['start', '--plan', plan]);
    expect(r.code).toBe(0);
    started.push(id);
    return id;
  };
  const oneLine = (stderr: string) => {
    expect(stderr.endsWith('\n')).toBe(true);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  };

  beforeAll(async () => {
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    client = new Client({ connection });
  });
  afterAll(async () => {
    for (const id of started) await client.workflow.getHandle(migrationWorkflowId(id)).terminate('test over').catch(() => undefined);
    await connection.close();
    destroySiteClients(c);
  });

  it('clover cancel and clover pause give up after 15 s with one line naming `clover worker` (exit 3)', async () => {
    const [toCancel, toPause] = await Promise.all([startWithoutWorker('nw-cancel'), startWithoutWorker('nw-pause')]);
    const t0 = Date.now();
    const [cancel, pause] = await Promise.all([runCli(['cancel', toCancel]), runCli(['pause', toPause])]);
    const took = Date.now() - t0;

    expect(cancel.stdout).toBe('');
    expect(cancel.stderr).toMatch(new RegExp(`^clover: no worker answered the cancellation of migration ${toCancel} within 15s; the cancellation is recorded and the migration stops when a worker runs; start one with \`clover worker\` on task queue clover-test-`));
    oneLine(cancel.stderr);
    expect(cancel.code).toBe(3);

    expect(pause.stdout).toBe('');
    expect(pause.stderr).toMatch(new RegExp(`^clover: no worker answered the pause request of migration ${toPause} within 15s; the server may still hand the pause to the next worker that starts .*; start one with \`clover worker\` on task queue clover-test-`));
    oneLine(pause.stderr);
    expect(pause.code).toBe(3);

    expect(took).toBeGreaterThanOrEqual(15_000);
    expect(took).toBeLessThan(40_000);
    // The cancellation itself reached the server: a worker that starts later finishes it.
    const history = await client.workflow.getHandle(migrationWorkflowId(toCancel)).fetchHistory();
    expect(history.events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes)).toBe(true);
  });

  it('clover rollback of a running migration gives up after 15 s with one line (exit 3) and touches nothing', async () => {
    const id = await startWithoutWorker('nw-rollback');
    const r = await runCli(['rollback', id]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^clover: no worker answered the cancellation \\(a rollback's first step\\) of migration ${id} within 15s; the cancellation is recorded; run the rollback again once a worker runs; start one with \`clover worker\``));
    oneLine(r.stderr);
    expect(r.code).toBe(3);
    expect(await exists(c, 'sg', `users/${id}-u/a.txt`)).toBe(true);
  });

  it('clover verify of a migration that was started (its user list is stored) but has no manifest yet fails (exit 1)', async () => {
    const id = await startWithoutWorker('nw-verify');
    const r = await runCli(['verify', id]);
    expect(r.stdout).toContain('no committed manifest found for this migration in any site');
    expect(r.code).toBe(1);
  });

  it('clover verify of an id no site knows says so in one line (exit 2)', async () => {
    const id = uniqueId('never-started');
    const r = await runCli(['verify', id]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^clover: no migration with id "${id}" in any site of the sites file \\(no manifest and no user list _clover/migrations/${id}/users.jsonl\\)`));
    oneLine(r.stderr);
    expect(r.code).toBe(2);
  });
});
