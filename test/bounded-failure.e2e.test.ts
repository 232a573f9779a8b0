import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { SiteClients } from '../src/storage/clients';
import { destroySiteClients } from '../src/storage/clients';
import { clients, get, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * Bounded failure (issue #11), end to end with a real worker process and the real CLI: a fault that
 * repeats the same way on every read fails its user within two minutes, naming the key, while the
 * other users of the same migration complete.
 */
describe('bounded failure', () => {
  let c: SiteClients;
  const workers: ChildProcess[] = [];
  beforeAll(() => {
    c = clients();
  });
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    destroySiteClients(c);
  });

  it('a source object rotted on disk fails its user within two minutes naming the key; the other users complete', async () => {
    const id = uniqueId('rot');
    const users = [0, 1, 2].map((i) => `${id}-u${i}`);
    const rotUser = users[1]!;
    const rotKey = `users/${rotUser}/rot.bin`;
    const objects: { key: string; sha: string }[] = [];
    for (const u of users) {
      for (const name of ['a.bin', 'b.bin', ...(u === rotUser ? ['rot.bin'] : [])]) {
        const body = randomBytes(64 * 1024);
        const key = `users/${u}/${name}`;
        await put(c, 'sg', key, body);
        objects.push({ key, sha: sha256(body) });
      }
    }
    // Bytes changed under the store: versitygw still serves the ETag (the MD5) it stored with the object.
    const file = join(process.env.CLOVER_TEST_STACK_DIR!, 'sites', 'sg', c.get('sg')!.bucket, rotKey);
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from('ROTTED'), 0, 6, 1000);
    closeSync(fd);

    workers.push(startWorkerProcess(`worker-${id}`));
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'full', concurrency: { users: 3, objectsPerUser: 4 },
    });
    const t0 = Date.now();
    const r = await runCli(['start', '--plan', plan, '--wait']);
    const elapsed = Date.now() - t0;
    expect(r.code).toBe(1);
    expect(elapsed).toBeLessThan(120_000);
    const failed = r.stdout.split('\n').filter((l) => l.includes('FAILED'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain(`FAILED user ${rotUser}: `);
    expect(failed[0]).toContain(`"${rotKey}"`);
    expect(failed[0]).toMatch(/site sg, bucket \S+, ETag [0-9a-f]{32}: the bytes read do not match its ETag .*failed 3 times in a row.*restore the object at the source/);

    const st = JSON.parse((await runCli(['status', id, '--json'])).stdout) as { phase: string; usersDone: number; usersFailed: number };
    expect(st).toMatchObject({ phase: 'completed-with-failures', usersFailed: 1 });
    for (const o of objects.filter((x) => !x.key.startsWith(`users/${rotUser}/`))) {
      const t = await get(c, 'eu-ie', o.key);
      expect({ key: o.key, sha: t && sha256(t.body) }).toEqual({ key: o.key, sha: o.sha });
    }
    expect(await get(c, 'eu-ie', rotKey)).toBeUndefined();
  }, 150_000);
});
