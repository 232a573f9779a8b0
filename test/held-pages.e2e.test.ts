import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import type { FirstPassInput, FirstPassResult } from '../src/activities/small-user';
import type { StagedDetails } from '../src/activities/scaffold';
import type { Sites } from '../src/config/sites';
import { manifestKey, stagingKey, stagingPrefix } from '../src/domain/layout';
import type { Manifest } from '../src/domain/manifest';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import { writeStaging } from '../src/storage/staging';
import { testDeps } from './deps';
import { get, listKeys, put, sha256, testSites, uniqueId } from './helpers';
import { forward } from './support/forward';

/**
 * A one-page user's first pass keeps its page in memory (issue #13, item 4): verify and commit read it
 * there, no staging record is written or read, and every way an attempt can end still commits the whole
 * user. Against the real sites, through a proxy in front of the target that records every request.
 */
describe('first pass of a one-page user, held in memory', () => {
  const base = testDeps();
  let proxy: Server;
  const requests: { method: string; path: string }[] = [];
  let deps: ReturnType<typeof testDeps>;

  beforeAll(async () => {
    const eu = testSites()['eu-ie']!;
    const upstream = new URL(eu.endpoint!);
    proxy = createServer((req, res) => {
      requests.push({ method: req.method ?? '', path: decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname) });
      forward(upstream, req, res);
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    const sites: Sites = { ...testSites(), 'eu-ie': { ...eu, endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` } };
    deps = { ...base, clients: createSiteClients(sites, { maxSockets: 16 }) };
  });
  afterAll(async () => {
    destroySiteClients(base.clients);
    if (deps) destroySiteClients(deps.clients);
    await new Promise((ok) => proxy.close(ok));
  });

  const body = (i: number) => Buffer.alloc(1000 + i * 7, i);
  async function seedUser(tag: string, n: number) {
    const migrationId = uniqueId(tag);
    const userId = `${migrationId}-u`;
    const prefix = `users/${userId}/`;
    for (let i = 0; i < n; i++) await put(base.clients, i % 2 ? 'us' : 'sg', `${prefix}o-${i}`, body(i));
    const input: FirstPassInput = {
      copy: { migrationId, userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix, conflictPolicy: 'newest-wins', objectsPerUser: 4, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 } },
      verify: { migrationId, userId, targetSite: 'eu-ie', prefix, mode: 'full', objectsPerUser: 4, generation: 1 },
      commit: { migrationId, userId, targetSite: 'eu-ie', userPrefix: prefix, sources: ['sg', 'us'], generation: 1, kind: 'first', committedAt: new Date().toISOString() },
    };
    return { migrationId, userId, prefix, input };
  }
  /** The committed manifest lists every object with the SHA-256 of its bytes, and the target holds those bytes. */
  async function expectCommitted(u: { migrationId: string; userId: string; prefix: string }, n: number) {
    const m = JSON.parse((await get(base.clients, 'eu-ie', manifestKey(u.migrationId, u.userId)))!.body.toString()) as Manifest;
    expect(m.generation).toBe(1);
    expect(m.entries.map((e) => e.key).sort()).toEqual(Array.from({ length: n }, (_, i) => `${u.prefix}o-${i}`).sort());
    for (const e of m.entries) {
      const i = Number(e.key.replace(/^.*o-/, ''));
      expect(e.sha256).toBe(sha256(body(i)));
      expect(sha256((await get(base.clients, 'eu-ie', e.key))!.body)).toBe(sha256(body(i)));
    }
    expect(await listKeys(base.clients, 'eu-ie', stagingPrefix(u.migrationId, u.userId))).toEqual([]);
  }
  const run = (acts: ReturnType<typeof createActivities>, input: FirstPassInput, info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
    new MockActivityEnvironment(info).run<[FirstPassInput], FirstPassResult, typeof acts.firstPassSmallUser>(acts.firstPassSmallUser, input);

  it('copies, verifies and commits every object with no staging request at all', async () => {
    const u = await seedUser('held', 12);
    const acts = createActivities(deps);
    requests.length = 0;
    const r = await run(acts, u.input);
    expect(r.copy).toMatchObject({ done: true, objects: 12, blockedCount: 0 });
    expect(r.copy).not.toHaveProperty('held'); // the page never goes back to the workflow
    expect(r.verify).toMatchObject({ verified: 12, recopied: 0 });
    expect(r.commit).toMatchObject({ objects: 12, copied: 12, generation: 1 });
    await expectCommitted(u, 12);
    // One listing of the staging prefix (clearing whatever an earlier run staged), and nothing else there.
    const staging = requests.filter((q) => q.path.includes('/staging/') || q.path.endsWith('/staging'));
    expect(staging.filter((q) => q.method !== 'GET')).toEqual([]);
    expect(requests.filter((q) => q.method === 'PUT' && q.path.includes('/staging/'))).toEqual([]);
  });

  it('an earlier run\'s staging record (a `clover retry`) is removed, not committed', async () => {
    const u = await seedUser('held-stale', 3);
    const acts = createActivities(deps);
    const ghost = `${u.prefix}ghost-from-an-earlier-run`;
    await writeStaging(base.clients.get('eu-ie')!, u.migrationId, u.userId, {
      generation: 1, page: 0, entries: [{ key: ghost, size: 1, sha256: sha256('x'), sourceSite: 'sg', sourceEtag: '"x"', targetEtag: '"x"', targetChecksum: '', outcome: 'copied' } as never], conflicts: [], erasures: [],
    });
    expect(await listKeys(base.clients, 'eu-ie', stagingPrefix(u.migrationId, u.userId))).toEqual([stagingKey(u.migrationId, u.userId, 1, 0)]);
    await run(acts, u.input);
    await expectCommitted(u, 3);
  });

  it('a retry after a crash in the held verify or commit copies again and commits the whole user', async () => {
    const u = await seedUser('held-retry', 5);
    const acts = createActivities(deps);
    // What the crashed attempt's last heartbeat said: the held verify was under way.
    const heartbeatDetails: StagedDetails = { stage: 'held', details: { pagesDone: 0, result: { verified: 2, verifiedBytes: 0, recopied: 0, transferredObjects: 0, transferredBytes: 0 } }, carry: {} };
    // The crashed attempt's held copy: its objects are in the target, its page was never staged.
    const crashed = await new MockActivityEnvironment().run(acts.copyUserObjects, u.input.copy, { hold: true });
    expect(crashed).toMatchObject({ done: true, objects: 5, transferred: { objects: 5 } });
    expect(await listKeys(base.clients, 'eu-ie', stagingPrefix(u.migrationId, u.userId))).toEqual([]);
    const r = await run(acts, u.input, { attempt: 2, heartbeatDetails });
    expect(r.commit).toMatchObject({ objects: 5, generation: 1 });
    expect(r.copy.transferred.objects).toBe(0); // found in the target, nothing sent again
    await expectCommitted(u, 5);
  });

  it('a retry whose held commit landed finds it and commits nothing twice', async () => {
    const u = await seedUser('held-landed', 4);
    const acts = createActivities(deps);
    const first = await run(acts, u.input);
    requests.length = 0;
    const again = await run(acts, u.input, { attempt: 2, heartbeatDetails: { stage: 'held', carry: {} } satisfies StagedDetails });
    expect(again.commit).toMatchObject({ digest: first.commit!.digest, generation: 1, objects: 4 });
    expect(requests.filter((q) => q.method === 'PUT' && q.path.includes(`/users/${u.userId}/`))).toEqual([]);
    await expectCommitted(u, 4);
  });
});
