import type { ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import pLimit from 'p-limit';
import { manifestKey, progressPrefix } from '../src/domain/layout';
import { manifestGeneration, type Manifest } from '../src/domain/manifest';
import { destroySiteClients } from '../src/storage/clients';
import type { ProgressRecord } from '../src/storage/progress';
import { migrationWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { clients, get, listKeys, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

type Outcome = { key: string; outcome: string };

/**
 * Source deletion records its progress as it goes: a worker SIGKILLed in the middle of deleting a user's
 * sources leaves a record of every batch it issued, and the next worker finishes the job from it. The
 * first worker reaches `sg` through this file's proxy, which is held once some deletions happened (and
 * never released: connections of the killed worker are stuck in it); the second uses the plain sites.
 */
describe('disposal progress records', () => {
  const c = clients();
  const limit = pLimit(32);
  let connection: Connection;
  let client: Client;
  let proxy: ProxiedSites;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    client = new Client({ connection });
    proxy = await proxiedSites(['sg']);
  });
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    await proxy?.close().catch(() => undefined);
    await connection?.close();
    destroySiteClients(c);
  });

  it('a worker SIGKILLed mid-deletion: the next one finishes; every source gone once, the records and the manifest list all of them', async () => {
    const id = uniqueId('dispkill');
    const userId = `${id}-u`;
    const n = 300;
    const keys = Array.from({ length: n }, (_, i) => `users/${userId}/f-${String(i).padStart(4, '0')}`);
    await Promise.all(keys.map((key, i) => limit(() => put(c, 'sg', key, `object ${i} of ${userId}`))));
    const a = startWorkerProcess(`${id}-a`, [], { CLOVER_SITES: proxy.sitesFile });
    workers.push(a);
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }], verify: 'checksum',
      sourceDisposition: 'delete-after-verify', gracePeriod: '1h', concurrency: { users: 1, objectsPerUser: 2 },
    });
    expect((await runCli(['start', '--plan', plan, '--wait'])).code).toBe(0);
    const manifest = async () => JSON.parse((await get(c, 'eu-ie', manifestKey(id, userId)))!.body.toString()) as Manifest;

    // Each delete now takes a few tens of ms: the deletion is mid-way (past its first batch of 100) when held.
    await proxy.addToxic('sg', { type: 'latency', attributes: { latency: 20 } });
    expect((await runCli(['cutover', id])).code).toBe(0);
    await waitUntil('120 source objects are deleted', async () => n - (await listKeys(c, 'sg', `users/${userId}/`)).length, (d) => d >= 120);
    await proxy.hold('sg');
    const remaining = (await listKeys(c, 'sg', `users/${userId}/`)).length;
    expect(remaining).toBeGreaterThan(0);
    await stopProcess(a, 'SIGKILL');
    // The deletion acts on the generation its final pass committed (nothing changed: same entries).
    const m = await manifest();
    expect(m.generation).toBe(2);
    const recordsPrefix = progressPrefix(id, userId, 'dispose', manifestGeneration(m));
    const records = async () => Promise.all((await listKeys(c, 'eu-ie', recordsPrefix)).map(async (k) => JSON.parse((await get(c, 'eu-ie', k))!.body.toString()) as ProgressRecord<Outcome>));

    // What the killed worker left: its finished batches with their outcomes, the batch in flight as issued.
    const atKill = await records();
    expect(atKill.some((r) => r.state === 'done' && r.outcomes.length === 100)).toBe(true);
    expect(atKill.filter((r) => r.state === 'issuing')).toHaveLength(1);
    expect(m.sourceDisposition).toBeUndefined();

    workers.push(startWorkerProcess(`${id}-b`)); // reaches sg directly
    const r = (await client.workflow.getHandle(migrationWorkflowId(id)).result()) as MigrationResult;
    expect(r).toMatchObject({ phase: 'completed', failed: [] });
    expect(r.counters).toMatchObject({ sourceDeleted: n, sourceKeptChanged: 0 });

    expect(await listKeys(c, 'sg', `users/${userId}/`)).toEqual([]);
    expect((await listKeys(c, 'eu-ie', `users/${userId}/`)).sort()).toEqual(keys); // the EU copies stay
    const done = (await records()).filter((x) => x.state === 'done').flatMap((x) => x.outcomes);
    expect(done.map((o) => o.key).sort()).toEqual(keys); // every key recorded, each exactly once
    expect(done.every((o) => o.outcome === 'deleted')).toBe(true);
    const amended = await manifest();
    expect(amended.sourceDisposition).toMatchObject({ state: 'deleted', deleted: n, keptChanged: [], residueCount: 0 });
    expect(amended.generation).toBe(3);
    expect((await runCli(['verify', id])).code).toBe(0);
  }, 180_000);
});
