import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { destroySiteClients } from '../src/storage/clients';
import { clients, listKeys, runCli, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { entry } from './support/at';
import { forward } from './support/forward';

/**
 * A store that ignores If-Match on DeleteObject (some S3-compatible stores do): an HTTP proxy in front of
 * the real site that carries out every conditional DELETE as a plain one. Clover must prove the guard
 * holds before it deletes anywhere: `start` of a delete-after-verify plan and `rollback` refuse such a site.
 */
describe('conditional deletes are probed before anything is deleted', () => {
  const c = clients();
  let proxy: Server;
  let sitesFile: string;

  beforeAll(async () => {
    const sg = entry(JSON.parse(readFileSync(process.env.CLOVER_SITES!, 'utf8')).sites as Record<string, { endpoint: string }>, 'sg');
    const upstream = new URL(sg.endpoint);
    const site = c.get('sg')!;
    proxy = createServer((req, res) => {
      if (req.method === 'DELETE' && req.headers['if-match']) {
        // Dropping the header would break the request's signature: do the unconditional delete instead.
        const key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.split('/').slice(2).join('/'));
        site.s3.send(new DeleteObjectCommand({ Bucket: site.bucket, Key: key })).then(
          () => res.writeHead(204).end(),
          (err: Error) => res.writeHead(500).end(err.message),
        );
        req.resume();
        return;
      }
      forward(upstream, req, res);
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    const d = JSON.parse(readFileSync(process.env.CLOVER_SITES!, 'utf8'));
    d.sites.sg.endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    sitesFile = join(tmpPlanDir(), `${uniqueId('sites-ignoring-if-match')}.json`);
    writeFileSync(sitesFile, JSON.stringify(d), { mode: 0o600 });
  });
  afterAll(async () => {
    await new Promise((ok) => proxy?.close(ok));
    destroySiteClients(c);
  });

  const plan = (more: Record<string, unknown>) => writePlan(tmpPlanDir(), {
    migrationId: uniqueId('probe'), sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId: 'u-1', country: 'DE' }], ...more,
  });

  it('start of a delete-after-verify plan exits 2 naming the site; the canary is gone', async () => {
    const r = await runCli(['start', '--plan', plan({ sourceDisposition: 'delete-after-verify', gracePeriod: '1h' }), '--sites', sitesFile]);
    expect(r.stderr).toMatch(/^clover: site sg \(bucket clover-sg\) ignores If-Match on DeleteObject, so Clover cannot delete there safely/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.code).toBe(2);
    expect(await listKeys(c, 'sg', '_clover/probe/')).toEqual([]);
  });

  it('the same site through the real store enforces them: the plan starts', async () => {
    const r = await runCli(['start', '--plan', plan({ sourceDisposition: 'delete-after-verify', gracePeriod: '1h' })]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await listKeys(c, 'sg', '_clover/probe/')).toEqual([]);
  });

  it('rollback refuses a target that ignores conditional deletes', async () => {
    // A migration routed to sg would be refused by the plan's residency check; so the target of this
    // one is the real eu-ie, and the rollback is given a sites file in which eu-ie ignores If-Match.
    const d = JSON.parse(readFileSync(sitesFile, 'utf8'));
    d.sites = { ...d.sites, 'eu-ie': { ...d.sites.sg, jurisdiction: 'IE' } };
    const f = join(tmpPlanDir(), `${uniqueId('sites-eu-ignoring')}.json`);
    writeFileSync(f, JSON.stringify(d), { mode: 0o600 });
    const p = plan({});
    const id = (JSON.parse(readFileSync(p, 'utf8')) as { migrationId: string }).migrationId;
    expect((await runCli(['start', '--plan', p])).code).toBe(0);
    const r = await runCli(['rollback', id, '--sites', f]);
    expect(r.stderr).toMatch(/^clover: site eu-ie \(bucket clover-sg\) ignores If-Match on DeleteObject/);
    expect(r.code).toBe(2);
  });
});
