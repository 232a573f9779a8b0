import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import pLimit from 'p-limit';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId, userWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { clients, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/** Two worker processes on one task queue share a migration; killing one leaves the other to finish. */
describe('scale-out', () => {
  const c = clients();
  const workers: ChildProcess[] = [];
  let connection: Connection;
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    destroySiteClients(c);
    await connection?.close();
  });

  it('both workers complete users, and the survivor finishes after the other is killed', async () => {
    const migrationId = uniqueId('scale');
    // Enough users that both workers get some and work remains when one is killed (copies are fast).
    const nUsers = 24;
    const users = Array.from({ length: nUsers }, (_, i) => `${migrationId}-${i}`);
    const limit = pLimit(32);
    await Promise.all(users.flatMap((u) => Array.from({ length: 40 }, (_, j) => limit(() => put(c, j % 2 ? 'sg' : 'us', `users/${u}/o-${j}`, Buffer.alloc(16 * 1024, j))))));
    workers.push(startWorkerProcess(`${migrationId}-a`), startWorkerProcess(`${migrationId}-b`));
    await sleep(3000); // both polling before work arrives
    const plan = writePlan(tmpPlanDir(), {
      migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'full', concurrency: { users: 4, objectsPerUser: 2 },
    });
    expect((await runCli(['start', '--plan', plan])).code).toBe(0);
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    const client = new Client({ connection });
    const handle = client.workflow.getHandle(migrationWorkflowId(migrationId));

    const identities = async () => {
      const byUser = new Map<string, string>();
      for (const u of users) {
        const h = await client.workflow.getHandle(userWorkflowId(migrationId, u)).fetchHistory().catch(() => undefined);
        const done = h?.events?.filter((e) => e.activityTaskCompletedEventAttributes).pop();
        if (done?.activityTaskCompletedEventAttributes?.identity) byUser.set(u, done.activityTaskCompletedEventAttributes.identity);
      }
      return byUser;
    };
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && new Set((await identities()).values()).size < 2) await sleep(200);
    const before = await identities();
    expect(new Set(before.values()).size).toBe(2);

    await stopProcess(workers[0], 'SIGKILL');
    const r = (await handle.result()) as MigrationResult;
    expect(r).toMatchObject({ phase: 'completed', usersDone: nUsers, usersFailed: 0 });
    expect(r.counters).toMatchObject({ objects: nUsers * 40, verified: nUsers * 40 });
    expect((await runCli(['verify', migrationId])).code).toBe(0);
  });
});
