import type { ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import pLimit from 'p-limit';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId, userWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { TASK_QUEUE, clients, copyCheckpoint, get, listKeys, put, runCli, sha256, startCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

/**
 * The worker process is SIGKILLed in the middle of a user's copy; a new worker finishes the migration.
 * Every object verifies, and the PUTs counted over both attempts exceed the object count by at most the
 * objects that were in flight at the kill (a retried attempt skips whatever is already in the target).
 * The copy is held (the source behind a stalled proxy) from the moment the checkpoint shows progress
 * until the new worker runs, so the kill always lands mid-copy however fast copies get. Meanwhile
 * `clover start --wait` rides out the time without a worker, and `clover status` says there is none.
 */
describe('a worker killed mid-copy', () => {
  const c = clients();
  const workers: ChildProcess[] = [];
  let connection: Connection;
  let proxy: ProxiedSites;
  const proxies: ProxiedSites[] = [];
  beforeAll(async () => {
    proxy = await proxiedSites(['sg']);
  });
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    destroySiteClients(c);
    for (const p of [proxy, ...proxies]) await p?.close().catch(() => undefined);
    await connection?.close();
  });

  it('resumes on a new worker and finishes with every object verified; start --wait waits for the new worker', async () => {
    const migrationId = uniqueId('crash');
    const userId = `${migrationId}-u`;
    const n = 600;
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
    const workerEnv = { CLOVER_SITES: proxy.sitesFile };

    // Each source response 20 ms late: the first worker's copy takes seconds (2 objects in flight), so its
    // checkpoint is seen mid-copy however fast the machine (a one-page user's whole first pass is one
    // activity, and a copy under a second heartbeats nothing). It runs no local first pass, so the copy
    // is a regular activity with heartbeats (the case below kills one in a local first pass).
    await proxy.addToxic('sg', { type: 'latency', stream: 'downstream', attributes: { latency: 20 } });
    workers.push(startWorkerProcess(`${migrationId}-a`, ['--local-first-pass-mib', '0'], workerEnv));
    const start = startCli(['start', '--plan', plan, '--wait']);

    // Wait until the copy's checkpoint shows real progress, hold the source, then kill the worker.
    const seen = (await waitUntil('the copy checkpoint shows 50 objects sent', () => copyCheckpoint(client, migrationId, userId), (cp) => (cp?.transferred.objects ?? 0) >= 50))!.transferred.objects;
    await proxy.hold('sg');
    await stopProcess(workers[0]!, 'SIGKILL');

    // No worker now: `status` says so (exit 3), and `start --wait` says it waits instead of failing.
    const st = await runCli(['status', migrationId]);
    expect(st.code).toBe(3);
    expect(st.stderr).toMatch(/no worker answered the status query of migration .* start one with `clover worker`/);
    await waitUntil('start --wait says it waits for a worker', () => start.output().stdout, (out) => /waiting for a worker/.test(out));
    expect(start.output().code).toBe(-1); // still running

    // The new worker reaches the source directly: the held proxy keeps the dead worker's connections, and
    // toxiproxy cannot drop a hold while those still have bytes in it.
    workers.push(startWorkerProcess(`${migrationId}-b`));
    const waited = await start.done;
    expect(waited.code).toBe(0);
    expect(waited.stdout).toMatch(/a worker answered again; carrying on/);

    const result = (await client.workflow.getHandle(migrationWorkflowId(migrationId)).result()) as MigrationResult;
    expect(result).toMatchObject({ phase: 'completed', usersDone: 1, usersFailed: 0 });
    expect(result.counters).toMatchObject({ objects: n, verified: n, recopied: 0 });
    expect(result.counters.transferredObjects).toBeGreaterThanOrEqual(seen);
    expect(result.counters.transferredObjects).toBeLessThanOrEqual(n + objectsPerUser);

    // The copy activity really was retried (the crash hit it), and every byte arrived.
    const history = await client.workflow.getHandle(userWorkflowId(migrationId, userId)).fetchHistory();
    const attempts = (history.events ?? []).flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : []));
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    await Promise.all(Array.from({ length: n }, (_, i) => limit(async () => {
      const t = await get(c, 'eu-ie', `users/${userId}/obj-${String(i).padStart(4, '0')}`);
      expect(sha256(t!.body)).toBe(sha256(body(i)));
    })));
    expect((await runCli(['verify', migrationId])).code).toBe(0);
  });

  it('a worker killed in a small user\'s local first pass: the new worker redoes the pass, sending only what is missing', async () => {
    const migrationId = uniqueId('crash-local');
    const userId = `${migrationId}-u`;
    const n = 400;
    const body = (i: number) => Buffer.alloc(8 * 1024, (i * 7) % 251);
    const key = (i: number) => `users/${userId}/obj-${String(i).padStart(4, '0')}`;
    const limit = pLimit(32);
    await Promise.all(Array.from({ length: n }, (_, i) => limit(() => put(c, 'sg', key(i), body(i)))));
    const objectsPerUser = 2;
    const plan = writePlan(tmpPlanDir(), {
      migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }],
      verify: 'full', concurrency: { users: 1, objectsPerUser },
    });
    connection ??= await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    const client = new Client({ connection });

    // The user is one page of 3 MiB: the first pass is a local activity, which heartbeats nothing; the
    // copies themselves, landing in the target, show its progress. 20 ms per source response keeps it
    // going for seconds, and the hold stops it where it is before the kill. Its own proxy: the first case's
    // still holds the connections of the worker it killed.
    const own = await proxiedSites(['sg']);
    proxies.push(own);
    await own.addToxic('sg', { type: 'latency', stream: 'downstream', attributes: { latency: 20 } });
    // A task queue of its own: the first case's second worker still polls the file's queue.
    const queue = { CLOVER_TASK_QUEUE: `${TASK_QUEUE}-${migrationId}` };
    workers.push(startWorkerProcess(`${migrationId}-a`, [], { CLOVER_SITES: own.sitesFile, ...queue }));
    expect((await runCli(['start', '--plan', plan], queue)).code).toBe(0);
    const copied = async () => (await listKeys(c, 'eu-ie', `users/${userId}/`)).length;
    await waitUntil('50 of the user\'s objects are in the target', copied, (k) => k >= 50);
    await own.hold('sg');
    await stopProcess(workers.at(-1)!, 'SIGKILL');
    const before = await copied();
    expect(before).toBeLessThan(n);

    // The new worker takes the workflow task over when the dead one's times out, and runs the pass again.
    workers.push(startWorkerProcess(`${migrationId}-b`, [], queue));
    const result = (await client.workflow.getHandle(migrationWorkflowId(migrationId)).result()) as MigrationResult;
    expect(result).toMatchObject({ phase: 'completed', usersDone: 1, usersFailed: 0 });
    expect(result.counters).toMatchObject({ objects: n, verified: n, recopied: 0 });
    // What the dead worker had copied is found in the target, not sent again.
    expect(result.counters.transferredObjects).toBeLessThanOrEqual(n - before + objectsPerUser);

    // The pass really was local (a marker, no activity task), and every byte arrived.
    const history = await client.workflow.getHandle(userWorkflowId(migrationId, userId)).fetchHistory();
    const events = history.events ?? [];
    expect(events.filter((e) => e.activityTaskScheduledEventAttributes)).toHaveLength(0);
    expect(events.filter((e) => e.markerRecordedEventAttributes).length).toBeGreaterThanOrEqual(1);
    await Promise.all(Array.from({ length: n }, (_, i) => limit(async () => {
      const t = await get(c, 'eu-ie', key(i));
      expect(sha256(t!.body)).toBe(sha256(body(i)));
    })));
    expect((await runCli(['verify', migrationId], queue)).code).toBe(0);
  });
});
