import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manifestKey } from '../src/domain/layout';
import type { Manifest } from '../src/domain/manifest';
import type { ResidencyReport } from '../src/audit/report';
import { destroySiteClients } from '../src/storage/clients';
import { clients, exists, get, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { waitUntil } from './support/wait';
import { NO_CHROMIUM, browserTestsSkipped, findChromium, screenshot } from './support/browser';

/**
 * `clover report` and verify's completeness checks on the real stack: three users, two migrated and cut
 * over (one to each EU site), one that fails (its target holds an object Clover did not write), so it
 * has no manifest. Then the application writes for a cut-over user again (data outside the EEA) and
 * someone puts an object under a user's prefix in its EU site that no manifest lists.
 */
describe('residency report and verify completeness', () => {
  const c = clients();
  const id = uniqueId('report');
  const a = `${id}-a`; // DE → eu-ie, from sg
  const b = `${id}-b`; // NO → eu-no, from us
  const f = `${id}-f`; // DE → eu-ie, fails: eu-ie already holds one of its keys
  const bodies = new Map<string, Buffer>();
  let worker: ChildProcess;

  beforeAll(async () => {
    worker = startWorkerProcess(uniqueId('report-worker'));
    const seed = async (site: string, key: string, body: Buffer) => {
      bodies.set(key, body);
      await put(c, site, key, body);
    };
    for (let i = 0; i < 3; i++) await seed('sg', `users/${a}/f-${i}`, Buffer.alloc(1000 + i, i + 1));
    for (let i = 0; i < 2; i++) await seed('us', `users/${b}/g-${i}`, Buffer.alloc(5000 + i, i + 7));
    await seed('sg', `users/${f}/mine.txt`, Buffer.from('source bytes of f'));
    await put(c, 'eu-ie', `users/${f}/mine.txt`, 'someone else wrote this');
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie', byCountry: { NO: 'eu-no' } },
      users: [{ userId: a, country: 'DE' }, { userId: b, country: 'NO' }, { userId: f, country: 'DE' }],
      verify: 'checksum', sourceDisposition: 'delete-after-verify', gracePeriod: '1s',
    });
    const r = await runCli(['start', '--plan', plan, '--wait']);
    expect(r.stdout).toMatch(new RegExp(`FAILED user ${f}: `));
    expect(r.code).toBe(1);
    for (const u of [a, b]) expect(await exists(c, u === a ? 'eu-ie' : 'eu-no', manifestKey(id, u))).toBe(true);
    expect(await exists(c, 'eu-ie', manifestKey(id, f))).toBe(false);
    // `start --wait` returns once every user is migrated or failed; the sources go after the grace period.
    await waitUntil('the cut-over users\' sources are deleted', async () => (await exists(c, 'sg', `users/${a}/f-0`)) || (await exists(c, 'us', `users/${b}/g-0`)), (left) => !left);
  });
  afterAll(async () => {
    await stopProcess(worker);
    destroySiteClients(c);
  });

  const manifest = async (site: string, userId: string) => JSON.parse((await get(c, site, manifestKey(id, userId)))!.body.toString()) as Manifest;
  /** Recomputed here from the seeded bytes, not from the manifest: sorted keys, one `key\tsha256\n` line each. */
  const total = (prefix: string) => sha256([...bodies].filter(([k]) => k.startsWith(prefix)).sort(([x], [y]) => Buffer.compare(Buffer.from(x), Buffer.from(y))).map(([k, v]) => `${k}\t${sha256(v)}\n`).join(''));
  const bytesUnder = (prefix: string) => [...bodies].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v.length, 0);

  it('report --json: every user of the plan, where its bytes are, and what is still outside the EEA, matching storage', async () => {
    await put(c, 'sg', `users/${a}/late.txt`, 'written after the cut-over'); // the application writes again
    const r = await runCli(['report', id, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as ResidencyReport;
    const u = Object.fromEntries(rep.users.map((x) => [x.userId, x]));
    const ma = await manifest('eu-ie', a);
    const mb = await manifest('eu-no', b);
    expect(u[a]).toMatchObject({ state: 'cut over', targetSite: 'eu-ie', generation: ma.generation, objects: 3, bytes: bytesUnder(`users/${a}/`), sha256Total: total(`users/${a}/`),
      stillOutsideEEA: { objects: 1, bytes: 'written after the cut-over'.length, keys: [`users/${a}/late.txt`], sites: ['sg'] } });
    expect(u[b]).toMatchObject({ state: 'cut over', targetSite: 'eu-no', generation: mb.generation, objects: 2, bytes: bytesUnder(`users/${b}/`), sha256Total: total(`users/${b}/`),
      stillOutsideEEA: { objects: 0, bytes: 0, keys: [] } });
    expect(u[f]).toMatchObject({ state: 'no manifest', objects: 0, stillOutsideEEA: { objects: 1, keys: [`users/${f}/mine.txt`], sites: ['sg'] } });
    expect(rep.totals).toMatchObject({ users: 3, byState: { 'cut over': 2, 'no manifest': 1 }, eeaOnly: 1, outsideEEA: 2 });
    const site = Object.fromEntries(rep.sites.map((s) => [s.name, s]));
    expect(site['eu-ie']).toMatchObject({ jurisdiction: 'EEA', role: 'target', users: 1, objects: 3, bytes: bytesUnder(`users/${a}/`) });
    expect(site['eu-no']).toMatchObject({ jurisdiction: 'EEA', role: 'target', users: 1, objects: 2, bytes: bytesUnder(`users/${b}/`) });
    expect(site.sg).toMatchObject({ jurisdiction: 'outside EEA', role: 'source', users: 2, objects: 2 });
    expect(site.us).toMatchObject({ jurisdiction: 'outside EEA', role: 'source', users: 0, objects: 0, bytes: 0 });

    const text = await runCli(['report', id]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('1 of 3 users\' data is in the EEA only; 2 users still have data outside the EEA');
    expect(text.stdout).toMatch(new RegExp(`^OUTSIDE-EEA user ${a} \\(cut over\\): 1 object`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^OUTSIDE-EEA user ${f} \\(no manifest\\): 1 object`, 'm'));
  });

  it('report --html writes one self-contained page that renders in headless Chromium', async () => {
    const dir = join(process.env.CLOVER_TEST_STACK_DIR!, 'report');
    mkdirSync(dir, { recursive: true });
    const html = join(dir, `${id}.html`);
    const r = await runCli(['report', id, '--html', html]);
    expect(r.code).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain(`Residency report: ${id}`);
    expect(page).not.toMatch(/<link|<script|(src|href)=["']?(https?:)?\/\//i);
    const chromium = findChromium();
    if (!chromium) {
      if (browserTestsSkipped) {
        console.warn(`skipped the Chromium rendering check (CLOVER_SKIP_BROWSER_TESTS=1): ${NO_CHROMIUM}`);
        return;
      }
      throw new Error(NO_CHROMIUM);
    }
    const png = join(dir, `${id}.png`);
    const size = screenshot(chromium, html, png);
    expect(existsSync(png)).toBe(true);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    expect(size).toBeGreaterThan(20 * 1024);
    if (process.env.CLOVER_REPORT_EXAMPLE) copyFileSync(png, process.env.CLOVER_REPORT_EXAMPLE);
  });

  it('verify exits 1 naming the failed user (FAILED, from its user-failed record) and an EU object no manifest lists (UNLISTED); residency printed', async () => {
    const extra = `users/${b}/not-in-any-manifest.bin`;
    await put(c, 'eu-no', extra, 'planted');
    const v = await runCli(['verify', id]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain('3 user(s) in the stored user list: 2 with a committed manifest, 1 failed (recorded in the ledger), 0 without either');
    expect(v.stdout).toMatch(new RegExp(`^FAILED user ${f}: .*could not be migrated.*\\(in phase \\w+; its data did not move\\)$`, 'm'));
    expect(v.stdout).not.toMatch(/^INCOMPLETE/m);
    expect(v.stdout).toMatch(new RegExp(`^ {2}OUTSIDE-EEA user ${a} \\(cut over\\): 1 object\\(s\\), .* in sg$`, 'm'));
    expect(v.stdout).toMatch(new RegExp(`^UNLISTED site eu-no key "${extra}" \\(user ${b}\\): in the EU site but in no manifest of this migration$`, 'm'));
    expect(v.stdout).toMatch(new RegExp(`^OUTSIDE-EEA site sg key "users/${a}/late.txt" \\(user ${a}\\)`, 'm'));
    expect(v.stdout).not.toMatch(/^MISMATCH/m);
    expect(v.stdout).toMatch(/^FAILED: 0 mismatch\(es\), 1 object\(s\) still in a source after cut-over, 0 read error\(s\), 1 user\(s\) failed \(their data did not move\), 1 object\(s\) in an EU site that no manifest lists$/m);
    const j = JSON.parse((await runCli(['verify', id, '--json'])).stdout);
    expect(j).toMatchObject({ ok: false, listedUsers: 3, incomplete: 0, failed: 1, unlisted: 1 });
    expect(j.problems).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'failed', userId: f }),
      expect.objectContaining({ kind: 'unlisted', site: 'eu-no', key: extra, userId: b }),
    ]));
  });
});
