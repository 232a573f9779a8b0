import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { SiteClients } from '../src/storage/clients';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId, userWorkflowId } from '../src/workflows/definitions';
import { TASK_QUEUE, clients, get, listKeys, put, runCli, sha256, startCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

/**
 * Bounded failure (issue #11), end to end with a real worker process and the real CLI: a fault that
 * repeats the same way on every read fails its user within two minutes, naming the key, while the
 * other users of the same migration complete; requests that hang are abandoned and retried, so a copy
 * whose connections stop answering still finishes within a minute or so.
 */
describe('bounded failure', () => {
  let c: SiteClients;
  let proxies: ProxiedSites | undefined;
  let connection: Connection | undefined;
  const workers: ChildProcess[] = [];
  /** A task queue of the test's own: a worker of another test (other sites file, other flags) never runs its work. */
  const own = (id: string) => ({ CLOVER_TASK_QUEUE: `${TASK_QUEUE}-${id}` });
  beforeAll(() => {
    c = clients();
  });
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    // Never removes toxics: toxiproxy's API can hang while a cut connection still holds buffered bytes.
    await proxies?.close().catch(() => undefined);
    await connection?.close();
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

    workers.push(startWorkerProcess(`worker-${id}`, [], own(id)));
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'full', concurrency: { users: 3, objectsPerUser: 4 },
    });
    const t0 = Date.now();
    const r = await runCli(['start', '--plan', plan, '--wait'], own(id));
    const elapsed = Date.now() - t0;
    expect(r.code).toBe(1);
    expect(elapsed).toBeLessThan(120_000);
    const failed = r.stdout.split('\n').filter((l) => l.includes('FAILED'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain(`FAILED user ${rotUser}: `);
    expect(failed[0]).toContain(`"${rotKey}"`);
    // Caught by the target: the source's MD5 ETag went as Content-MD5 (versitygw enforces it), no MD5 was hashed on the worker.
    expect(failed[0]).toMatch(/site sg, bucket \S+, ETag [0-9a-f]{32}: the bytes read do not match its ETag \(target eu-ie refused them as Content-MD5\) .*failed 3 times in a row.*restore the object at the source/);

    const st = JSON.parse((await runCli(['status', id, '--json'], own(id))).stdout) as { phase: string; usersDone: number; usersFailed: number };
    expect(st).toMatchObject({ phase: 'completed-with-failures', usersFailed: 1 });
    for (const o of objects.filter((x) => !x.key.startsWith(`users/${rotUser}/`))) {
      const t = await get(c, 'eu-ie', o.key);
      expect({ key: o.key, sha: t && sha256(t.body) }).toEqual({ key: o.key, sha: o.sha });
    }
    expect(await get(c, 'eu-ie', rotKey)).toBeUndefined();
  }, 150_000);

  it('requests that hang forever on half the connections are abandoned and retried: the copy finishes within 90 s', async () => {
    const id = uniqueId('hang');
    const users = [0, 1].map((i) => `${id}-u${i}`);
    const objects: { key: string; sha: string }[] = [];
    for (const u of users) {
      for (let i = 0; i < 40; i++) {
        const body = randomBytes(128 * 1024);
        const key = `users/${u}/f-${String(i).padStart(2, '0')}`;
        await put(c, 'sg', key, body);
        objects.push({ key, sha: sha256(body) });
      }
    }
    proxies = await proxiedSites(['sg']);
    // Slow enough that the hang below lands on a copy in progress, on connections it already holds.
    await proxies.addToxic('sg', { type: 'latency', stream: 'downstream', attributes: { latency: 300 } });
    workers.push(startWorkerProcess(`worker-${id}`, ['--idle-timeout-seconds', '5'], { CLOVER_SITES: proxies.sitesFile, ...own(id) }));
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'checksum', concurrency: { users: 2, objectsPerUser: 2 },
    });
    const cli = startCli(['start', '--plan', plan, '--wait'], { CLOVER_SITES: proxies.sitesFile, ...own(id) });
    const copied = async () => (await listKeys(c, 'eu-ie', `users/${id}-`)).length;
    await waitUntil('the copy is under way', copied, (n) => n >= 4, { timeoutMs: 60_000, everyMs: 100 });

    // From now on half the connections to sg (those open and every new one, drawn per connection) accept
    // requests and never answer; the toxic stays until the end.
    const hangStarted = Date.now();
    await proxies.addToxic('sg', { type: 'timeout', stream: 'downstream', toxicity: 0.5, attributes: { timeout: 0 } });
    const before = await copied();
    expect(before).toBeLessThan(objects.length / 2); // the hang lands on a copy with most of its work ahead
    const r = await cli.done;
    const took = Date.now() - hangStarted;
    console.log(`hang: copy finished ${took} ms after the hang started (${before} of ${objects.length} objects copied before it)`);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(took).toBeLessThan(90_000);
    for (const o of objects) {
      const t = await get(c, 'eu-ie', o.key);
      expect({ key: o.key, sha: t && sha256(t.body) }).toEqual({ key: o.key, sha: o.sha });
    }
  }, 180_000);

  it('with no idle timeout, a copy whose every request hangs stops heartbeating and Temporal retries it within 80 s', async () => {
    const id = uniqueId('wedge');
    const userId = `${id}-u0`;
    for (let i = 0; i < 30; i++) await put(c, 'sg', `users/${userId}/f-${String(i).padStart(2, '0')}`, randomBytes(128 * 1024));
    const wedged = await proxiedSites(['sg']);
    await wedged.addToxic('sg', { type: 'latency', stream: 'downstream', attributes: { latency: 300 } });
    // The idle timeout is out of the way (an hour): only the progress-driven heartbeat can end the attempt.
    // No local first pass: it is the regular activity's heartbeat timeout that is tested here.
    workers.push(startWorkerProcess(`worker-${id}`, ['--idle-timeout-seconds', '3600', '--local-first-pass-mib', '0'], { CLOVER_SITES: wedged.sitesFile, ...own(id) }));
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }],
      verify: 'checksum', concurrency: { users: 1, objectsPerUser: 2 },
    });
    try {
      const started = await runCli(['start', '--plan', plan], { CLOVER_SITES: wedged.sitesFile, ...own(id) });
      expect(started.code).toBe(0);
      await waitUntil('the copy is under way', async () => (await listKeys(c, 'eu-ie', `users/${userId}/`)).length, (n) => n >= 4, { timeoutMs: 60_000 });
      // Every connection to sg, open or new, now accepts requests and never answers.
      const hangStarted = Date.now();
      await wedged.addToxic('sg', { type: 'timeout', stream: 'downstream', attributes: { timeout: 0 } });
      connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
      const handle = new Client({ connection }).workflow.getHandle(userWorkflowId(id, userId));
      const copy = async () => (await handle.describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'copyUserObjects' || a.activityType?.name === 'firstPassSmallUser');
      const retried = await waitUntil('the wedged copy attempt is timed out and retried', copy, (a) => (a?.attempt ?? 0) >= 2, { timeoutMs: 100_000, everyMs: 500 });
      const took = Date.now() - hangStarted;
      console.log(`wedge: copy attempt ${retried?.attempt} scheduled ${took} ms after the hang started; last failure: ${retried?.lastFailure?.message}`);
      expect(took).toBeLessThan(80_000);
      expect(retried?.lastFailure?.message ?? '').toMatch(/heartbeat/i);
      await new Client({ connection }).workflow.getHandle(migrationWorkflowId(id)).terminate('test over');
    } finally {
      await wedged.close().catch(() => undefined);
    }
  }, 180_000);
});
