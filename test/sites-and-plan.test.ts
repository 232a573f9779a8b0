import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers';

// parseSites itself is tested in test/unit/sites.test.ts; this is the same rule seen by an operator.
const good = {
  sites: {
    sg: { endpoint: 'http://127.0.0.1:1', region: 'ap-southeast-1', bucket: 'clover-sg', jurisdiction: 'SG', forcePathStyle: true },
  },
};

describe('sites file validation', () => {
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
