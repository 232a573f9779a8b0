import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import pLimit from 'p-limit';
import { manifestGenerationKey, manifestKey } from '../src/domain/layout';
import type { Manifest } from '../src/domain/manifest';
import { destroySiteClients } from '../src/storage/clients';
import { SA, migrationWorkflowId, rollbackWorkflowId, userWorkflowId, type MigrationResult, type RollbackResult } from '../src/workflows/definitions';
import { at, clients, exists, get, hasWorkInFlight, listKeys, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

/**
 * Operator control on the real stack: pause, cancel, source deletion, rollback; each checked in storage.
 * The worker reaches the sources through this file's own proxies: a test that needs a copy or a restore
 * to be still running when an operator command lands slows or holds a source there, never racing the
 * copy's speed. A toxic is never removed once connections in it were cut (a kill, a cancel, a pause):
 * toxiproxy cannot drop a toxic while a dead connection still has bytes in it, so it stays until the
 * test ends and its proxies go.
 */
describe('migration lifecycle', () => {
  const c = clients();
  const limit = pLimit(32);
  let worker: ChildProcess;
  let connection: Connection;
  let client: Client;
  let proxy: ProxiedSites;
  const startWorker = (name: string) => startWorkerProcess(name, [], { CLOVER_SITES: proxy.sitesFile });
  const result = (id: string) => client.workflow.getHandle(migrationWorkflowId(id)).result() as Promise<MigrationResult>;

  // Each test gets its own proxies and worker, so what one test does to a proxy never slows the next.
  beforeEach(async () => {
    proxy = await proxiedSites(['sg', 'us']);
    worker = startWorker(uniqueId('lifecycle-worker'));
  });
  afterEach(async () => {
    await stopProcess(worker, 'SIGKILL');
    await proxy.close().catch(() => undefined);
  });
  beforeAll(async () => {
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await connection?.close();
    destroySiteClients(c);
  });

  const seed = async (site: string, userId: string, n: number, size: number, extra: Record<string, unknown> = {}) => {
    const bodies = new Map<string, Buffer>();
    await Promise.all(Array.from({ length: n }, (_, i) => limit(async () => {
      const key = `users/${userId}/f-${String(i).padStart(4, '0')}`;
      const body = Buffer.alloc(size, (i * 7 + userId.length) % 251);
      bodies.set(key, body);
      await put(c, site, key, body, extra);
    })));
    return bodies;
  };
  const plan = (migrationId: string, users: string[], more: Record<string, unknown> = {}) =>
    writePlan(tmpPlanDir(), {
      migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'checksum', ...more,
    });
  const manifest = async (id: string, userId: string): Promise<Manifest> => {
    const m = await get(c, 'eu-ie', manifestKey(id, userId));
    return JSON.parse(m!.body.toString()) as Manifest;
  };

  it('pause holds (nothing is copied while paused), resume finishes', async () => {
    const id = uniqueId('pause');
    const users = [`${id}-a`, `${id}-b`];
    const perUser = 200;
    for (const u of users) await seed('sg', u, perUser, 4 * 1024);
    // At 64 KB/s the 1.6 MB of this test take 25 s or more: the copy is still running when the pause lands.
    await proxy.addToxic('sg', { type: 'bandwidth', attributes: { rate: 64 } });
    expect((await runCli(['start', '--plan', plan(id, users, { concurrency: { users: 2, objectsPerUser: 1 } })])).code).toBe(0);
    const copied = async () => (await Promise.all(users.map((u) => listKeys(c, 'eu-ie', `users/${u}/`)))).flat().length;
    await waitUntil('20 objects are copied', copied, (n) => n >= 20);

    const p = await runCli(['pause', id]);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    expect((await runCli(['pause', id])).code).toBe(2); // already paused
    // Running copies stop at their checkpoint: no activity of either user is pending any more, and no local
    // first pass runs (its workflow task is over).
    for (const u of users) await waitUntil(`the copy of ${u} has stopped`, () => hasWorkInFlight(client, userWorkflowId(id, u)), (p) => !p);
    const held = await copied();
    expect(held).toBeLessThan(2 * perUser);
    await sleep(3000); // nothing may happen while paused: a quiet window is the only way to see that
    expect(await copied()).toBe(held);
    const st = JSON.parse((await runCli(['status', id, '--json'])).stdout);
    expect(st.phase).toBe('paused');
    expect(Date.parse(st.pausedAt)).toBeGreaterThan(0);

    expect((await runCli(['resume', id])).code).toBe(0);
    const r = await result(id);
    expect(r).toMatchObject({ phase: 'completed', usersDone: 2 });
    expect(r.counters.objects).toBe(2 * perUser);
    expect(await copied()).toBe(2 * perUser);
    expect((await runCli(['verify', id])).code).toBe(0);
    expect((await runCli(['resume', id])).code).toBe(2); // not running any more
  });

  it('cancel stops mid-copy with no incomplete multipart upload left; rollback then removes the partial copies', async () => {
    const id = uniqueId('cancel');
    const userId = `${id}-u`;
    const sources = await seed('us', userId, 6, 40 * 1024 * 1024); // multipart (16 MiB parts)
    // The source is held from the start (and stays held; the rollback below does not read it): uploads
    // get created, their bytes crawl, the copy is mid-way when cancel lands.
    await proxy.hold('us');
    expect((await runCli(['start', '--plan', plan(id, [userId], { concurrency: { users: 1, objectsPerUser: 2 } })])).code).toBe(0);
    const target = c.get('eu-ie')!;
    const uploads = async () => (await target.s3.send(new ListMultipartUploadsCommand({ Bucket: target.bucket, Prefix: `users/${userId}/` }))).Uploads ?? [];
    await waitUntil('a multipart upload is in progress', uploads, (u) => u.length > 0);

    const r = await runCli(['cancel', id]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/cancelled/);
    expect(await uploads()).toEqual([]);
    expect(JSON.parse((await runCli(['status', id, '--json'])).stdout)).toMatchObject({ phase: 'cancelled', usersCancelled: 1 });
    expect((await runCli(['cancel', id])).code).toBe(2);
    expect(await exists(c, 'eu-ie', manifestKey(id, userId))).toBe(false);

    const rb = await runCli(['rollback', id, '--wait']);
    expect(rb.code).toBe(0);
    expect(await listKeys(c, 'eu-ie', `users/${userId}/`)).toEqual([]);
    expect(await uploads()).toEqual([]);
    for (const [key, body] of sources) expect(sha256((await get(c, 'us', key))!.body)).toBe(sha256(body)); // sources untouched
  });

  it('delete-after-verify: sources wait out the grace period; one rewritten meanwhile is caught by the final pass, then every source goes', async () => {
    const id = uniqueId('dispose');
    const userId = `${id}-u`;
    const bodies = await seed('sg', userId, 3, 1000);
    const start = await runCli(['start', '--plan', plan(id, [userId], { sourceDisposition: 'delete-after-verify', gracePeriod: '1h' }), '--wait']);
    expect(start.code).toBe(0);
    // Verified and committed, in its grace period: every source object is still there.
    for (const key of bodies.keys()) expect(await exists(c, 'sg', key)).toBe(true);
    const rewritten = at([...bodies.keys()], 1);
    await put(c, 'sg', rewritten, 'changed during the grace period');

    // The cutover ends the grace period; the final delta pass copies the rewrite before anything is deleted.
    const cut = await runCli(['cutover', id, '--user', userId, '--wait']);
    expect(cut.stdout).toMatch(new RegExp(`user ${userId}: cut over: 3 source object\\(s\\) deleted; residue 0`));
    expect(cut.code).toBe(0);
    const r = await result(id);
    expect(r).toMatchObject({ phase: 'completed', usersAwaitingDisposal: 0 });
    expect(r.counters).toMatchObject({ sourceDeleted: 3, sourceKeptChanged: 0 });
    for (const key of bodies.keys()) expect(await exists(c, 'sg', key)).toBe(false);
    expect((await get(c, 'eu-ie', rewritten))!.body.toString()).toBe('changed during the grace period');
    const m = await manifest(id, userId);
    expect(m.generation).toBe(3); // first pass, final pass, the deletion's record
    expect(m.sourceDisposition).toMatchObject({ state: 'deleted', deleted: 3, keptChanged: [], residueCount: 0 });
    const finalPass = JSON.parse((await get(c, 'eu-ie', manifestGenerationKey(id, userId, 2)))!.body.toString()) as Manifest;
    expect(finalPass.pass).toMatchObject({ kind: 'delta', overwritten: 1, unchanged: 2 });
    expect((await runCli(['verify', id])).code).toBe(0); // the amended manifest's digest holds, nothing left in the sources
  });

  it('rollback after delete-after-verify: every source object back, byte-identical with its metadata, EU copies gone', async () => {
    const id = uniqueId('restore');
    const userId = `${id}-u`;
    const bodies = await seed('us', userId, 5, 3000, { ContentType: 'application/x-demo', Metadata: { owner: 'restore-test' } });
    expect((await runCli(['start', '--plan', plan(id, [userId], { sourceDisposition: 'delete-after-verify', gracePeriod: '1s' }), '--wait'])).code).toBe(0);
    await result(id);
    for (const key of bodies.keys()) expect(await exists(c, 'us', key)).toBe(false);

    const rb = await runCli(['rollback', id, '--wait']);
    expect(rb.code).toBe(0);
    expect(rb.stdout).toMatch(/sources restored: 5; EU copies removed: 5/);
    for (const [key, body] of bodies) {
      const back = await get(c, 'us', key);
      expect(sha256(back!.body)).toBe(sha256(body));
      expect(back!.contentType).toBe('application/x-demo');
      expect(back!.metadata).toEqual({ owner: 'restore-test' });
      expect(await exists(c, 'eu-ie', key)).toBe(false);
    }
    expect((await manifest(id, userId)).rolledBack).toMatchObject({ restored: 5, targetDeleted: 5 });
    const v = await runCli(['verify', id, '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ rolledBack: 1, problems: [] });
  });

  it('rollback after keep: EU copies gone, sources untouched; an EU object modified since the migration survives', async () => {
    const id = uniqueId('keep');
    const userId = `${id}-u`;
    const bodies = await seed('sg', userId, 4, 2000);
    expect((await runCli(['start', '--plan', plan(id, [userId]), '--wait'])).code).toBe(0);
    const modified = at([...bodies.keys()], 2);
    await put(c, 'eu-ie', modified, 'edited in the EU after the migration');

    const rb = await runCli(['rollback', id, '--wait']);
    expect(rb.code).toBe(1); // one object had to be kept: reported
    expect(rb.stdout).toMatch(new RegExp(`KEPT user ${userId} key "${modified}": the EU copy was modified after the migration`));
    for (const [key, body] of bodies) {
      expect(sha256((await get(c, 'sg', key))!.body)).toBe(sha256(body));
      expect(await exists(c, 'eu-ie', key)).toBe(key === modified);
    }
    expect((await get(c, 'eu-ie', modified))!.body.toString()).toBe('edited in the EU after the migration');
  });

  it('a worker SIGKILLed during a rollback: a new worker finishes it correctly', async () => {
    const id = uniqueId('rbkill');
    const userId = `${id}-u`;
    const bodies = await seed('sg', userId, 400, 16 * 1024);
    expect((await runCli(['start', '--plan', plan(id, [userId], { sourceDisposition: 'delete-after-verify', gracePeriod: '1s', concurrency: { users: 1, objectsPerUser: 2 } }), '--wait'])).code).toBe(0);
    await result(id);
    expect(await listKeys(c, 'sg', `users/${userId}/`)).toEqual([]);

    await stopProcess(worker, 'SIGKILL');
    const a = startWorker(`${id}-a`);
    expect((await runCli(['rollback', id])).code).toBe(0);
    await waitUntil('60 sources are restored', async () => (await listKeys(c, 'sg', `users/${userId}/`)).length, (n) => n >= 60);
    await proxy.hold('sg'); // the rollback is still restoring when its worker dies
    const before = (await listKeys(c, 'sg', `users/${userId}/`)).length;
    expect(before).toBeLessThan(400);
    await stopProcess(a, 'SIGKILL');
    worker = startWorkerProcess(`${id}-b`); // reaches the sources directly from here on

    const r = (await client.workflow.getHandle(rollbackWorkflowId(id)).result()) as RollbackResult;
    expect(r).toMatchObject({ phase: 'rolled-back', problems: [] });
    for (const [key, body] of bodies) expect(sha256((await get(c, 'sg', key))!.body)).toBe(sha256(body));
    expect(await listKeys(c, 'eu-ie', `users/${userId}/`)).toEqual([]);
    // The counts span both workers (the progress records of the killed one's batches are summed in).
    expect(r.counters).toMatchObject({ restored: 400, targetDeleted: 400, kept: 0 });
    expect((await manifest(id, userId)).rolledBack).toMatchObject({ restored: 400, targetDeleted: 400, kept: [] });
  });

  it('cutover ends a long grace period; a user above maxDeletes waits for an operator', async () => {
    const id = uniqueId('cutover');
    const small = `${id}-small`;
    const big = `${id}-big`;
    const smallBodies = await seed('sg', small, 1, 100);
    const bigBodies = await seed('sg', big, 3, 100);
    const p = plan(id, [small, big], { sourceDisposition: 'delete-after-verify', gracePeriod: '1h', maxDeletes: 2 });
    expect((await runCli(['start', '--plan', p, '--wait'])).code).toBe(0);
    const phase = async (userId: string) => {
      const d = await client.workflow.getHandle(`migration-${id}-user-${userId}`).describe();
      return d.typedSearchAttributes.get(SA.phase);
    };
    expect(await phase(small)).toBe('grace');

    const cut = await runCli(['cutover', id]);
    expect(cut.code).toBe(0);
    expect(cut.stdout).toMatch(/cutover sent to 2 user\(s\)/);
    const smallKey = at([...smallBodies.keys()], 0);
    await waitUntil('the small user\'s source is deleted', () => exists(c, 'sg', smallKey), (e) => !e);

    // Three objects > maxDeletes 2: held for an operator, sources untouched.
    await waitUntil('the big user awaits an operator', () => phase(big), (p) => p === 'awaiting-operator');
    for (const key of bigBodies.keys()) expect(await exists(c, 'sg', key)).toBe(true);
    expect((await runCli(['cutover', id, '--user', big])).code).toBe(0);
    const r = await result(id);
    expect(r.counters).toMatchObject({ sourceDeleted: 4, sourceKeptChanged: 0 });
    for (const key of bigBodies.keys()) expect(await exists(c, 'sg', key)).toBe(false);
    const again = await runCli(['cutover', id, '--user', big]); // nothing waiting any more
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/not cut over: already cut over/);
  });
});
