import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import pLimit from 'p-limit';
import { restartTemporal } from '../src/stack/local-stack';
import { loadSitesFile } from '../src/config/sites';
import { createSiteClients, destroySiteClients, type SiteClients } from '../src/storage/clients';
import { migrationWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { at, get, listKeys, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { startPrivateStack, type PrivateStack } from './support/private-stack';
import { recordProcess } from './support/processes';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

/**
 * A migration under real network faults (toxiproxy between the worker and the sites sg and eu-ie), a
 * worker SIGKILLed mid-copy and the Temporal server SIGKILLed and restarted. Everything is asserted from
 * storage: every object arrived byte-identical, no upload is left incomplete, `clover verify` passes, and
 * it fails naming each object whose stored bytes are then flipped on disk. It runs on a stack of its
 * own, so the Temporal restart never touches the stack the other test files share.
 */
describe('faults: network faults, a killed worker and a restarted Temporal server', () => {
  const limit = pLimit(16);
  const workers: ChildProcess[] = [];
  let stack: PrivateStack;
  let c: SiteClients;
  let proxies: ProxiedSites | undefined;
  let connection: Connection | undefined;
  beforeAll(async () => {
    stack = await startPrivateStack('faults');
    c = createSiteClients(loadSitesFile(stack.sitesFile), { maxSockets: 32 });
  });
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    await proxies?.close().catch(() => undefined);
    await connection?.close();
    if (c) destroySiteClients(c);
    await stack?.stop();
  });

  it('every object arrives intact and verify proves it; flipped bytes are named', async () => {
    const id = uniqueId('faults');
    const MiB = 1024 * 1024;
    // 20 users, even ones in sg, odd ones in us; the last four live in Norway (target eu-no, not proxied).
    const users = Array.from({ length: 20 }, (_, i) => ({ userId: `${id}-u${String(i).padStart(2, '0')}`, country: i >= 16 ? 'NO' : 'DE', source: i % 2 === 0 ? 'sg' : 'us' }));
    const targetOf = (country: string) => (country === 'NO' ? 'eu-no' : 'eu-ie');
    const objects: { userId: string; key: string; source: string; target: string; sha: string; size: number }[] = [];
    for (const u of users) {
      // Multipart objects first in the users that start first (keys sort "big-" before "f-"), so parts are in flight during the faults.
      const sizes = [...(users.indexOf(u) < 3 ? [12 * MiB + 12345] : []), ...Array.from({ length: 40 }, (_, i) => (4 + ((i * 37 + users.indexOf(u) * 11) % 61)) * 1024)];
      sizes.forEach((size, i) => objects.push({ userId: u.userId, key: `users/${u.userId}/${size > 5 * MiB ? 'big' : 'f'}-${String(i).padStart(3, '0')}`, source: u.source, target: targetOf(u.country), sha: '', size }));
    }
    await Promise.all(objects.map((o) => limit(async () => {
      const body = randomBytes(o.size);
      o.sha = sha256(body);
      await put(c, o.source, o.key, body);
    })));

    proxies = await proxiedSites(['sg', 'eu-ie'], stack.sitesFile);
    const viaProxies = { ...stack.env, CLOVER_SITES: proxies.sitesFile };
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie', byCountry: { NO: 'eu-no' } },
      users: users.map(({ userId, country }) => ({ userId, country })), verify: 'full', concurrency: { users: 3, objectsPerUser: 3 },
    });
    const workerArgs = ['--part-mib', '5'];
    workers.push(startWorkerProcess(`${id}-a`, workerArgs, viaProxies));
    const started = await runCli(['start', '--plan', plan], viaProxies);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);

    // Progress as storage shows it: objects of this migration's users in their targets.
    const copied = async () => (await Promise.all(['eu-ie', 'eu-no'].map((t) => listKeys(c, t, `users/${id}-`)))).flat().length;
    const progress = async (what: string, n: number) => {
      const from = await copied();
      await waitUntil(`${n} more objects arrive ${what} (from ${from} of ${objects.length})`, copied, (k) => k >= from + n, { timeoutMs: 45_000, everyMs: 200 });
    };
    /** Applies toxics, waits until the copy makes `n` objects of progress under them, removes them. */
    const under = async (what: string, n: number, toxics: [string, Parameters<ProxiedSites['addToxic']>[1]][]) => {
      const names: [string, string][] = [];
      for (const [site, t] of toxics) names.push([site, await proxies!.addToxic(site, t)]);
      await progress(`under ${what}`, n);
      for (const [site, name] of names) await proxies!.removeToxic(site, name);
    };
    const phases: string[] = [];
    const phase = async (what: string, fn: () => Promise<void>) => {
      const t0 = Date.now();
      await fn();
      phases.push(`${what}: ${Date.now() - t0} ms, ${await copied()}/${objects.length} copied`);
    };

    await phase('copy running', () => progress('once the copy runs', 10));
    // Toxicity 1 (every connection) where the copy can still make progress under the toxic; resets and
    // stalls hit half the connections (toxiproxy draws per connection).
    await phase('latency + jitter', () => under('latency', 40, [
      ['sg', { type: 'latency', stream: 'downstream', attributes: { latency: 150, jitter: 100 } }],
      ['eu-ie', { type: 'latency', stream: 'upstream', attributes: { latency: 100, jitter: 100 } }],
    ]));
    await phase('bandwidth', () => under('a bandwidth limit', 30, [['eu-ie', { type: 'bandwidth', stream: 'upstream', attributes: { rate: 1000 } }]]));
    // Half the connections (each new one draws again) are reset 300 ms after they open.
    await phase('reset_peer', () => under('connection resets', 30, [
      ['sg', { type: 'reset_peer', stream: 'downstream', toxicity: 0.5, attributes: { timeout: 300 } }],
      ['eu-ie', { type: 'reset_peer', stream: 'upstream', toxicity: 0.5, attributes: { timeout: 300 } }],
    ]));
    await phase('timeout (stall)', () => under('stalls', 25, [
      ['eu-ie', { type: 'timeout', stream: 'upstream', toxicity: 0.5, attributes: { timeout: 1500 } }],
      ['sg', { type: 'timeout', stream: 'downstream', toxicity: 0.5, attributes: { timeout: 1500 } }],
    ]));
    // Every connection to sg is cut after 100 kB of responses: the GET in flight then loses its tail.
    await phase('limit_data (truncated GETs)', () => under('truncated GET bodies', 30, [
      ['sg', { type: 'limit_data', stream: 'downstream', attributes: { bytes: 100_000 } }],
    ]));
    await phase('slow_close', () => under('slow close', 30, [
      ['sg', { type: 'slow_close', stream: 'downstream', attributes: { delay: 500 } }],
      ['eu-ie', { type: 'slow_close', stream: 'upstream', attributes: { delay: 500 } }],
    ]));

    // A worker killed without warning mid-copy; a new one takes over (after the heartbeat timeout).
    await phase('worker SIGKILL', async () => {
      await progress('before the kill', 5);
      await stopProcess(at(workers, 0), 'SIGKILL');
      workers.push(startWorkerProcess(`${id}-b`, workerArgs, viaProxies));
      await progress('on the new worker', 30);
    });

    // The Temporal server killed without warning and started again on the same database.
    await phase('Temporal restart', async () => {
      const t = await restartTemporal(stack.dir);
      recordProcess(process.env.CLOVER_TEST_STACK_DIR!, { name: 'faults temporal (restarted)', pid: t.pid, binary: t.binary });
      await progress('after the restart', 30);
    });
    await proxies.clear();

    connection = await Connection.connect({ address: stack.temporalAddress });
    const result = (await new Client({ connection }).workflow.getHandle(migrationWorkflowId(id)).result()) as MigrationResult;
    console.log(`fault phases:\n  ${phases.join('\n  ')}\ncounters: ${JSON.stringify(result.counters)}`);
    expect(result).toMatchObject({ phase: 'completed', usersDone: users.length, usersFailed: 0 });
    expect(result.counters.objects).toBe(objects.length);

    // Every source object is in its target, byte for byte (read without the proxies).
    const mismatched: string[] = [];
    await Promise.all(objects.map((o) => limit(async () => {
      const t = await get(c, o.target, o.key);
      if (!t || sha256(t.body) !== o.sha) mismatched.push(`${o.target} ${o.key}: ${t ? `sha256 ${sha256(t.body)}` : 'missing'}`);
    })));
    expect(mismatched).toEqual([]);
    for (const t of ['eu-ie', 'eu-no']) {
      const s = c.get(t)!;
      const r = await s.s3.send(new ListMultipartUploadsCommand({ Bucket: s.bucket, Prefix: `users/${id}-` }));
      expect({ site: t, uploads: (r.Uploads ?? []).map((u) => u.Key) }).toEqual({ site: t, uploads: [] });
    }
    const ok = await runCli(['verify', id], stack.env);
    expect(ok.stdout).toMatch(/^OK/m);
    expect(ok.code).toBe(0);

    // Flip bytes in five stored files (eu-ie's data folder): the server still claims the old ETag.
    const victims = objects.filter((o) => o.target === 'eu-ie' && o.size < MiB).filter((_, i) => i % 97 === 5).slice(0, 5);
    expect(victims).toHaveLength(5);
    for (const v of victims) {
      const file = join(stack.dir, 'sites', 'eu-ie', c.get('eu-ie')!.bucket, v.key);
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from('FLIPPED'), 0, 7, 1000);
      closeSync(fd);
    }
    const bad = await runCli(['verify', id], stack.env);
    expect(bad.code).toBe(1);
    for (const v of victims) expect(bad.stdout).toContain(`key ${JSON.stringify(v.key)}`);
    expect(bad.stdout.match(/^MISMATCH/gm)).toHaveLength(5);
  }, 180_000);
});
