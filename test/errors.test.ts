import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { entry } from './support/at';

/** Bad credentials, a missing bucket and unreachable services: one clear line and the documented exit code. */
describe('operator errors', () => {
  const sites = () => JSON.parse(readFileSync(process.env.CLOVER_SITES!, 'utf8'));
  const sitesWith = (mutate: (s: Record<string, Record<string, unknown>>) => void) => {
    const d = sites();
    mutate(d.sites);
    const f = join(tmpPlanDir(), `${uniqueId('sites')}.json`);
    writeFileSync(f, JSON.stringify(d));
    return f;
  };
  const plan = () => writePlan(tmpPlanDir(), {
    migrationId: uniqueId('err'), sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId: 'u-1', country: 'DE' }],
  });

  it('wrong credentials for a site: exit 2, naming the site and bucket', async () => {
    const f = sitesWith((s) => ((entry(s, 'sg').credentials as Record<string, string>).secretAccessKey = 'wrong-secret'));
    const r = await runCli(['start', '--plan', plan(), '--sites', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/site sg: .*bucket clover-sg.*(secret key does not match|access denied)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a missing bucket: exit 2', async () => {
    const f = sitesWith((s) => (entry(s, 'eu-ie').bucket = 'no-such-bucket'));
    const r = await runCli(['start', '--plan', plan(), '--sites', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/site eu-ie: bucket no-such-bucket does not exist/);
  });

  it('an unreachable site: exit 3', async () => {
    const f = sitesWith((s) => (entry(s, 'us').endpoint = 'http://127.0.0.1:1'));
    const r = await runCli(['start', '--plan', plan(), '--sites', f]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot reach site us at http:\/\/127.0.0.1:1/);
  });

  it('Temporal unreachable: exit 3', async () => {
    const r = await runCli(['status', 'whatever'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot reach Temporal at 127.0.0.1:1/);
  });

  it('an unknown migration id: exit 2', async () => {
    const r = await runCli(['status', 'never-started']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no migration with id "never-started"/);
  });
});
