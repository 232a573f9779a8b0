import { CreateBucketCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type ActivityDeps } from '../src/activities';
import type { CopyUserInput, CopyUserResult } from '../src/activities/copy';
import type { CommitManifestResult } from '../src/activities/commit';
import { manifestGenerationKey, manifestKey, stagingPrefix } from '../src/domain/layout';
import type { Manifest } from '../src/domain/manifest';
import { createSiteClients, destroySiteClients, type SiteClients } from '../src/storage/clients';
import { testDeps } from './deps';
import { get, listKeys, put, sha256, testSites, uniqueId } from './helpers';

/**
 * Passes of one user run as activities (MockActivityEnvironment) against the real S3 sites: a first pass,
 * then the application changes its data, then a delta pass. Checked in storage: the EU prefix equals the
 * sources both ways, the manifest generations, and what each pass sent (S3 requests counted per command).
 */
describe('delta passes against the real sites', () => {
  const deps = testDeps();
  /** Clients of their own that count every request by command, so a test can say what a pass cost. */
  const counted: SiteClients = createSiteClients(testSites(), { maxSockets: 32 });
  const requests = new Map<string, number>();
  for (const s of counted.values()) {
    s.s3.middlewareStack.add((next, context) => async (args) => {
      const name = `${s.name}:${context.commandName ?? '?'}`;
      requests.set(name, (requests.get(name) ?? 0) + 1);
      return next(args);
    }, { step: 'initialize', name: 'countRequests' });
    // Object GETs and PUTs of the copy take the lean path (storage/lean-requests.ts): counted under the same names.
    const lean = s.lean;
    if (lean) {
      const bump = (name: string) => requests.set(name, (requests.get(name) ?? 0) + 1);
      const [get, put] = [lean.get.bind(lean), lean.put.bind(lean)];
      lean.get = (...a) => (bump(`${s.name}:GetObjectCommand`), get(...a));
      lean.put = (...a) => (bump(`${s.name}:PutObjectCommand`), put(...a));
    }
  }
  const acts = createActivities({ ...deps, clients: counted } as ActivityDeps);
  afterAll(() => {
    destroySiteClients(deps.clients);
    destroySiteClients(counted);
  });
  const count = (pattern: RegExp) => [...requests].filter(([k]) => pattern.test(k)).reduce((n, [, v]) => n + v, 0);

  const user = () => {
    const migrationId = uniqueId('delta');
    const userId = `${migrationId}-u`;
    return { migrationId, userId, prefix: `users/${userId}/` };
  };

  /** One pass (copy, verify, commit) of generation `generation`. */
  async function pass(u: ReturnType<typeof user>, generation: number, opts: { verify?: 'full' | 'checksum' } = {}): Promise<CommitManifestResult> {
    let input: CopyUserInput = {
      migrationId: u.migrationId, userId: u.userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix: u.prefix, conflictPolicy: 'newest-wins',
      objectsPerUser: 8, generation, page: 0, transferred: { objects: 0, bytes: 0 },
    };
    for (;;) {
      const r = await new MockActivityEnvironment().run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, input);
      if (r.done) break;
      input = { ...input, page: r.page, cursor: r.cursor, transferred: r.transferred };
    }
    await new MockActivityEnvironment().run(acts.verifyUserObjects, {
      migrationId: u.migrationId, userId: u.userId, targetSite: 'eu-ie', prefix: u.prefix, mode: opts.verify ?? 'full', objectsPerUser: 8, generation,
    });
    return new MockActivityEnvironment().run(acts.commitManifest, {
      migrationId: u.migrationId, userId: u.userId, targetSite: 'eu-ie', userPrefix: u.prefix, sources: ['sg', 'us'], generation,
      kind: generation === 1 ? 'first' as const : 'delta' as const, committedAt: new Date().toISOString(),
    });
  }

  /** key → SHA-256 of every object under the prefix: the union of the sources (newest wins), and the EU copy. */
  async function state(site: string, prefix: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const k of await listKeys(deps.clients, site, prefix)) out.set(k, sha256((await get(deps.clients, site, k))!.body));
    return out;
  }
  const manifest = async (u: ReturnType<typeof user>) => JSON.parse((await get(deps.clients, 'eu-ie', manifestKey(u.migrationId, u.userId)))!.body.toString()) as Manifest;
  const erase = async (site: string, key: string) => {
    const s = deps.clients.get(site)!;
    await s.s3.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: key }));
  };

  it('copies new and changed objects, carries erasures over, records duplicates, and costs only listings for the rest', async () => {
    const u = user();
    const big = (fill: number) => Buffer.alloc(6 * 1024 * 1024, fill); // above the 5 MiB multipart threshold
    for (let i = 0; i < 20; i++) await put(deps.clients, i % 2 ? 'us' : 'sg', `${u.prefix}keep-${i}`, `keep ${i}`);
    await put(deps.clients, 'sg', `${u.prefix}edit.txt`, 'version 1');
    await put(deps.clients, 'us', `${u.prefix}video.bin`, big(1));
    await put(deps.clients, 'sg', `${u.prefix}gone.txt`, 'erase me');
    await put(deps.clients, 'us', `${u.prefix}gone-too.bin`, big(2));
    const first = await pass(u, 1);
    expect(first).toMatchObject({ generation: 1, objects: 24, pass: { kind: 'first', copied: 24 } });

    // The application: a new object, an edit (small and multipart), two erasures, a duplicate in both sources.
    await put(deps.clients, 'us', `${u.prefix}new.txt`, 'posted later');
    await put(deps.clients, 'sg', `${u.prefix}edit.txt`, 'version 2');
    await put(deps.clients, 'us', `${u.prefix}video.bin`, big(3));
    await erase('sg', `${u.prefix}gone.txt`);
    await erase('us', `${u.prefix}gone-too.bin`);
    await put(deps.clients, 'sg', `${u.prefix}dup.txt`, 'same bytes');
    await put(deps.clients, 'us', `${u.prefix}dup.txt`, 'same bytes');

    requests.clear();
    const second = await pass(u, 2);
    expect(second.pass).toEqual({ kind: 'delta', copied: 2, overwritten: 2, erased: 2, unchanged: 20, conflicts: 0 });
    expect(second).toMatchObject({ generation: 2, objects: 24, conflicts: 0 });
    // The 20 unchanged objects cost no read: GETs only for the 4 written objects' bytes (+ re-reads by
    // verify "full") and the duplicate's second copy; no HEAD or GET per unchanged key.
    expect(count(/^(sg|us):GetObjectCommand$/)).toBe(5);
    expect(count(/:HeadObjectCommand$/)).toBe(0);

    // The EU copy equals the sources, both ways.
    const sources = new Map([...(await state('sg', u.prefix)), ...(await state('us', u.prefix))]);
    expect(await state('eu-ie', u.prefix)).toEqual(sources);

    const m = await manifest(u);
    expect(m.generation).toBe(2);
    expect(m.erasures.map((e) => e.key).sort()).toEqual([`${u.prefix}gone-too.bin`, `${u.prefix}gone.txt`]);
    expect(m.erasures.find((e) => e.key.endsWith('gone.txt'))).toMatchObject({ sha256: sha256(Buffer.from('erase me')), sourceSite: 'sg', generation: 2 });
    const dup = m.entries.find((e) => e.key.endsWith('dup.txt'))!;
    expect([dup.sourceSite, ...(dup.alsoAt ?? []).map((a) => a.site)].sort()).toEqual(['sg', 'us']);
    // Every generation is kept, chained; the staging of committed passes is gone.
    const gen1 = JSON.parse((await get(deps.clients, 'eu-ie', manifestGenerationKey(u.migrationId, u.userId, 1)))!.body.toString()) as Manifest;
    expect(m.previousDigest).toBe(gen1.digest);
    expect(await listKeys(deps.clients, 'eu-ie', stagingPrefix(u.migrationId, u.userId))).toEqual([]);

    // A third pass with nothing changed writes nothing and reads nothing.
    requests.clear();
    const third = await pass(u, 3);
    expect(third.pass).toEqual({ kind: 'delta', copied: 0, overwritten: 0, erased: 0, unchanged: 24, conflicts: 0 });
    expect(count(/:(GetObject|HeadObject|PutObject|UploadPart|DeleteObject)Command$/) - count(/^eu-ie:(PutObject|GetObject|DeleteObject)Command$/)).toBe(0);
  });

  it('an EU copy changed by someone else is neither overwritten nor deleted, and is reported', async () => {
    const u = user();
    await put(deps.clients, 'sg', `${u.prefix}a.txt`, 'original a');
    await put(deps.clients, 'sg', `${u.prefix}b.txt`, 'original b');
    await pass(u, 1);
    // Someone else writes both EU copies; the application then edits a and erases b.
    await put(deps.clients, 'eu-ie', `${u.prefix}a.txt`, 'foreign a');
    await put(deps.clients, 'eu-ie', `${u.prefix}b.txt`, 'foreign b');
    await put(deps.clients, 'sg', `${u.prefix}a.txt`, 'edited a');
    await erase('sg', `${u.prefix}b.txt`);
    const r = await pass(u, 2);
    expect(r.pass).toMatchObject({ conflicts: 2, copied: 0, overwritten: 0, erased: 0 });
    expect(r.conflictKeys.map((c) => c.key).sort()).toEqual([`${u.prefix}a.txt`, `${u.prefix}b.txt`]);
    expect((await get(deps.clients, 'eu-ie', `${u.prefix}a.txt`))!.body.toString()).toBe('foreign a');
    expect((await get(deps.clients, 'eu-ie', `${u.prefix}b.txt`))!.body.toString()).toBe('foreign b');
    const m = await manifest(u);
    expect(m.conflicts.map((c) => c.kind)).toEqual(['target-changed', 'target-changed']);
    expect(m.entries).toEqual([]); // neither is Clover's any more
  });

  it('a delta pass interrupted after its writes and run again adopts its own copies: no conflict, no duplicate', async () => {
    const u = user();
    for (let i = 0; i < 5; i++) await put(deps.clients, 'sg', `${u.prefix}o-${i}`, `v1 ${i}`);
    await pass(u, 1);
    for (let i = 0; i < 5; i++) await put(deps.clients, 'sg', `${u.prefix}o-${i}`, `v2 ${i}`);
    await erase('sg', `${u.prefix}o-4`);
    // The interrupted attempt: copy ran to the end (EU copies written, o-4 erased), nothing committed.
    await new MockActivityEnvironment().run(acts.copyUserObjects, {
      migrationId: u.migrationId, userId: u.userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix: u.prefix, conflictPolicy: 'newest-wins' as const,
      objectsPerUser: 8, generation: 2, page: 0, transferred: { objects: 0, bytes: 0 },
    });
    const r = await pass(u, 2);
    expect(r.pass).toEqual({ kind: 'delta', copied: 0, overwritten: 4, erased: 1, unchanged: 0, conflicts: 0 });
    const m = await manifest(u);
    expect(m.entries.map((e) => e.key)).toEqual([0, 1, 2, 3].map((i) => `${u.prefix}o-${i}`));
    expect(await state('eu-ie', u.prefix)).toEqual(await state('sg', u.prefix));
  });

  it('a source bucket that lists nothing at all stops the pass before any erasure (a replaced or emptied bucket is not an erasure)', async () => {
    const u = user();
    for (let i = 0; i < 3; i++) await put(deps.clients, 'sg', `${u.prefix}o-${i}`, `object ${i}`);
    await pass(u, 1);
    // The sites file now points sg at an empty bucket (as after a mistaken edit, or a bucket emptied by accident).
    const empty = `empty-${u.migrationId}`.toLowerCase().slice(0, 60);
    await deps.clients.get('sg')!.s3.send(new CreateBucketCommand({ Bucket: empty }));
    const sites = testSites();
    const swapped = createSiteClients({ ...sites, sg: { ...sites.sg!, bucket: empty } }, { maxSockets: 8 });
    try {
      const wrong = createActivities({ ...deps, clients: swapped } as ActivityDeps);
      const err = await new MockActivityEnvironment().run(wrong.copyUserObjects, {
        migrationId: u.migrationId, userId: u.userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix: u.prefix, conflictPolicy: 'newest-wins' as const,
        objectsPerUser: 8, generation: 2, page: 0, transferred: { objects: 0, bytes: 0 },
      }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ type: 'SourceEmpty', nonRetryable: true });
      expect((err as Error).message).toMatch(/source site sg .* lists no object at all, while manifest generation 1 records 3 object\(s\)/);
    } finally {
      destroySiteClients(swapped);
    }
    // Nothing was erased: the EU copy is whole.
    expect([...(await state('eu-ie', u.prefix)).keys()]).toHaveLength(3);
  });

  it('refuses to commit over a generation another writer committed first', async () => {
    const u = user();
    await put(deps.clients, 'sg', `${u.prefix}x`, 'x');
    await pass(u, 1);
    await pass(u, 2);
    // A stale writer that built generation 2 as well: refused, nothing overwritten.
    const err = await new MockActivityEnvironment({ activityId: 'a-stale-writer' }).run(acts.commitManifest, {
      migrationId: u.migrationId, userId: u.userId, targetSite: 'eu-ie', userPrefix: u.prefix, sources: ['sg', 'us'], generation: 2, kind: 'delta' as const, committedAt: new Date().toISOString(),
    }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ type: 'ManifestConflict' });
    expect((await manifest(u)).generation).toBe(2);
  });
});
