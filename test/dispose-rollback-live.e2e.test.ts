import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import type { DisposeSourcesInput, DisposeSourcesResult } from '../src/activities/lifecycle';
import type { RollbackUserInput, RollbackUserResult } from '../src/activities/rollback';
import { auditMigration } from '../src/audit/verify';
import { manifestGenerationKey } from '../src/domain/layout';
import { buildManifest, type ErasureRecord, type ManifestEntry } from '../src/domain/manifest';
import { NOT_IN_MANIFEST } from '../src/domain/residue';
import { destroySiteClients } from '../src/storage/clients';
import { commitManifestGeneration, getCurrentManifest } from '../src/storage/manifests';
import { META } from '../src/storage/object-meta';
import { testDeps } from './deps';
import { exists, get, listKeys, put, sha256, testSites, uniqueId } from './helpers';

/**
 * Disposal and rollback of live data, the activities run directly against the real sites on a
 * manifest written by hand (so they do not depend on the copy): duplicates across sources deleted
 * and restored in every site, a superseded source and anything written after the final pass left and
 * reported as residue (by the disposal and by `clover verify`), an object the application erased after
 * the last pass and an erasure carried over by a delta pass never brought back.
 */
describe('disposal and rollback of live data (activities on the real sites)', () => {
  const deps = testDeps();
  const acts = createActivities(deps);
  const c = deps.clients;
  afterAll(() => destroySiteClients(c));

  const dispose = (input: DisposeSourcesInput) => new MockActivityEnvironment().run<[DisposeSourcesInput], DisposeSourcesResult, typeof acts.disposeSources>(acts.disposeSources, input);
  const rollback = (input: RollbackUserInput) => new MockActivityEnvironment().run<[RollbackUserInput], RollbackUserResult, typeof acts.rollbackUser>(acts.rollbackUser, input);

  it('deletes every duplicate, reports the residue, never restores an erasure, restores only what it deleted', async () => {
    const migrationId = uniqueId('live-safety');
    const userId = `${migrationId}-u`;
    const prefix = `users/${userId}/`;
    const k = (name: string) => `${prefix}${name}`;
    const body = (name: string) => `bytes of ${name} (${migrationId})`;
    const etagAt = async (site: string, key: string) => (await get(c, site, key))!.etag;

    // The sources as the final pass saw them.
    await put(c, 'sg', k('a'), body('a'));
    await put(c, 'sg', k('dup'), body('dup'));
    await put(c, 'us', k('dup'), body('dup'));
    await put(c, 'sg', k('newest'), 'older bytes that lost under newest-wins');
    await put(c, 'us', k('newest'), body('newest'));
    await put(c, 'sg', k('changed'), body('changed'));
    await put(c, 'sg', k('app-erased'), body('app-erased'));

    // The EU copies this migration wrote, and the manifest of that pass.
    const entries: ManifestEntry[] = [];
    const entry = async (name: string, sourceSite: string, over: Partial<ManifestEntry> = {}) => {
      const key = k(name);
      const sourceEtag = await etagAt(sourceSite, key);
      await put(c, 'eu-ie', key, body(name), {
        Metadata: { [META.migration]: migrationId, [META.sourceSite]: sourceSite, [META.sourceEtag]: sourceEtag, [META.sha256]: sha256(body(name)) },
      });
      entries.push({
        key, size: Buffer.byteLength(body(name)), sha256: sha256(body(name)), sourceSite, sourceEtag, sourceLastModified: '2026-01-01T00:00:00.000Z',
        targetEtag: await etagAt('eu-ie', key), outcome: 'copied', ...over,
      });
    };
    await entry('a', 'sg');
    await entry('dup', 'sg', { alsoAt: [{ site: 'us', etag: await etagAt('us', k('dup')) }] });
    await entry('newest', 'us', { superseded: [{ site: 'sg', etag: await etagAt('sg', k('newest')) }] });
    await entry('changed', 'sg');
    await entry('app-erased', 'sg');
    const erasure: ErasureRecord = { key: k('gone'), size: 3, sha256: sha256('old'), sourceSite: 'sg', erasedAt: '2026-01-01T00:00:00.000Z', generation: 1 };
    const eu = c.get('eu-ie')!;
    const first = buildManifest({
      migrationId, userId, targetSite: 'eu-ie', bucket: eu.bucket, userPrefix: prefix, sources: ['sg', 'us'], committedAt: '2026-01-02T00:00:00.000Z',
      generation: 1, writtenBy: 'test', entries, conflicts: [], erasures: [erasure],
    });
    await commitManifestGeneration(eu, first, undefined);

    // After the final pass: the application changes one object, erases another, writes a new one.
    await put(c, 'sg', k('changed'), 'changed after the final pass');
    await c.get('sg')!.s3.send(new DeleteObjectCommand({ Bucket: c.get('sg')!.bucket, Key: k('app-erased') }));
    await put(c, 'sg', k('late'), 'written after the final pass');

    const input: DisposeSourcesInput = { migrationId, userId, targetSite: 'eu-ie', objectsPerUser: 4, sources: ['sg', 'us'], userPrefix: prefix };
    const d = await dispose(input);
    expect(d).toMatchObject({ deleted: 4, keptChanged: 1, residueCount: 3 });
    const residue = new Map(d.residue.map((r) => [`${r.site} ${r.key}`, r.reason]));
    expect(residue).toEqual(new Map([
      [`sg ${k('changed')}`, 'kept at disposal: the source object changed since it was copied'],
      [`sg ${k('late')}`, NOT_IN_MANIFEST],
      [`sg ${k('newest')}`, expect.stringMatching(/^superseded under newest-wins/)],
    ]));
    expect((await listKeys(c, 'sg', prefix)).sort()).toEqual([k('changed'), k('late'), k('newest')].sort());
    expect(await listKeys(c, 'us', prefix)).toEqual([]);

    // The amendment is the next generation, chained; the first one is kept as it was.
    const second = (await getCurrentManifest(eu, migrationId, userId))!.manifest;
    expect(second).toMatchObject({ generation: 2, previousDigest: first.digest, sourceDisposition: { deleted: 4, residueCount: 3 } });
    expect(second.sourceDisposition?.residue).toHaveLength(3);
    expect(JSON.parse((await get(c, 'eu-ie', manifestGenerationKey(migrationId, userId, 1)))!.body.toString())).toMatchObject({ digest: first.digest });
    // A retried activity returns what was committed, and commits nothing more.
    expect(await dispose(input)).toEqual(d);
    expect((await getCurrentManifest(eu, migrationId, userId))!.manifest.generation).toBe(2);

    // clover verify: every object left in a source after cut-over is a problem, named.
    const audit = await auditMigration(testSites(), migrationId, { clients: c });
    expect(audit).toMatchObject({ ok: false, manifests: 1, cutOver: 1, residue: 3 });
    expect(audit.problems.map((p) => `${p.kind} ${p.site} ${p.key} ${p.userId}`).sort()).toEqual(
      [k('changed'), k('late'), k('newest')].map((key) => `residue sg ${key} ${userId}`).sort(),
    );
    expect(audit.problems.find((p) => p.key === k('late'))?.problem).toBe(`still in a source after cut-over; ${NOT_IN_MANIFEST}`);

    // Rollback: restores only what Clover deleted (in every site), never an erasure.
    const rbInput: RollbackUserInput = { migrationId, userId, targetSite: 'eu-ie', prefix, objectsPerUser: 4, sources: ['sg', 'us'] };
    const rb = await rollback(rbInput);
    expect(rb).toMatchObject({ restored: 4, targetDeleted: 3, kept: 1, erased: 2 });
    expect(rb.problems).toEqual([{ key: k('changed'), problem: 'the source object in sg differs from what was migrated; the EU copy is kept' }]);
    expect(new Map(rb.erasedKeys.map((e) => [e.key, e.reason]))).toEqual(new Map([
      [k('gone'), expect.stringMatching(/never restored/)],
      [k('app-erased'), 'erased at the source after the last pass (sg); not restored; the EU copy is kept'],
    ]));
    for (const [site, name] of [['sg', 'a'], ['sg', 'dup'], ['us', 'dup'], ['us', 'newest']] as const) {
      expect((await get(c, site, k(name)))?.body.toString()).toBe(body(name));
    }
    expect((await get(c, 'sg', k('newest')))?.body.toString()).toBe('older bytes that lost under newest-wins');
    expect((await get(c, 'sg', k('changed')))?.body.toString()).toBe('changed after the final pass');
    expect(await exists(c, 'sg', k('app-erased'))).toBe(false);
    expect(await exists(c, 'sg', k('gone'))).toBe(false);
    expect((await listKeys(c, 'eu-ie', prefix)).sort()).toEqual([k('app-erased'), k('changed')].sort());

    const third = (await getCurrentManifest(eu, migrationId, userId))!.manifest;
    expect(third).toMatchObject({ generation: 3, previousDigest: second.digest, rolledBack: { restored: 4, targetDeleted: 3, erasedCount: 2 } });
    expect(await rollback(rbInput)).toEqual(rb);
    expect(await auditMigration(testSites(), migrationId, { clients: c })).toMatchObject({ ok: true, rolledBack: 1, problems: [] });
  });

  it('a rollback without a disposal restores nothing: a source erased by the application stays erased, its EU copy kept', async () => {
    const migrationId = uniqueId('live-keep');
    const userId = `${migrationId}-u`;
    const key = `users/${userId}/x`;
    await put(c, 'sg', key, 'x');
    const sourceEtag = (await get(c, 'sg', key))!.etag;
    await put(c, 'eu-ie', key, 'x', { Metadata: { [META.migration]: migrationId, [META.sourceSite]: 'sg', [META.sourceEtag]: sourceEtag, [META.sha256]: sha256('x') } });
    const eu = c.get('eu-ie')!;
    await commitManifestGeneration(eu, buildManifest({
      migrationId, userId, targetSite: 'eu-ie', bucket: eu.bucket, userPrefix: `users/${userId}/`, sources: ['sg', 'us'], committedAt: '2026-01-02T00:00:00.000Z',
      generation: 1, writtenBy: 'test', conflicts: [], erasures: [],
      entries: [{ key, size: 1, sha256: sha256('x'), sourceSite: 'sg', sourceEtag, sourceLastModified: '2026-01-01T00:00:00.000Z', targetEtag: (await get(c, 'eu-ie', key))!.etag, outcome: 'copied' }],
    }), undefined);
    await c.get('sg')!.s3.send(new DeleteObjectCommand({ Bucket: c.get('sg')!.bucket, Key: key }));

    const rb = await rollback({ migrationId, userId, targetSite: 'eu-ie', prefix: `users/${userId}/`, objectsPerUser: 2, sources: ['sg', 'us'] });
    expect(rb).toMatchObject({ restored: 0, targetDeleted: 0, kept: 0, erased: 1, problems: [] });
    expect(await exists(c, 'sg', key)).toBe(false);
    expect(await exists(c, 'eu-ie', key)).toBe(true);
  });
});
