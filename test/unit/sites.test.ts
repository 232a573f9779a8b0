import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, InputError } from '../../src/config/errors';
import { loadSitesFile, parseSites, siteCredentialEnvNames, type Sites } from '../../src/config/sites';

const good = {
  sites: {
    sg: { endpoint: 'http://127.0.0.1:1', region: 'ap-southeast-1', bucket: 'clover-sg', jurisdiction: 'SG', forcePathStyle: true },
    'eu-ie': { endpoint: 'http://127.0.0.1:2', region: 'eu-west-1', bucket: 'clover-eu-ie', jurisdiction: 'IE' },
  },
};

/** The message parseSites rejects `raw` with; fails the test if it is accepted or throws anything but a one-line InputError. */
function rejection(raw: unknown, source?: string): string {
  try {
    parseSites(raw, source);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).exitCode).toBe(ExitCode.badInput);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('expected a validation error');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests break the document on purpose
const bad = (mutate: (d: any) => void): string => {
  const d = JSON.parse(JSON.stringify(good));
  mutate(d);
  return rejection(d, 'sites.json');
};

describe('sites file validation', () => {
  it('accepts a good file and freezes it', () => {
    const s: Sites = parseSites(good);
    expect(Object.keys(s)).toEqual(['sg', 'eu-ie']);
    expect(s['eu-ie']?.forcePathStyle).toBe(false);
    expect(s.sg?.forcePathStyle).toBe(true);
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.sg)).toBe(true);
  });

  it('accepts a site with no endpoint (AWS S3), an https endpoint and inline credentials', () => {
    const s = parseSites({
      sites: {
        aws: { region: 'eu-west-1', bucket: 'acme.eu-ie', jurisdiction: 'IE' },
        tls: { endpoint: 'https://s3.example.com', region: 'eu-north-1', bucket: 'abc', jurisdiction: 'NO', credentials: { accessKeyId: 'k', secretAccessKey: 's', sessionToken: 't' } },
      },
    });
    expect(s.aws?.endpoint).toBeUndefined();
    expect(s.tls?.credentials).toEqual({ accessKeyId: 'k', secretAccessKey: 's', sessionToken: 't' });
  });

  const cases: [string, (d: any) => void, RegExp][] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['jurisdiction not alpha-2', (d) => (d.sites.sg.jurisdiction = 'Singapore'), /^sites.json: site "sg", field jurisdiction: must be an assigned ISO 3166-1 alpha-2/],
    ['jurisdiction XX (two capitals, no country)', (d) => (d.sites.sg.jurisdiction = 'XX'), /^sites.json: site "sg", field jurisdiction: must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. IE$/],
    ['jurisdiction in lower case', (d) => (d.sites.sg.jurisdiction = 'sg'), /site "sg", field jurisdiction: must be an assigned ISO 3166-1 alpha-2 country code in capitals/],
    ['missing jurisdiction', (d) => delete d.sites.sg.jurisdiction, /site "sg", field jurisdiction: /],
    ['endpoint not http(s)', (d) => (d.sites['eu-ie'].endpoint = 'ftp://x'), /site "eu-ie", field endpoint: must be an http\(s\) URL/],
    ['endpoint not a URL', (d) => (d.sites['eu-ie'].endpoint = '127.0.0.1:7303'), /site "eu-ie", field endpoint: must be an http\(s\) URL/],
    ['missing bucket', (d) => delete d.sites.sg.bucket, /site "sg", field bucket: /],
    ['bucket name with capitals', (d) => (d.sites.sg.bucket = 'Clover'), /site "sg", field bucket: must be a valid S3 bucket name/],
    ['bucket name too short', (d) => (d.sites.sg.bucket = 'ab'), /site "sg", field bucket: must be a valid S3 bucket name/],
    ['bucket name too long', (d) => (d.sites.sg.bucket = 'a'.repeat(64)), /site "sg", field bucket: must be a valid S3 bucket name/],
    ['bucket name ending in "-"', (d) => (d.sites.sg.bucket = 'clover-'), /site "sg", field bucket: must be a valid S3 bucket name/],
    ['empty region', (d) => (d.sites.sg.region = ''), /site "sg", field region: must name the S3 region/],
    ['missing region', (d) => delete d.sites.sg.region, /site "sg", field region: /],
    ['forcePathStyle not a boolean', (d) => (d.sites.sg.forcePathStyle = 'yes'), /site "sg", field forcePathStyle: /],
    ['empty access key id', (d) => (d.sites.sg.credentials = { accessKeyId: '', secretAccessKey: 'x' }), /site "sg", field credentials.accessKeyId: must not be empty/],
    ['empty secret key', (d) => (d.sites.sg.credentials = { accessKeyId: 'x', secretAccessKey: '' }), /site "sg", field credentials.secretAccessKey: must not be empty/],
    ['missing secret key', (d) => (d.sites.sg.credentials = { accessKeyId: 'x' }), /site "sg", field credentials.secretAccessKey: /],
    ['empty session token', (d) => (d.sites.sg.credentials = { accessKeyId: 'x', secretAccessKey: 'y', sessionToken: '' }), /site "sg", field credentials.sessionToken: /],
    ['unknown credentials field', (d) => (d.sites.sg.credentials = { accessKeyId: 'x', secretAccessKey: 'y', password: 'z' }), /site "sg", field credentials: .*password/],
    ['unknown site field', (d) => (d.sites.sg.colour = 'red'), /site "sg", field \(the site itself\): .*colour/],
    ['a site that is not an object', (d) => (d.sites.sg = 'http://127.0.0.1:1'), /site "sg", field \(the site itself\): /],
    ['bad site name', (d) => (d.sites.EU_IE = d.sites['eu-ie']), /^sites.json: site "EU_IE", /],
    ['no sites', (d) => (d.sites = {}), /^sites.json: sites: must list at least one site$/],
    ['missing sites', (d) => delete d.sites, /^sites.json: sites: /],
    ['unknown top-level field', (d) => (d.version = 2), /^sites.json: \(top level\): .*version/],
  ];
  it.each(cases)('%s: named in one line', (_name, mutate, message) => {
    expect(bad(mutate)).toMatch(message);
  });

  // zod 4 reports a bad record key as "Invalid key in record"; firstIssue gives the key's own message.
  it('a bad site name: the message gives the naming rule', () => {
    expect(bad((d) => (d.sites.EU_IE = d.sites['eu-ie']))).toMatch(/site names are lower-case letters, digits and "-"/);
  });

  it('a document that is not an object is rejected at the top level', () => {
    expect(rejection(null, 'x.json')).toMatch(/^x.json: \(top level\): /);
    expect(rejection([good], 'x.json')).toMatch(/^x.json: \(top level\): /);
  });
});

describe('sites file on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'clover-unit-sites-'));
  const write = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const loadError = (path: string): string => {
    try {
      loadSitesFile(path);
    } catch (err) {
      expect(err).toBeInstanceOf(InputError);
      return (err as Error).message;
    }
    throw new Error('expected an error');
  };

  it('reads a good file', () => {
    expect(Object.keys(loadSitesFile(write('good.json', JSON.stringify(good))))).toEqual(['sg', 'eu-ie']);
  });
  it('a missing file: named, with the hint to start the stack or set CLOVER_SITES', () => {
    const f = join(dir, 'absent.json');
    expect(loadError(f)).toBe(`cannot read sites file ${f}: ENOENT (run \`npm run stack -- up\` for the local stack, or set CLOVER_SITES)`);
  });
  it('a file that is not JSON', () => {
    const f = write('broken.json', '{ "sites": ');
    expect(loadError(f)).toMatch(new RegExp(`^sites file ${f} is not valid JSON: `));
  });
  it('a bad site: the message names the file, the site and the field', () => {
    const f = write('bad.json', JSON.stringify({ sites: { sg: { ...good.sites.sg, region: '' } } }));
    expect(loadError(f)).toBe(`sites file ${f}: site "sg", field region: must name the S3 region, e.g. eu-west-1`);
  });
});

describe('credential variables', () => {
  it('upper-cases the site name and turns "-" into "_"', () => {
    expect(siteCredentialEnvNames('eu-ie')).toEqual({
      accessKeyId: 'CLOVER_SITE_EU_IE_ACCESS_KEY_ID',
      secretAccessKey: 'CLOVER_SITE_EU_IE_SECRET_ACCESS_KEY',
      sessionToken: 'CLOVER_SITE_EU_IE_SESSION_TOKEN',
    });
    expect(siteCredentialEnvNames('sg').accessKeyId).toBe('CLOVER_SITE_SG_ACCESS_KEY_ID');
  });
});
