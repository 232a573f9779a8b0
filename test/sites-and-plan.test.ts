import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/config/errors';
import { parseSites, type Sites } from '../src/config/sites';
import { runCli } from './helpers';

const good = {
  sites: {
    sg: { endpoint: 'http://127.0.0.1:1', region: 'ap-southeast-1', bucket: 'clover-sg', jurisdiction: 'SG', forcePathStyle: true },
    'eu-ie': { endpoint: 'http://127.0.0.1:2', region: 'eu-west-1', bucket: 'clover-eu-ie', jurisdiction: 'IE' },
  },
};

describe('sites file validation', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests break the document on purpose
  const bad = (mutate: (d: any) => void) => {
    const d = JSON.parse(JSON.stringify(good));
    mutate(d);
    try {
      parseSites(d, 'sites.json');
    } catch (err) {
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).exitCode).toBe(2);
      return (err as Error).message;
    }
    throw new Error('expected a validation error');
  };

  it('accepts a good file and freezes it', () => {
    const s: Sites = parseSites(good);
    expect(s['eu-ie'].forcePathStyle).toBe(false);
    expect(Object.isFrozen(s)).toBe(true);
  });
  it('names the site, the field and the problem', () => {
    expect(bad((d) => (d.sites.sg.jurisdiction = 'Singapore'))).toMatch(/site "sg", field jurisdiction: must be an ISO 3166 alpha-2/);
    expect(bad((d) => (d.sites['eu-ie'].endpoint = 'ftp://x'))).toMatch(/site "eu-ie", field endpoint: must be an http\(s\) URL/);
    expect(bad((d) => delete d.sites.sg.bucket)).toMatch(/site "sg", field bucket/);
    expect(bad((d) => (d.sites.sg.credentials = { accessKeyId: '' , secretAccessKey: 'x' }))).toMatch(/site "sg", field credentials.accessKeyId: must not be empty/);
    expect(bad((d) => (d.sites.sg.colour = 'red'))).toMatch(/site "sg".*colour/);
    expect(bad((d) => (d.sites = {}))).toMatch(/sites: must list at least one site/);
  });
  it('a bad sites file on the command line: one line, exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clover-sites-'));
    const f = join(dir, 'sites.json');
    writeFileSync(f, JSON.stringify({ sites: { sg: { ...good.sites.sg, region: '' } } }));
    const r = await runCli(['verify', 'x', '--sites', f]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/site "sg", field region: must name the S3 region/);
  });
});
