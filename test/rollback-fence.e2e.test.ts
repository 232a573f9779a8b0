import type { ChildProcess } from 'node:child_process';
import pLimit from 'p-limit';
import { destroySiteClients } from '../src/storage/clients';
import { clients, exists, get, listKeys, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

/**
 * A rollback started while users are deleting their sources (grace period just ended). Rollback fences
 * each user first (its deletion stops, its workflow is closed, found by id), so the two destructive
 * steps never interleave: afterwards every object exists in exactly one place, byte-identical.
 */
describe('rollback during source deletion', () => {
  const c = clients();
  let worker: ChildProcess;
  let proxy: ProxiedSites;
  beforeAll(async () => {
    proxy = await proxiedSites(['sg']);
    // Every request to the source takes 40 ms more: the deletion of 600 objects lasts several seconds.
    await proxy.addToxic('sg', { type: 'latency', stream: 'downstream', attributes: { latency: 40 } });
    worker = startWorkerProcess(uniqueId('fence-worker'), [], { CLOVER_SITES: proxy.sitesFile });
  });
  afterAll(async () => {
    await stopProcess(worker, 'SIGKILL');
    await proxy?.close().catch(() => undefined);
    destroySiteClients(c);
  });

  it('every object ends in exactly one place, with its bytes', async () => {
    const id = uniqueId('fence');
    const users = [`${id}-a`, `${id}-b`, `${id}-c`];
    const limit = pLimit(32);
    const bodies = new Map<string, Buffer>();
    await Promise.all(users.flatMap((u) => Array.from({ length: 200 }, (_, i) => limit(async () => {
      const key = `users/${u}/o-${String(i).padStart(3, '0')}`;
      const body = Buffer.alloc(4096, (i + u.length) % 251);
      bodies.set(key, body);
      await put(c, 'sg', key, body);
    }))));
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'checksum', sourceDisposition: 'delete-after-verify', gracePeriod: '1s', concurrency: { users: 3, objectsPerUser: 2 },
    });
    expect((await runCli(['start', '--plan', plan, '--wait'])).code).toBe(0);
    const inSource = async () => (await Promise.all(users.map((u) => listKeys(c, 'sg', `users/${u}/`)))).flat().length;
    await waitUntil('the source deletion has begun', inSource, (n) => n < bodies.size);

    const rb = await runCli(['rollback', id, '--wait']);
    expect(rb.stderr).toBe('');
    expect(rb.code).toBe(0);

    const problems: string[] = [];
    await Promise.all([...bodies].map(([key, body]) => limit(async () => {
      const [src, eu] = await Promise.all([get(c, 'sg', key), exists(c, 'eu-ie', key)]);
      if (!src && !eu) problems.push(`${key}: in neither site`);
      else if (src && eu) problems.push(`${key}: in both sites`);
      else if (src && sha256(src.body) !== sha256(body)) problems.push(`${key}: source bytes differ`);
    })));
    expect(problems).toEqual([]);
    // A complete rollback puts every object back at its source.
    expect(await inSource()).toBe(bodies.size);
  });
});
