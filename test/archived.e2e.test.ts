import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { destroySiteClients } from '../src/storage/clients';
import { TASK_QUEUE, clients, listKeys, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { entry } from './support/at';

/**
 * Archived objects with the real worker, CLI and store. versitygw 1.7.0 stores every object as
 * STANDARD (a StorageClass on PUT is accepted and ignored) and answers RestoreObject with 501, so an
 * HTTP proxy in front of sg rewrites the storage class its listings report for keys named `cold*` to
 * GLACIER: everything else (the objects, reads, writes, Temporal) is real. The restore path is tested
 * against recorded responses in test/unit/versions.test.ts.
 */
describe('archived source objects', () => {
  const c = clients();
  let proxy: Server;
  let sitesFile: string;
  let worker: ChildProcess;
  const own = (id: string) => ({ CLOVER_TASK_QUEUE: `${TASK_QUEUE}-${id}`, CLOVER_SITES: sitesFile });
  const id = uniqueId('archived');

  beforeAll(async () => {
    const sg = entry(JSON.parse(readFileSync(process.env.CLOVER_SITES!, 'utf8')).sites as Record<string, { endpoint: string }>, 'sg');
    const upstream = new URL(sg.endpoint);
    proxy = createServer((req, res) => {
      const listing = req.method === 'GET' && /[?&]list-type=2/.test(req.url ?? '');
      const fwd = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        if (!listing) {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        up.on('data', (d: Buffer) => chunks.push(d));
        up.on('end', () => {
          // Each <Contents> whose key starts with "cold" is listed as GLACIER.
          const xml = Buffer.concat(chunks).toString('utf8').replace(/<Contents>(.*?)<\/Contents>/gs, (whole: string) => (
            /<Key>[^<]*\/cold[^<]*<\/Key>/.test(whole) ? whole.replace(/<StorageClass>[^<]*<\/StorageClass>/, '<StorageClass>GLACIER</StorageClass>') : whole
          ));
          const headers = { ...up.headers, 'content-length': String(Buffer.byteLength(xml)) };
          delete headers['transfer-encoding'];
          res.writeHead(up.statusCode ?? 502, headers);
          res.end(xml);
        });
      });
      fwd.on('error', (err) => res.writeHead(502).end(err.message));
      req.pipe(fwd);
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    const d = JSON.parse(readFileSync(process.env.CLOVER_SITES!, 'utf8'));
    d.sites.sg.endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    sitesFile = join(tmpPlanDir(), `${uniqueId('sites-archived')}.json`);
    writeFileSync(sitesFile, JSON.stringify(d), { mode: 0o600 });
    worker = startWorkerProcess(`worker-${id}`, [], own(id));
  });
  afterAll(async () => {
    await stopProcess(worker, 'SIGKILL');
    await new Promise((ok) => proxy?.close(ok));
    destroySiteClients(c);
  });

  const users = [`${id}-warm`, `${id}-cold`];
  const plan = (more: Record<string, unknown> = {}) => writePlan(tmpPlanDir(), {
    migrationId: id, sources: ['sg'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })), verify: 'full', ...more,
  });

  it('estimate prints objects and bytes per storage class and names each archived key', async () => {
    await put(c, 'sg', `users/${users[0]}/a`, 'warm bytes');
    await put(c, 'sg', `users/${users[1]}/b`, 'bytes next to the archived ones');
    await put(c, 'sg', `users/${users[1]}/cold-1`, 'archived bytes');
    await put(c, 'sg', `users/${users[1]}/cold-2`, 'more archived bytes');
    const r = await runCli(['estimate', '--plan', plan()], own(id));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain('CLASS GLACIER: 2 object(s), 33 B');
    expect(lines).toContain('CLASS STANDARD: 2 object(s), 41 B');
    expect(lines.filter((l) => l.startsWith('ARCHIVED'))).toEqual([
      `ARCHIVED site sg key users/${users[1]}/cold-1 (GLACIER): add "restoreArchived" to the plan or restore it`,
      `ARCHIVED site sg key users/${users[1]}/cold-2 (GLACIER): add "restoreArchived" to the plan or restore it`,
    ]);
    const json = JSON.parse((await runCli(['estimate', '--plan', plan(), '--json'], own(id))).stdout) as { archived: unknown[] };
    expect(json.archived).toHaveLength(2);
  });

  it('without "restoreArchived" the user with archived objects fails in its first pass, one line per key, with nothing archived copied or committed; the other user migrates', async () => {
    const r = await runCli(['start', '--plan', plan(), '--wait'], own(id));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`FAILED user ${users[1]}: ARCHIVED site sg key users/${users[1]}/cold-1 (GLACIER): add "restoreArchived" to the plan or restore it`);
    expect(r.stdout).toContain(`ARCHIVED site sg key users/${users[1]}/cold-2 (GLACIER): add "restoreArchived" to the plan or restore it`);
    // Its copy blocked each archived key as it listed it: none is in the EU site, and no manifest was committed.
    expect((await listKeys(c, 'eu-ie', `users/${users[1]}/`)).filter((k) => k.includes('/cold-'))).toEqual([]);
    expect(await listKeys(c, 'eu-ie', `_clover/migrations/${id}/manifests/${users[1]}`)).toEqual([]);
    expect(await listKeys(c, 'eu-ie', `users/${users[0]}/`)).toEqual([`users/${users[0]}/a`]);
  });
});
