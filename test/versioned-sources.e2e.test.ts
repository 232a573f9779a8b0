import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateBucketCommand, DeleteObjectCommand, ListObjectVersionsCommand, PutObjectCommand, PutObjectLegalHoldCommand, PutObjectRetentionCommand,
} from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import type { DisposeSourcesInput, DisposeSourcesResult } from '../src/activities/lifecycle';
import type { RollbackUserInput, RollbackUserResult } from '../src/activities/rollback';
import { auditMigration } from '../src/audit/verify';
import type { Sites } from '../src/config/sites';
import { buildManifest, type ManifestEntry } from '../src/domain/manifest';
import { ERASED_VERSION } from '../src/domain/residue';
import { createSiteClients, destroySiteClients, type Site } from '../src/storage/clients';
import { commitManifestGeneration, getCurrentManifest } from '../src/storage/manifests';
import { META } from '../src/storage/object-meta';
import { testDeps } from './deps';
import { TASK_QUEUE, get, put, runCli, sha256, startWorkerProcess, stopProcess, testSites, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * Versioned sources and object lock on the real store: versitygw 1.7.0 started with `--versioning-dir`
 * (the local stack's source sites) keeps versions and delete markers, deletes one version by VersionId
 * under If-Match, and refuses (403) to delete a version under retention or legal hold. The sg source of
 * this file is a bucket of its own with object lock enabled (so versioned); us stays a plain bucket.
 * The disposal and rollback activities run directly on a manifest written by hand, as in
 * dispose-rollback-live.e2e.test.ts.
 */
describe('versioned sources and object lock (real store)', () => {
  const base = testSites();
  const bucket = `clover-sg-v-${randomBytes(4).toString('hex')}`;
  const sites: Sites = { ...base, sg: { ...base.sg!, bucket } };
  const c = createSiteClients(sites, { maxSockets: 16 });
  const deps = testDeps({ clients: c });
  const acts = createActivities(deps);
  const sg = c.get('sg')!;
  const eu = c.get('eu-ie')!;
  const dispose = (input: DisposeSourcesInput) => new MockActivityEnvironment().run<[DisposeSourcesInput], DisposeSourcesResult, typeof acts.disposeSources>(acts.disposeSources, input);
  const rollback = (input: RollbackUserInput) => new MockActivityEnvironment().run<[RollbackUserInput], RollbackUserResult, typeof acts.rollbackUser>(acts.rollbackUser, input);

  beforeAll(async () => {
    await sg.s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  });
  afterAll(() => destroySiteClients(c));

  const putVersion = async (s: Site, key: string, body: string) => (await s.s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: key, Body: body }))).VersionId!;
  const erase = (s: Site, key: string) => s.s3.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: key }));
  /** Every version and delete marker under `prefix` as `key version-or-marker`. */
  const versions = async (prefix: string) => {
    const r = await sg.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
    return [...(r.Versions ?? []).map((v) => `${v.Key} ${v.VersionId}`), ...(r.DeleteMarkers ?? []).map((d) => `${d.Key} marker ${d.VersionId}`)].sort();
  };

  /** A manifest (generation 1) of `names` at sg (and `plain` names at us), with EU copies, as the final pass left them. */
  const migrated = async (migrationId: string, userId: string, names: string[], plain: string[] = []) => {
    const prefix = `users/${userId}/`;
    const entries: ManifestEntry[] = [];
    for (const [site, list] of [['sg', names], ['us', plain]] as const) {
      for (const name of list) {
        const key = `${prefix}${name}`;
        const src = (await get(c, site, key))!;
        await put(c, 'eu-ie', key, src.body, {
          Metadata: { [META.migration]: migrationId, [META.sourceSite]: site, [META.sourceEtag]: src.etag, [META.sha256]: sha256(src.body) },
        });
        entries.push({
          key, size: src.body.length, sha256: sha256(src.body), sourceSite: site, sourceEtag: src.etag, sourceLastModified: '2026-01-01T00:00:00.000Z',
          targetEtag: (await get(c, 'eu-ie', key))!.etag, outcome: 'copied',
        });
      }
    }
    await commitManifestGeneration(eu, buildManifest({
      migrationId, userId, targetSite: 'eu-ie', bucket: eu.bucket, userPrefix: prefix, sources: ['sg', 'us'], committedAt: '2026-01-02T00:00:00.000Z',
      generation: 1, writtenBy: 'test', entries, conflicts: [], erasures: [],
    }), undefined);
    return prefix;
  };

  it('deletes every version of a migrated key, keeps locked ones with their date, reports later versions and erased keys', async () => {
    const migrationId = uniqueId('versions');
    const userId = `${migrationId}-u`;
    const prefix = `users/${userId}/`;
    const k = (n: string) => `${prefix}${n}`;
    // `a`: an old version, a delete marker, then the migrated version.
    await putVersion(sg, k('a'), 'old bytes of a');
    await erase(sg, k('a'));
    await putVersion(sg, k('a'), 'bytes of a');
    const lockedVersion = await putVersion(sg, k('locked'), 'bytes under retention');
    const until = new Date(Date.now() + 3 * 86400_000);
    await sg.s3.send(new PutObjectRetentionCommand({ Bucket: bucket, Key: k('locked'), VersionId: lockedVersion, Retention: { Mode: 'GOVERNANCE', RetainUntilDate: until } }));
    const heldVersion = await putVersion(sg, k('held'), 'bytes under legal hold');
    await sg.s3.send(new PutObjectLegalHoldCommand({ Bucket: bucket, Key: k('held'), VersionId: heldVersion, LegalHold: { Status: 'ON' } }));
    await putVersion(sg, k('late'), 'bytes of late as migrated');
    // `erased`: the user erased it before the migration; its data sits in a noncurrent version.
    const erasedVersion = await putVersion(sg, k('erased'), 'erased bytes');
    await erase(sg, k('erased'));
    await put(c, 'us', k('plain'), 'bytes in a plain bucket');
    await migrated(migrationId, userId, ['a', 'locked', 'held', 'late'], ['plain']);
    // After the final pass: a new version of `late`.
    const lateVersion = await putVersion(sg, k('late'), 'written after the final pass');

    const input: DisposeSourcesInput = { migrationId, userId, targetSite: 'eu-ie', objectsPerUser: 4, sources: ['sg', 'us'], userPrefix: prefix };
    const d = await dispose(input);
    expect(d).toMatchObject({ deleted: 2, keptChanged: 3 });
    // No version (nor delete marker) of `a` is left; `plain` is gone from the plain bucket.
    const left = await versions(prefix);
    expect(left.filter((v) => v.startsWith(`${k('a')} `))).toEqual([]);
    expect(await get(c, 'us', k('plain'))).toBeUndefined();
    const residue = new Map(d.residue.map((r) => [`${r.site} ${r.key} ${r.reason.split(':')[0]}`, r.reason]));
    expect(residue.get(`sg ${k('locked')} version ${lockedVersion}`)).toBe(
      `version ${lockedVersion}: kept at disposal: the migrated version is under object lock (GOVERNANCE) until ${new Date(Math.floor(until.getTime() / 1000) * 1000).toISOString()}`,
    );
    expect(residue.get(`sg ${k('held')} version ${heldVersion}`)).toMatch(/kept at disposal: the migrated version is under legal hold/);
    expect(residue.get(`sg ${k('late')} version ${lateVersion}`)).toMatch(/kept at disposal: the source object changed since it was copied \(a newer version/);
    expect(residue.get(`sg ${k('erased')} version ${erasedVersion} (noncurrent)`)).toBe(`version ${erasedVersion} (noncurrent): ${ERASED_VERSION}`);
    // late: both versions (the migrated one is now noncurrent and kept); locked, held, erased: one each.
    expect(d.residueCount).toBe(5);

    // verify: every version outside the EEA is a problem, the one written after the final pass included.
    const audit = await auditMigration(sites, migrationId, { clients: c });
    expect(audit).toMatchObject({ ok: false, cutOver: 1, residue: 5 });
    expect(audit.problems.find((p) => p.key === k('late') && p.problem.includes(lateVersion))?.problem).toMatch(/^still in a source after cut-over; version /);
    expect(audit.problems.filter((p) => p.key === k('erased'))).toHaveLength(1);
    // The same through the CLI: one OUTSIDE-EEA line per version, exit 1.
    const sitesFile = join(tmpPlanDir(), `${uniqueId('sites-versioned')}.json`);
    writeFileSync(sitesFile, JSON.stringify({ sites }), { mode: 0o600 });
    const cli = await runCli(['verify', migrationId, '--sites', sitesFile]);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain(`OUTSIDE-EEA site sg key "${k('late')}" (user ${userId}): still in a source after cut-over; version ${lateVersion}: kept at disposal: `);
    expect(cli.stdout.split('\n').filter((l) => l.startsWith('OUTSIDE-EEA'))).toHaveLength(5);
    // The residency report counts the same five versions as still outside the EEA.
    const report = JSON.parse((await runCli(['report', migrationId, '--sites', sitesFile, '--json'])).stdout) as { users: { userId: string; stillOutsideEEA: { objects: number } }[] };
    expect(report.users.find((u) => u.userId === userId)?.stillOutsideEEA.objects).toBe(5);

    // Rollback restores what Clover deleted: `a` is current again with the migrated bytes (a new version).
    const rb = await rollback({ migrationId, userId, targetSite: 'eu-ie', prefix, objectsPerUser: 4, sources: ['sg', 'us'] });
    expect(rb).toMatchObject({ restored: 2 });
    expect((await get(c, 'sg', k('a')))?.body.toString()).toBe('bytes of a');
    expect((await get(c, 'us', k('plain')))?.body.toString()).toBe('bytes in a plain bucket');
    await sg.s3.send(new PutObjectLegalHoldCommand({ Bucket: bucket, Key: k('held'), VersionId: heldVersion, LegalHold: { Status: 'OFF' } }));
  });

  it('end to end (worker, start, cutover, verify): no version of a migrated key nor of an erased key remains', async () => {
    const migrationId = uniqueId('versions-e2e');
    const userId = `${migrationId}-u`;
    const prefix = `users/${userId}/`;
    await putVersion(sg, `${prefix}a`, 'old bytes of a');
    const current = await putVersion(sg, `${prefix}a`, 'bytes of a');
    await putVersion(sg, `${prefix}erased`, 'erased bytes');
    await erase(sg, `${prefix}erased`);
    const sitesFile = join(tmpPlanDir(), `${uniqueId('sites-versioned')}.json`);
    writeFileSync(sitesFile, JSON.stringify({ sites }), { mode: 0o600 });
    const env = { CLOVER_SITES: sitesFile, CLOVER_TASK_QUEUE: `${TASK_QUEUE}-${migrationId}` };
    const worker = startWorkerProcess(`worker-${migrationId}`, [], env);
    try {
      const plan = writePlan(tmpPlanDir(), {
        migrationId, sources: ['sg'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }], verify: 'full',
        sourceDisposition: 'delete-after-verify', gracePeriod: '1h', purgeErased: true,
      });
      const started = await runCli(['start', '--plan', plan, '--wait'], env);
      expect(started.code).toBe(0);
      // The copy recorded the version it read.
      expect((await getCurrentManifest(eu, migrationId, userId))!.manifest.entries.map((e) => [e.key, e.sourceVersionId])).toEqual([[`${prefix}a`, current]]);
      // The conditional-delete probe at start left nothing in the versioned bucket (removed by version id).
      expect(await versions('_clover/probe/')).toEqual([]);
      const cut = await runCli(['cutover', migrationId, '--wait'], env);
      expect(cut.stdout).toContain(`user ${userId}: cut over: 1 source object(s) deleted; residue 0`);
      expect(cut.code).toBe(0);
      expect(await versions(prefix)).toEqual([]);
      expect((await get(c, 'eu-ie', `${prefix}a`))?.body.toString()).toBe('bytes of a');
      const v = await runCli(['verify', migrationId], env);
      expect(v.stdout).toMatch(/^OK: /m);
      expect(v.code).toBe(0);
    } finally {
      await stopProcess(worker, 'SIGKILL');
    }
  });

  it('"purgeErased" deletes every version of the keys the user erased', async () => {
    const migrationId = uniqueId('purge');
    const userId = `${migrationId}-u`;
    const prefix = `users/${userId}/`;
    await putVersion(sg, `${prefix}kept`, 'migrated bytes');
    await putVersion(sg, `${prefix}erased`, 'first erased bytes');
    await putVersion(sg, `${prefix}erased`, 'second erased bytes');
    await erase(sg, `${prefix}erased`);
    await migrated(migrationId, userId, ['kept']);

    const d = await dispose({ migrationId, userId, targetSite: 'eu-ie', objectsPerUser: 4, sources: ['sg', 'us'], userPrefix: prefix, purgeErased: true });
    expect(d).toMatchObject({ deleted: 1, keptChanged: 0, residueCount: 0, residue: [] });
    expect(await versions(prefix)).toEqual([]);
    expect((await getCurrentManifest(eu, migrationId, userId))!.manifest.sourceDisposition).toMatchObject({ deleted: 1, purgedErased: 1, residueCount: 0 });
    const audit = await auditMigration(sites, migrationId, { clients: c });
    expect(audit.problems).toEqual([]);
    expect(audit).toMatchObject({ ok: true, residue: 0 });
  });
});
