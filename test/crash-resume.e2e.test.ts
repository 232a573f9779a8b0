import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import pLimit from 'p-limit';
import type { CopyCheckpoint } from '../src/activities/copy';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId, userWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { clients, get, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * The worker process is SIGKILLed in the middle of a user's copy; a new worker finishes the migration.
 * Every object verifies, and the PUTs counted over both attempts exceed the object count by at most the
 * objects that were in flight at the kill (a retried attempt skips whatever is already in the target).
 */
describe('a worker killed mid-copy', () => {
  const c = clients();
  const workers: ChildProcess[] = [];
  let connection: Connection;
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    destroySiteClients(c);
    await connection?.close();
  });

  it('resumes on a new worker and finishes with every object verified', async () => {
    const migrationId = uniqueId('crash');
    const userId = `${migrationId}-u`;
    // Enough objects that the copy outlasts the 2 s heartbeat throttle by far: the checkpoint must show
    // progress while the copy still runs.
    const n = 3000;
    const body = (i: number) => Buffer.alloc(8 * 1024, i % 251);
    const limit = pLimit(32);
    await Promise.all(Array.from({ length: n }, (_, i) => limit(() => put(c, 'sg', `users/${userId}/obj-${String(i).padStart(4, '0')}`, body(i)))));
    const objectsPerUser = 2;
    const plan = writePlan(tmpPlanDir(), {
      migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }],
      verify: 'full', concurrency: { users: 1, objectsPerUser },
    });
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    const client = new Client({ connection });

    workers.push(startWorkerProcess(`${migrationId}-a`));
    expect((await runCli(['start', '--plan', plan])).code).toBe(0);

    // Wait until the copy's checkpoint shows real progress, then kill the worker without warning.
    const child = client.workflow.getHandle(userWorkflowId(migrationId, userId));
    let seen = 0;
    for (let i = 0; i < 600 && seen < 100; i++) {
      await sleep(100);
      const d = await child.describe().catch(() => undefined);
      const pending = d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'copyUserObjects');
      const details = pending?.heartbeatDetails?.payloads?.[0];
      if (details) seen = defaultPayloadConverter.fromPayload<CopyCheckpoint>(details).transferred.objects;
    }
    expect(seen).toBeGreaterThanOrEqual(100);
    expect(seen).toBeLessThan(n);
    await stopProcess(workers[0], 'SIGKILL');

    workers.push(startWorkerProcess(`${migrationId}-b`));
    const result = (await client.workflow.getHandle(migrationWorkflowId(migrationId)).result()) as MigrationResult;
    expect(result).toMatchObject({ phase: 'completed', usersDone: 1, usersFailed: 0 });
    expect(result.counters).toMatchObject({ objects: n, verified: n, recopied: 0 });
    expect(result.counters.transferredObjects).toBeGreaterThanOrEqual(seen);
    expect(result.counters.transferredObjects).toBeLessThanOrEqual(n + objectsPerUser);

    // The copy activity really was retried (the crash hit it), and every byte arrived.
    const history = await child.fetchHistory();
    const attempts = (history.events ?? []).flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : []));
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    await Promise.all(Array.from({ length: n }, (_, i) => limit(async () => {
      const t = await get(c, 'eu-ie', `users/${userId}/obj-${String(i).padStart(4, '0')}`);
      expect(sha256(t!.body)).toBe(sha256(body(i)));
    })));
    expect((await runCli(['verify', migrationId])).code).toBe(0);
  });
});
