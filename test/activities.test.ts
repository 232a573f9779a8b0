import { openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import { heartbeatPolicy } from '../src/activities/scaffold';
import type { CopyUserInput, CopyUserResult } from '../src/activities/copy';
import { destroySiteClients } from '../src/storage/clients';
import { testDeps } from './deps';
import { manifestKey, stagingPrefix } from '../src/domain/layout';
import type { Manifest } from '../src/domain/manifest';
import { at, get, listKeys, put, sha256, uniqueId } from './helpers';

/** Activities run directly (MockActivityEnvironment) against the real S3 sites; the fault is real too. */
describe('activities against the real sites', () => {
  // These tests read every checkpoint an activity sends, however fast it runs.
  const { firstAfterMs, minGapMs } = heartbeatPolicy;
  beforeAll(() => { heartbeatPolicy.firstAfterMs = 0; heartbeatPolicy.minGapMs = 0; });
  afterAll(() => { Object.assign(heartbeatPolicy, { firstAfterMs, minGapMs }); });
  const deps = testDeps();
  const acts = createActivities(deps);
  afterAll(() => destroySiteClients(deps.clients));

  it('detects a target object corrupted on disk after the copy, re-copies it, and the bytes are right again', async () => {
    const migrationId = uniqueId('corrupt');
    const userId = `${migrationId}-u`;
    const good = Buffer.alloc(4096, 5);
    await put(deps.clients, 'sg', `users/${userId}/victim.bin`, good);
    await put(deps.clients, 'sg', `users/${userId}/bystander.txt`, 'fine');
    const copy = await new MockActivityEnvironment().run(acts.copyUserObjects, {
      migrationId, userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix: `users/${userId}/`, conflictPolicy: 'newest-wins' as const,
      objectsPerUser: 4, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 },
    });
    expect(copy).toMatchObject({ done: true, objects: 2, transferred: { objects: 2 } });

    // Flip bytes in the stored file itself: the server's ETag and metadata still claim the old content.
    const file = join(process.env.CLOVER_TEST_STACK_DIR!, 'sites', 'eu-ie', deps.clients.get('eu-ie')!.bucket, 'users', userId, 'victim.bin');
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from('CORRUPTED'), 0, 9, 100);
    closeSync(fd);
    expect(sha256((await get(deps.clients, 'eu-ie', `users/${userId}/victim.bin`))!.body)).not.toBe(sha256(good));

    const v = await new MockActivityEnvironment().run(acts.verifyUserObjects, { migrationId, userId, targetSite: 'eu-ie', mode: 'full' as const, objectsPerUser: 4, generation: 1 });
    expect(v).toMatchObject({ verified: 2, recopied: 1, transferredObjects: 1 });
    expect(sha256((await get(deps.clients, 'eu-ie', `users/${userId}/victim.bin`))!.body)).toBe(sha256(good));

    const c = await new MockActivityEnvironment().run(acts.commitManifest, { migrationId, userId, targetSite: 'eu-ie', userPrefix: `users/${userId}/`, sources: ['sg', 'us'], generation: 1, kind: 'first' as const, committedAt: new Date().toISOString() });
    expect(c).toMatchObject({ objects: 2, copied: 2 });
  });

  it('a retried copy resumes from its heartbeat checkpoint and re-sends nothing already in the target', async () => {
    const migrationId = uniqueId('resume');
    const userId = `${migrationId}-u`;
    for (let i = 0; i < 30; i++) await put(deps.clients, 'us', `users/${userId}/o-${i}`, `body ${i}`);
    const input: CopyUserInput = {
      migrationId, userId, sources: ['sg', 'us'], targetSite: 'eu-no', prefix: `users/${userId}/`, conflictPolicy: 'newest-wins',
      objectsPerUser: 4, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 },
    };
    const first = await new MockActivityEnvironment().run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, input);
    expect(first.transferred.objects).toBe(30);
    // A second attempt with the first one's checkpoint (as after a crash): everything is already there.
    const again = await new MockActivityEnvironment({ heartbeatDetails: { page: 0, transferred: first.transferred, blocked: [], blockedCount: 0 } }).run(acts.copyUserObjects, input);
    expect(again).toMatchObject({ done: true, objects: 30, transferred: { objects: 30 } });
  });

  it('a retry after the last page\'s heartbeat never lists the user again: each key is staged and committed once', async () => {
    const migrationId = uniqueId('lastpage');
    const userId = `${migrationId}-u`;
    for (let i = 0; i < 11; i++) await put(deps.clients, 'sg', `users/${userId}/o-${i}`, `body ${i}`);
    const input: CopyUserInput = {
      migrationId, userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix: `users/${userId}/`, conflictPolicy: 'newest-wins',
      objectsPerUser: 4, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 },
    };
    // The first attempt's last heartbeat is what Temporal hands a retry when the worker dies after it
    // (e.g. while aborting stale uploads on a slow target) but before the activity completes.
    const env = new MockActivityEnvironment();
    let last: unknown;
    env.on('heartbeat', (d: unknown) => (last = d));
    const first = await env.run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, input);
    expect(first).toMatchObject({ done: true, objects: 11 });
    expect(last).toMatchObject({ page: 1, cursor: undefined });

    const retried = await new MockActivityEnvironment({ heartbeatDetails: last }).run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, input);
    expect(retried).toMatchObject({ done: true, page: 1 });
    expect(await listKeys(deps.clients, 'eu-ie', stagingPrefix(migrationId, userId))).toHaveLength(1);
    const c = await new MockActivityEnvironment().run(acts.commitManifest, { migrationId, userId, targetSite: 'eu-ie', userPrefix: input.prefix, sources: ['sg', 'us'], generation: 1, kind: 'first' as const, committedAt: new Date().toISOString() });
    expect(c).toMatchObject({ objects: 11, copied: 11 });
    const m = JSON.parse((await get(deps.clients, 'eu-ie', manifestKey(migrationId, userId)))!.body.toString()) as Manifest;
    expect(new Set(m.entries.map((e) => e.key)).size).toBe(11);
    expect(m.entries).toHaveLength(11);
  });

  it('conflictPolicy "fail": the same key with different bytes in two sources is copied from neither and blocks the user', async () => {
    const migrationId = uniqueId('clash');
    const userId = `${migrationId}-u`;
    await put(deps.clients, 'sg', `users/${userId}/same.txt`, 'identical');
    await put(deps.clients, 'us', `users/${userId}/same.txt`, 'identical');
    await put(deps.clients, 'sg', `users/${userId}/clash.txt`, 'version A');
    await put(deps.clients, 'us', `users/${userId}/clash.txt`, 'version B');
    const r = await new MockActivityEnvironment().run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, {
      migrationId, userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix: `users/${userId}/`, conflictPolicy: 'fail',
      objectsPerUser: 4, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 },
    });
    expect(r.blockedCount).toBe(1);
    expect(r.blocked[0]).toMatchObject({ key: `users/${userId}/clash.txt` });
    expect(at(r.blocked, 0).reason).toMatch(/sources sg and us hold different bytes/);
    expect(await get(deps.clients, 'eu-ie', `users/${userId}/clash.txt`)).toBeUndefined();
    // Identical bytes in both sources are not a conflict: copied once.
    expect((await get(deps.clients, 'eu-ie', `users/${userId}/same.txt`))!.body.toString()).toBe('identical');
  });
});
