import { DeleteObjectCommand, GetObjectCommand, type GetObjectCommandInput, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import type { VerifyUserInput } from '../src/activities/verify';
import { auditMigration } from '../src/audit/verify';
import { loadSitesFile, type Sites } from '../src/config/sites';
import { createSiteClients, destroySiteClients, type Site, type SiteClients } from '../src/storage/clients';
import { StorageError } from '../src/storage/errors';
import type { GetOptions, LeanClient } from '../src/storage/lean-requests';
import { testDeps } from './deps';
import { get, put, testSites, uniqueId } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';

/**
 * A failed read during verify is an error, never a mismatch: it must not re-copy anything, and
 * `clover verify` reports it as an error. The faults are real: GetObject goes to the real target with a
 * wrong secret key (the site answers 403 SignatureDoesNotMatch), or through a proxy that resets every
 * connection. Every other request reaches the site normally, so only the object reads fail.
 */
describe('verify: read errors are errors, never mismatches', () => {
  const deps = testDeps();
  const acts = createActivities(deps);
  const sites = testSites();
  const wrongKey: Sites = Object.fromEntries(Object.entries(sites).map(([n, s]) => [n, { ...s, credentials: { accessKeyId: s.credentials!.accessKeyId, secretAccessKey: 'not-the-secret' } }]));
  const denied = createSiteClients(wrongKey, { maxSockets: 8 });
  let proxy: ProxiedSites;
  let reset: SiteClients;

  beforeAll(async () => {
    proxy = await proxiedSites(['eu-ie']);
    await proxy.addToxic('eu-ie', { type: 'reset_peer', attributes: { timeout: 0 } });
    reset = createSiteClients(loadSitesFile(proxy.sitesFile), { maxSockets: 8 });
  });
  afterAll(async () => {
    destroySiteClients(deps.clients);
    destroySiteClients(denied);
    destroySiteClients(reset);
    await proxy.close().catch(() => undefined);
  });

  /**
   * `clients` with GetObject of user data sent through `reads` instead (Clover's own records still read
   * normally): the SDK's and the lean path's (storage/lean-requests.ts) alike.
   */
  const readsThrough = (clients: SiteClients, reads: SiteClients): SiteClients => new Map([...clients].map(([name, s]): [string, Site] => {
    const send = ((cmd: unknown, opts?: unknown) => {
      const bad = reads.get(name)!.s3;
      const target = cmd instanceof GetObjectCommand && cmd.input.Key?.startsWith('users/') ? bad : s.s3;
      return (target.send as (c: unknown, o?: unknown) => Promise<unknown>)(cmd, opts);
    }) as S3Client['send'];
    // The lean path carries Clover's own records too: only reads of user objects take the faulty one.
    const badLean = reads.get(name)!.lean;
    const lean = s.lean && badLean ? ({
      get: (input: GetObjectCommandInput, signal?: AbortSignal, o?: GetOptions) => (input.Key?.startsWith('users/') ? badLean : s.lean!).get(input, signal, o),
      put: s.lean.put.bind(s.lean),
    } as unknown as LeanClient) : badLean;
    return [name, { ...s, s3: { send } as unknown as S3Client, lean }];
  }));

  /** One user copied, verified and committed for real; then its sources are deleted, so any re-copy would fail loudly. */
  const migrated = async () => {
    const migrationId = uniqueId('readerr');
    const userId = `${migrationId}-u`;
    const prefix = `users/${userId}/`;
    for (let i = 0; i < 3; i++) await put(deps.clients, 'sg', `${prefix}o-${i}`, `body ${i}`);
    await new MockActivityEnvironment().run(acts.copyUserObjects, {
      migrationId, userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix, conflictPolicy: 'newest-wins' as const,
      objectsPerUser: 4, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 },
    });
    const sg = deps.clients.get('sg')!;
    for (let i = 0; i < 3; i++) await sg.s3.send(new DeleteObjectCommand({ Bucket: sg.bucket, Key: `${prefix}o-${i}` }));
    const before = await Promise.all([0, 1, 2].map(async (i) => (await get(deps.clients, 'eu-ie', `${prefix}o-${i}`))!));
    const input: VerifyUserInput = { migrationId, userId, targetSite: 'eu-ie', prefix, mode: 'full', objectsPerUser: 4, generation: 1 };
    return { migrationId, userId, prefix, before, input };
  };
  const unchanged = async (prefix: string, before: { etag: string; body: Buffer; metadata: Record<string, string> }[]) => {
    for (let i = 0; i < 3; i++) {
      const now = (await get(deps.clients, 'eu-ie', `${prefix}o-${i}`))!;
      expect({ etag: now.etag, body: now.body.toString(), metadata: now.metadata }).toEqual({ etag: before[i]!.etag, body: before[i]!.body.toString(), metadata: before[i]!.metadata });
    }
  };

  it('access denied on the pinned read: a permanent failure naming site and key, not a mismatch; nothing re-copied', async () => {
    const { prefix, before, input } = await migrated();
    const verify = createActivities({ ...deps, clients: readsThrough(deps.clients, denied) }).verifyUserObjects;
    const err = await new MockActivityEnvironment().run(verify, input).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.type).toBe('SignatureDoesNotMatch');
    expect(f.message).toMatch(new RegExp(`GetObject failed at site eu-ie, bucket .*, key "${prefix}o-\\d"`));
    expect(f.message).not.toMatch(/verification|mismatch/i);
    await unchanged(prefix, before);
  });

  it('a connection reset on the pinned read: a transient error the retry policy retries, not a mismatch; nothing re-copied', async () => {
    const { prefix, before, input } = await migrated();
    const verify = createActivities({ ...deps, clients: readsThrough(deps.clients, reset) }).verifyUserObjects;
    const err = await new MockActivityEnvironment().run(verify, input).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ permanent: false });
    expect((err as Error).message).toMatch(new RegExp(`GetObject failed at site eu-ie, bucket .*, key "${prefix}o-\\d"`));
    await unchanged(prefix, before);

    // Once reads work again the same input verifies every object, still without a re-copy.
    expect(await new MockActivityEnvironment().run(acts.verifyUserObjects, input)).toMatchObject({ verified: 3, recopied: 0 });
  });

  it('clover verify\'s audit reports an unreadable object as an error, not a mismatch', async () => {
    const { migrationId, userId, prefix, input } = await migrated();
    await new MockActivityEnvironment().run(acts.verifyUserObjects, input);
    await new MockActivityEnvironment().run(acts.commitManifest, { migrationId, userId, targetSite: 'eu-ie', userPrefix: prefix, sources: ['sg', 'us'], generation: 1, kind: 'first' as const, committedAt: new Date().toISOString() });

    const r = await auditMigration(sites, migrationId, { clients: readsThrough(deps.clients, denied) });
    expect(r.ok).toBe(false);
    expect(r.problems).toHaveLength(3);
    for (const p of r.problems) expect(p).toMatchObject({ kind: 'error', site: 'eu-ie', problem: expect.stringMatching(/could not be read, so it was not checked: .*SignatureDoesNotMatch/) });
    expect(await auditMigration(sites, migrationId, { clients: deps.clients })).toMatchObject({ ok: true, problems: [] });
  });
});
