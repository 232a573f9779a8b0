import type { ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import pLimit from 'p-limit';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId, userWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { TASK_QUEUE, at, clients, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

/**
 * Two worker processes on one task queue share a migration; killing one leaves the other to finish.
 * The sources sit behind this file's proxies: a bandwidth limit keeps the migration long enough for
 * both workers to take users and leaves work for the survivor when one is killed.
 */
describe('scale-out', () => {
  // The limit stays on to the end: toxiproxy cannot drop a toxic while a killed worker's connections still have bytes in it.
  const c = clients();
  const workers: ChildProcess[] = [];
  let connection: Connection;
  let proxy: ProxiedSites;
  beforeAll(async () => {
    proxy = await proxiedSites(['sg', 'us']);
  });
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    destroySiteClients(c);
    await proxy?.close().catch(() => undefined);
    await connection?.close();
  });

  it('both workers complete users, and the survivor finishes after the other is killed', async () => {
    const migrationId = uniqueId('scale');
    const nUsers = 24;
    const users = Array.from({ length: nUsers }, (_, i) => `${migrationId}-${i}`);
    const limit = pLimit(32);
    await Promise.all(users.flatMap((u) => Array.from({ length: 40 }, (_, j) => limit(() => put(c, j % 2 ? 'sg' : 'us', `users/${u}/o-${j}`, Buffer.alloc(16 * 1024, j))))));
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    const client = new Client({ connection });

    const env = { CLOVER_SITES: proxy.sitesFile };
    workers.push(startWorkerProcess(`${migrationId}-a`, [], env), startWorkerProcess(`${migrationId}-b`, [], env));
    // Both poll before any work arrives, so both can get some (a worker starts its workflow and activity pollers together).
    const pollers = async () => {
      const r = await connection.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: TASK_QUEUE } });
      return new Set((r.pollers ?? []).map((p) => p.identity)).size;
    };
    await waitUntil('both workers poll the task queue', pollers, (n) => n >= 2);
    for (const site of ['sg', 'us']) await proxy.addToxic(site, { type: 'bandwidth', attributes: { rate: 256 } }); // KB/s

    const plan = writePlan(tmpPlanDir(), {
      migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'full', concurrency: { users: 4, objectsPerUser: 2 },
    });
    expect((await runCli(['start', '--plan', plan])).code).toBe(0);
    const handle = client.workflow.getHandle(migrationWorkflowId(migrationId));

    const identities = async () => {
      const byUser = new Map<string, string>();
      for (const u of users) {
        const h = await client.workflow.getHandle(userWorkflowId(migrationId, u)).fetchHistory().catch(() => undefined);
        // The worker that ran the user's first pass: a regular activity's completion names it; a local one's
        // marker is recorded by the workflow task that worker completed.
        const events = h?.events ?? [];
        const done = events.filter((e) => e.activityTaskCompletedEventAttributes).pop();
        const marker = events.findIndex((e) => e.markerRecordedEventAttributes);
        const byMarker = marker < 0 ? undefined : events.slice(0, marker).filter((e) => e.workflowTaskCompletedEventAttributes).pop();
        const identity = done?.activityTaskCompletedEventAttributes?.identity ?? byMarker?.workflowTaskCompletedEventAttributes?.identity;
        if (identity) byUser.set(u, identity);
      }
      return new Set(byUser.values()).size;
    };
    await waitUntil('both workers have completed first passes', identities, (n) => n === 2, { timeoutMs: 120_000, everyMs: 500 });

    // Work is left for the survivor: at 256 KB/s per source the whole migration needs about 30 s, and the
    // first users of both workers are done after a few.
    const unfinished = nUsers - (await handle.query<MigrationResult>('status')).usersDone;
    expect(unfinished).toBeGreaterThan(0);
    await stopProcess(at(workers, 0), 'SIGKILL');

    const r = (await handle.result()) as MigrationResult;
    expect(r).toMatchObject({ phase: 'completed', usersDone: nUsers, usersFailed: 0 });
    expect(r.counters).toMatchObject({ objects: nUsers * 40, verified: nUsers * 40 });
    expect((await runCli(['verify', migrationId])).code).toBe(0);
  });
});
