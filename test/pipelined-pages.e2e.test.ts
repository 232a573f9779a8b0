import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockActivityEnvironment } from '@temporalio/testing';
import pLimit from 'p-limit';
import { createActivities } from '../src/activities';
import type { CopyCheckpoint, CopyUserInput, CopyUserResult } from '../src/activities/copy';
import type { Sites } from '../src/config/sites';
import { stagingPrefix } from '../src/domain/layout';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import { testDeps } from './deps';
import { get, listKeys, put, sha256, testSites, uniqueId } from './helpers';
import { forward } from './support/forward';
import { waitUntil } from './support/wait';

/**
 * One heavy user's pages overlap (issue #13, item 3): with listing pages of 10 keys and 16 objects per
 * user, the target sees 16 PUTs of that one user in flight at once (held at a proxy in front of the
 * target until the test lets them go), which only two pages copying at once can give. Then every object
 * lands with its bytes, every page is staged once and in order, and a retry from a checkpoint in the
 * middle finishes the same pass.
 */
describe('pipelined pages of one user', () => {
  const base = testDeps();
  let proxy: Server;
  const held: { key: string; go: () => void }[] = [];
  let open = false;
  let maxHeld = 0;
  /** Object PUTs of users sent on and not yet answered, and the most at any moment. */
  let forwarding = 0;
  let maxInFlight = 0;
  let deps: ReturnType<typeof testDeps>;

  beforeAll(async () => {
    const eu = testSites()['eu-ie']!;
    const upstream = new URL(eu.endpoint!);
    proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
        const userPut = req.method === 'PUT' && path.includes('/users/');
        const go = () => {
          if (userPut) {
            maxInFlight = Math.max(maxInFlight, ++forwarding);
            res.on('close', () => forwarding--);
          }
          forward(upstream, req, res, Buffer.concat(chunks));
        };
        // Hold the object PUTs of the heavy user (not Clover's own records) until the test opens the gate.
        if (userPut && !open) {
          held.push({ key: path, go });
          maxHeld = Math.max(maxHeld, held.length);
          return;
        }
        go();
      });
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    const sites: Sites = { ...testSites(), 'eu-ie': { ...eu, endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` } };
    deps = { ...base, clients: createSiteClients(sites, { maxSockets: 64 }), batch: { maxPages: 20, maxMillis: 60_000, listPageSize: 10 } };
  });
  afterAll(async () => {
    for (const h of held.splice(0)) h.go();
    destroySiteClients(base.clients);
    if (deps) destroySiteClients(deps.clients);
    await new Promise((ok) => proxy.close(ok));
  });

  it('keeps 16 objects of one user in flight across page ends, then stages every page once', async () => {
    const migrationId = uniqueId('pipeline');
    const userId = `${migrationId}-heavy`;
    const prefix = `users/${userId}/`;
    const body = (i: number) => Buffer.alloc(2048 + i, i);
    for (let i = 0; i < 45; i++) await put(base.clients, 'sg', `${prefix}o-${String(i).padStart(3, '0')}`, body(i));
    const acts = createActivities(deps);
    const input: CopyUserInput = {
      migrationId, userId, sources: ['sg', 'us'], targetSite: 'eu-ie', prefix, conflictPolicy: 'newest-wins',
      objectsPerUser: 16, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 },
    };
    const env = new MockActivityEnvironment();
    let last: CopyCheckpoint | undefined;
    env.on('heartbeat', (d: unknown) => { last = d as CopyCheckpoint; });
    const running = env.run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, input);
    running.catch(() => undefined);

    // 16 PUTs of one user at once, with pages of 10 keys: the second page copies while the first finishes.
    await waitUntil('16 PUTs of the user are held at the target', () => held.length, (n) => n >= 16);
    const pagesHeld = new Set(held.map((h) => Math.floor(Number(/o-(\d+)$/.exec(h.key)![1]) / 10)));
    expect(pagesHeld.size).toBeGreaterThanOrEqual(2);
    // Nothing is staged past a page whose copies are not all done: the checkpoint is still at page 0.
    expect(last?.page ?? 0).toBe(0);
    expect(await listKeys(base.clients, 'eu-ie', stagingPrefix(migrationId, userId))).toEqual([]);

    open = true;
    for (const h of held.splice(0)) h.go();
    const r = await running;
    expect(r).toMatchObject({ done: true, objects: 45, transferred: { objects: 45 } });
    expect(maxHeld).toBeLessThanOrEqual(16); // the per-user limit still holds
    for (let i = 0; i < 45; i++) {
      const got = await get(base.clients, 'eu-ie', `${prefix}o-${String(i).padStart(3, '0')}`);
      expect(sha256(got!.body)).toBe(sha256(body(i)));
    }
    // Five pages of 10, 10, 10, 10, 5 keys, each staged once, in order, covering every key once.
    const staged = await listKeys(base.clients, 'eu-ie', stagingPrefix(migrationId, userId));
    expect(staged.map((k) => Number(k.replace(/^.*\//, '').replace('.json', '')))).toEqual([0, 1, 2, 3, 4]);
    const records = await Promise.all(staged.map(async (k) => JSON.parse((await get(base.clients, 'eu-ie', k))!.body.toString()) as { page: number; entries: { key: string }[] }));
    expect(records.map((s) => s.page)).toEqual([0, 1, 2, 3, 4]);
    expect(records.flatMap((s) => s.entries.map((e) => e.key))).toEqual(Array.from({ length: 45 }, (_, i) => `${prefix}o-${String(i).padStart(3, '0')}`));

    // A retry from a checkpoint in the middle (page 2, as a crash would leave it) redoes pages 2 to 4
    // only, sends nothing again (every copy is found in the target), and stages the same records.
    const retried = await new MockActivityEnvironment({
      heartbeatDetails: { page: 2, cursor: records[1]!.entries.at(-1)!.key, transferred: r.transferred, blocked: [], blockedCount: 0 } satisfies CopyCheckpoint,
    }).run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, input);
    expect(retried).toMatchObject({ done: true, objects: 25, transferred: { objects: 45 } });
    expect(await listKeys(base.clients, 'eu-ie', stagingPrefix(migrationId, userId))).toEqual(staged);

    // Verification reads the next page's staging and listing while it checks this one: every object, once.
    for (const mode of ['checksum', 'full'] as const) {
      const v = await new MockActivityEnvironment().run(acts.verifyUserObjects, { migrationId, userId, targetSite: 'eu-ie', prefix, mode, objectsPerUser: 16, generation: 1 });
      expect(v).toMatchObject({ verified: 45, verifiedBytes: Array.from({ length: 45 }, (_, i) => body(i).length).reduce((a, b) => a + b), recopied: 0 });
    }
    // A retry after two verified pages checks the other three.
    const rest = await new MockActivityEnvironment({ heartbeatDetails: { pagesDone: 2, result: { verified: 20, verifiedBytes: 0, recopied: 0, transferredObjects: 0, transferredBytes: 0 } } })
      .run(acts.verifyUserObjects, { migrationId, userId, targetSite: 'eu-ie', prefix, mode: 'checksum' as const, objectsPerUser: 16, generation: 1 });
    expect(rest).toMatchObject({ verified: 45 });
  });

  it('shares the worker\'s object slots between users: at most that many objects in flight in all', async () => {
    const migrationId = uniqueId('slots');
    const body = (u: number, i: number) => Buffer.alloc(1024 + i, u * 16 + i);
    const users = [0, 1, 2].map((u) => ({ u, userId: `${migrationId}-u${u}`, prefix: `users/${migrationId}-u${u}/` }));
    for (const { u, prefix } of users) for (let i = 0; i < 12; i++) await put(base.clients, 'sg', `${prefix}o-${i}`, body(u, i));
    // 5 objects in flight for the whole worker, 16 per user: three users would send 36 PUTs at once without it.
    const slots = pLimit(5);
    const acts = createActivities({ ...deps, objectSlots: slots });
    open = false;
    maxHeld = 0;
    const running = users.map(({ userId, prefix }) => new MockActivityEnvironment().run<[CopyUserInput], CopyUserResult, typeof acts.copyUserObjects>(acts.copyUserObjects, {
      migrationId, userId, sources: ['sg'], targetSite: 'eu-ie', prefix, conflictPolicy: 'newest-wins',
      objectsPerUser: 16, generation: 1, page: 0, transferred: { objects: 0, bytes: 0 },
    }));
    for (const r of running) r.catch(() => undefined);
    // Five PUTs reach the target and the other users' keys wait for a slot, not at the target.
    await waitUntil('5 PUTs held at the target and more waiting for a worker slot', () => ({ held: held.length, waiting: slots.pendingCount }), (n) => n.held >= 5 && n.waiting > 0);
    expect(held.length).toBe(5);
    expect(slots.activeCount).toBe(5);
    open = true;
    maxInFlight = 0;
    for (const h of held.splice(0)) h.go();
    const results = await Promise.all(running);
    expect(results.map((r) => r.objects)).toEqual([12, 12, 12]);
    expect(maxHeld).toBe(5);
    expect(maxInFlight).toBeLessThanOrEqual(5);
    for (const { u, prefix } of users) {
      for (let i = 0; i < 12; i++) expect(sha256((await get(base.clients, 'eu-ie', `${prefix}o-${i}`))!.body)).toBe(sha256(body(u, i)));
    }
  });
});
