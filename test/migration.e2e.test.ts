import type { ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { manifestKey } from '../src/domain/layout';
import { manifestDigest, type Manifest } from '../src/domain/manifest';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId } from '../src/workflows/definitions';
import { clients, exists, get, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { entry } from './support/at';

/**
 * End to end, as an operator runs it: a real worker process, the real CLI, the real Temporal server and
 * four real S3 sites. Every assertion is about bytes, hashes, metadata and counts in storage.
 */
describe('a migration over both sources and both targets', () => {
  const c = clients();
  const run = uniqueId('e2e');
  const u = (s: string) => `${run}-${s}`;
  const longKey = `users/${u('long')}/${'x'.repeat(250)}/${'y'.repeat(250)}/${'z'.repeat(250)}/`;
  const objects: { site: string; key: string; body: Buffer; target: string; extra?: Record<string, unknown> }[] = [];
  const add = (site: string, userId: string, target: string, name: string, body: Buffer | string, extra?: Record<string, unknown>) =>
    objects.push({ site, key: `users/${userId}/${name}`, body: Buffer.from(body), target, extra });
  let worker: ChildProcess;
  const users = [
    { userId: u('de'), country: 'DE' },
    { userId: u('no'), country: 'NO' },
    { userId: u('se'), country: 'SE' },
    { userId: u('empty'), country: 'FR' },
    { userId: u('long'), country: 'IE' },
    { userId: u('many'), country: 'AT' },
    { userId: u('dk'), country: 'DK' },
  ];
  const planFile = () =>
    writePlan(tmpPlanDir(), {
      migrationId: run, sources: ['sg', 'us'],
      routing: { default: 'eu-ie', byCountry: { NO: 'eu-no', SE: 'eu-no', DK: 'eu-no' } },
      users, verify: 'full', conflictPolicy: 'newest-wins', concurrency: { users: 4, objectsPerUser: 8 },
    });

  beforeAll(async () => {
    add('sg', u('de'), 'eu-ie', 'a.txt', 'hello from Singapore', {
      ContentType: 'text/plain; charset=utf-8', CacheControl: 'max-age=60', ContentDisposition: 'attachment; filename="a.txt"', Metadata: { owner: 'de', tier: 'gold' },
    });
    add('sg', u('de'), 'eu-ie', 'nested/deep/b.bin', Buffer.alloc(5000, 7));
    add('sg', u('de'), 'eu-ie', 'zero-bytes', Buffer.alloc(0));
    add('sg', u('de'), 'eu-ie', 'sp ace + plus %25 ü 日本.txt', 'odd key');
    add('us', u('no'), 'eu-no', 'photo.jpg', Buffer.alloc(70_000, 1), { ContentType: 'image/jpeg' });
    add('us', u('no'), 'eu-no', 'docs/x.pdf', Buffer.alloc(123, 2));
    add('sg', u('se'), 'eu-no', 'from-sg.txt', 'sg part');
    add('us', u('se'), 'eu-no', 'from-us.txt', 'us part');
    add('sg', u('long'), 'eu-ie', `${'x'.repeat(250)}/${'y'.repeat(250)}/${'z'.repeat(250)}/${'w'.repeat(1024 - Buffer.byteLength(longKey))}`, 'long key');
    for (let i = 0; i < 1050; i++) add('us', u('many'), 'eu-ie', `f/${String(i).padStart(5, '0')}`, `object ${i}`);
    expect(Buffer.byteLength(objects.find((o) => o.key.startsWith(longKey))!.key)).toBe(1024);
    const pLimit = (await import('p-limit')).default;
    const limit = pLimit(32);
    await Promise.all(objects.map((o) => limit(() => put(c, o.site, o.key, o.body, o.extra))));
    await put(c, 'sg', `users/${u('dk')}/profile.json`, '{"old":true}');
    // The same key in both sources with different bytes: us is written later, so newest-wins picks it.
    await new Promise((r) => setTimeout(r, 1100));
    add('us', u('dk'), 'eu-no', 'profile.json', '{"new":true}');
    await put(c, 'us', `users/${u('dk')}/profile.json`, '{"new":true}');
    worker = startWorkerProcess(`worker-${run}`);
  });
  afterAll(async () => {
    await stopProcess(worker);
    destroySiteClients(c);
  });

  it('copies every object into the right EU site, verified, with metadata and a manifest; clover verify agrees', async () => {
    const start = await runCli(['start', '--plan', planFile(), '--wait']);
    expect(start.stderr).toBe('');
    expect(start.code).toBe(0);
    expect(start.stdout).toMatch(/completed/);

    for (const o of objects) {
      const t = await get(c, o.target, o.key);
      expect(t).toBeDefined();
      expect(sha256(t!.body)).toBe(sha256(o.body));
      expect(t!.metadata['clover-sha256']).toBe(sha256(o.body));
      expect(t!.metadata['clover-source-site']).toBe(o.site);
      expect(t!.metadata['clover-migration']).toBe(run);
      const other = o.target === 'eu-ie' ? 'eu-no' : 'eu-ie';
      expect(await exists(c, other, o.key)).toBe(false);
      expect(await exists(c, o.site, o.key)).toBe(true); // sources are kept
    }
    const a = await get(c, 'eu-ie', `users/${u('de')}/a.txt`);
    expect(a!.contentType).toBe('text/plain; charset=utf-8');
    expect(a!.cacheControl).toBe('max-age=60');
    expect(a!.contentDisposition).toBe('attachment; filename="a.txt"');
    expect(a!.metadata).toMatchObject({ owner: 'de', tier: 'gold' });

    // newest-wins: the newer us copy is in the target, and the conflict is recorded in the manifest.
    const dk = await get(c, 'eu-no', `users/${u('dk')}/profile.json`);
    expect(dk!.body.toString()).toBe('{"new":true}');

    const manifests: Record<string, Manifest> = {};
    for (const { userId, country } of users) {
      const target = ['NO', 'SE', 'DK'].includes(country) ? 'eu-no' : 'eu-ie';
      const s = c.get(target)!;
      const r = await s.s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: manifestKey(run, userId) }));
      const m = JSON.parse(await r.Body!.transformToString()) as Manifest;
      expect(manifestDigest(m)).toBe(m.digest);
      manifests[userId] = m;
    }
    expect(entry(manifests, u('empty')).entries).toHaveLength(0);
    expect(entry(manifests, u('many')).entries).toHaveLength(1050);
    expect(entry(manifests, u('se')).entries.map((e) => e.sourceSite).sort()).toEqual(['sg', 'us']);
    expect(entry(manifests, u('dk')).conflicts).toEqual([expect.objectContaining({ kind: 'sources-differ', resolution: 'newest-wins', chosenSite: 'us' })]);
    for (const o of objects) {
      const m = entry(manifests, o.key.split('/')[1] ?? '');
      expect(m.entries.find((e) => e.key === o.key)).toMatchObject({ sha256: sha256(o.body), size: o.body.length, sourceSite: o.site });
    }

    const status = await runCli(['status', run, '--json']);
    expect(status.code).toBe(0);
    const st = JSON.parse(status.stdout);
    expect(st).toMatchObject({ phase: 'completed', usersDone: users.length, usersFailed: 0 });
    expect(st.counters.objects).toBe(objects.length);
    expect(st.counters.verified).toBe(objects.length);
    expect(st.counters.conflicts).toBe(1);

    const verify = await runCli(['verify', run, '--json']);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, manifests: users.length, objects: objects.length, problems: [] });

    // The window fills at once: the first 4 users (concurrency.users) are started by one workflow task,
    // not one task per start (which held a migration to about 10 users/s).
    const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    try {
      const events = (await new Client({ connection }).workflow.getHandle(migrationWorkflowId(run)).fetchHistory()).events ?? [];
      const firstStarts = events.findIndex((e) => e.startChildWorkflowExecutionInitiatedEventAttributes);
      const tasks = events.slice(firstStarts).findIndex((e) => e.workflowTaskScheduledEventAttributes);
      expect(events.slice(firstStarts, firstStarts + tasks).filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)).toHaveLength(4);
    } finally {
      await connection.close();
    }
  });

  it('the same plan again copies nothing: the same id reports the finished migration; a new id never adopts what another migration wrote', async () => {
    const again = await runCli(['start', '--plan', planFile(), '--wait']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already finished/);

    // An EU object belongs to the migration whose manifest lists it: another migration over the same
    // keys neither adopts nor overwrites them; its users fail naming the keys, and nothing is sent.
    const rerun = `${run}-again`;
    const plan = writePlan(tmpPlanDir(), {
      migrationId: rerun, sources: ['sg', 'us'], routing: { default: 'eu-ie', byCountry: { NO: 'eu-no', SE: 'eu-no', DK: 'eu-no' } },
      users, verify: 'checksum', concurrency: { users: 4, objectsPerUser: 8 },
    });
    const before = await Promise.all(objects.map(async (o) => (await get(c, o.target, o.key))?.etag));
    const r = await runCli(['start', '--plan', plan, '--wait']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/did not write/);
    const st = JSON.parse((await runCli(['status', rerun, '--json'])).stdout);
    expect(st.counters.transferredObjects).toBe(0);
    expect(st.usersFailed).toBe(new Set(objects.map((o) => o.key.split('/')[1])).size); // a user with no object has nothing to adopt
    expect(await Promise.all(objects.map(async (o) => (await get(c, o.target, o.key))?.etag))).toEqual(before);
  });

  it('never overwrites a target object it did not write: the user fails naming the key, the object is untouched', async () => {
    const id = `${run}-foreign`;
    const userId = u('foreign');
    await put(c, 'sg', `users/${userId}/mine.txt`, 'source bytes');
    await put(c, 'sg', `users/${userId}/ok.txt`, 'fine');
    await put(c, 'eu-ie', `users/${userId}/mine.txt`, 'someone else wrote this');
    const plan = writePlan(tmpPlanDir(), { migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }] });
    const r = await runCli(['start', '--plan', plan, '--wait']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`FAILED user ${userId}: .*"users/${userId}/mine.txt".*did not write`));
    expect((await get(c, 'eu-ie', `users/${userId}/mine.txt`))!.body.toString()).toBe('someone else wrote this');
    const st = JSON.parse((await runCli(['status', id, '--json'])).stdout);
    expect(st).toMatchObject({ phase: 'completed-with-failures', usersFailed: 1 });
    // No manifest: the user is not reported as migrated.
    expect(await exists(c, 'eu-ie', manifestKey(id, userId))).toBe(false);

    // Once the operator has resolved the conflict, `clover retry` migrates the failed user.
    const t = c.get('eu-ie')!;
    await t.s3.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: `users/${userId}/mine.txt` }));
    const retry = await runCli(['retry', id, '--wait']);
    expect(retry.code).toBe(0);
    expect((await get(c, 'eu-ie', `users/${userId}/mine.txt`))!.body.toString()).toBe('source bytes');
    expect((await runCli(['verify', id])).code).toBe(0);
  });
});
