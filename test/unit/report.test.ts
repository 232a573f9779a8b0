import { createHash } from 'node:crypto';
import { buildResidencyReport, entriesSha256, type FoundObject, type StoredMigration } from '../../src/audit/report';
import { escapeHtml, headline, HTML_USERS_SHOWN, renderReportHtml } from '../../src/audit/report-html';
import type { Sites } from '../../src/config/sites';
import type { Manifest, ManifestEntry } from '../../src/domain/manifest';

const sites: Sites = {
  sg: { region: 'ap-southeast-1', bucket: 'sg-bucket', jurisdiction: 'SG', forcePathStyle: true },
  us: { region: 'us-east-1', bucket: 'us-bucket', jurisdiction: 'US', forcePathStyle: true },
  'eu-ie': { region: 'eu-west-1', bucket: 'ie-bucket', jurisdiction: 'IE', forcePathStyle: true },
  'eu-no': { region: 'eu-north-1', bucket: 'no-bucket', jurisdiction: 'NO', forcePathStyle: true },
};

const entry = (key: string, size: number, sourceSite = 'sg'): ManifestEntry => ({
  key, size, sha256: createHash('sha256').update(key).digest('hex'), sourceSite, sourceEtag: 'e', sourceLastModified: '', targetEtag: 't', outcome: 'copied',
});

const manifest = (userId: string, targetSite: string, entries: ManifestEntry[], more: Partial<Manifest> = {}): Manifest => ({
  format: 'clover-manifest/1', migrationId: 'm1', userId, targetSite, bucket: 'b', userPrefix: `users/${userId}/`, sources: ['sg', 'us'],
  committedAt: '2026-01-01T00:00:00Z', generation: 1, objectCount: entries.length, totalBytes: entries.reduce((n, e) => n + e.size, 0),
  entries, conflicts: [], erasures: [], digest: 'x', ...more,
});

function stored(over: Partial<StoredMigration> = {}): StoredMigration {
  const manifests = new Map<string, Manifest>([
    ['alice', manifest('alice', 'eu-ie', [entry('users/alice/b', 200), entry('users/alice/a', 100)])],
    ['bob', manifest('bob', 'eu-no', [entry('users/bob/x', 1000, 'us')], { generation: 3, sourceDisposition: { state: 'deleted', at: '', deleted: 1, keptChanged: [] } })],
    ['carol', manifest('carol', 'eu-ie', [entry('users/carol/z', 50)], { generation: 2, sourceDisposition: { state: 'deleted', at: '', deleted: 1, keptChanged: [] } })],
    ['dave', manifest('dave', 'eu-ie', [entry('users/dave/q', 70)], { generation: 2, rolledBack: { at: '', restored: 1, targetDeleted: 1, kept: [] } })],
  ]);
  const outside = new Map<string, FoundObject[]>([
    // alice is migrated, not cut over: its sources still hold everything.
    ['alice', [{ site: 'sg', key: 'users/alice/a', size: 100 }, { site: 'sg', key: 'users/alice/b', size: 200 }]],
    // carol was cut over, then the application wrote again: residue.
    ['carol', [{ site: 'us', key: 'users/carol/late', size: 5 }]],
    ['dave', [{ site: 'sg', key: 'users/dave/q', size: 70 }]],
    ['erin', [{ site: 'sg', key: 'users/erin/1', size: 11 }]],
  ]);
  return {
    migrationId: 'm1', generatedAt: '2026-01-02T03:04:05.000Z', sources: ['sg', 'us'], userPrefix: 'users/{userId}/',
    users: ['alice', 'bob', 'carol', 'dave', 'erin'].map((userId) => ({ userId, country: userId === 'bob' ? 'NO' : 'DE' })),
    manifests, outside, errors: new Map(), ...over,
  };
}

describe('residency report', () => {
  const r = buildResidencyReport(sites, stored());

  it('classifies sites by jurisdiction (from the sites file) and role', () => {
    expect(r.sites.map((s) => [s.name, s.jurisdiction, s.role])).toEqual([
      ['eu-ie', 'EEA', 'target'], ['eu-no', 'EEA', 'target'], ['sg', 'outside EEA', 'source'], ['us', 'outside EEA', 'source'],
    ]);
    expect(r.sites.find((s) => s.name === 'eu-ie')).toMatchObject({ region: 'eu-west-1', country: 'IE' });
  });

  it('counts per site what is there now: EU sites from the manifests (rolled back excluded), sources from the listings', () => {
    const by = Object.fromEntries(r.sites.map((s) => [s.name, { users: s.users, objects: s.objects, bytes: s.bytes }]));
    expect(by).toEqual({
      'eu-ie': { users: 2, objects: 3, bytes: 350 },
      'eu-no': { users: 1, objects: 1, bytes: 1000 },
      sg: { users: 3, objects: 4, bytes: 381 },
      us: { users: 1, objects: 1, bytes: 5 },
    });
  });

  it('gives each user its state, generation, EU bytes, SHA-256 total and what is still outside the EEA', () => {
    const u = Object.fromEntries(r.users.map((x) => [x.userId, x]));
    expect(u.alice).toMatchObject({ state: 'migrated', targetSite: 'eu-ie', generation: 1, objects: 2, bytes: 300, stillOutsideEEA: { objects: 2, bytes: 300, keys: ['users/alice/a', 'users/alice/b'], sites: ['sg'] } });
    expect(u.bob).toMatchObject({ state: 'cut over', generation: 3, stillOutsideEEA: { objects: 0, bytes: 0, keys: [] } });
    expect(u.carol).toMatchObject({ state: 'cut over', stillOutsideEEA: { objects: 1, bytes: 5, keys: ['users/carol/late'], sites: ['us'] } });
    expect(u.dave).toMatchObject({ state: 'rolled back', objects: 0, bytes: 0, stillOutsideEEA: { objects: 1 } });
    expect(u.dave!.sha256Total).toBeUndefined();
    expect(u.erin).toMatchObject({ state: 'no manifest', objects: 0, stillOutsideEEA: { objects: 1, bytes: 11 } });
    expect(u.erin!.targetSite).toBeUndefined();
    // Sorted by key, one `key\tsha256\n` line each: the order of the entries does not matter.
    const lines = ['users/alice/a', 'users/alice/b'].map((k) => `${k}\t${createHash('sha256').update(k).digest('hex')}\n`).join('');
    expect(u.alice!.sha256Total).toBe(createHash('sha256').update(lines).digest('hex'));
    expect(entriesSha256([entry('b', 1), entry('a', 1)])).toBe(entriesSha256([entry('a', 1), entry('b', 1)]));
  });

  it('totals: users per state, EEA-only users, users and bytes still outside the EEA', () => {
    expect(r.totals).toEqual({
      users: 5, byState: { migrated: 1, 'cut over': 2, 'rolled back': 1, 'no manifest': 1 },
      eeaOnly: 1, outsideEEA: 4, eeaObjects: 4, eeaBytes: 1350, outsideObjects: 5, outsideBytes: 386, errors: 0,
    });
    expect(headline(r)).toBe('1 of 5 users\' data is in the EEA only; 4 users still have data outside the EEA');
  });

  it('names at most 20 keys per user, counts them all; a failed listing is not "EEA only"', () => {
    const many = Array.from({ length: 25 }, (_, i) => ({ site: 'sg', key: `users/erin/${String(i).padStart(2, '0')}`, size: 1 }));
    const x = buildResidencyReport(sites, stored({ outside: new Map([['erin', many]]), errors: new Map([['bob', ['sg: AccessDenied']]]) }));
    const erin = x.users.find((u) => u.userId === 'erin')!;
    expect(erin.stillOutsideEEA).toMatchObject({ objects: 25, bytes: 25 });
    expect(erin.stillOutsideEEA.keys).toHaveLength(20);
    expect(x.users.find((u) => u.userId === 'bob')).toMatchObject({ errors: ['sg: AccessDenied'] });
    expect(x.totals).toMatchObject({ eeaOnly: 2, outsideEEA: 1, errors: 1 }); // alice and carol; bob is unknown
  });

  it('reports a user with a manifest that the user list does not name', () => {
    const x = buildResidencyReport(sites, stored({ users: [] }));
    expect(x.users.map((u) => u.userId)).toEqual(['alice', 'bob', 'carol', 'dave']);
  });
});

describe('residency report HTML', () => {
  it('escapes every string', () => {
    expect(escapeHtml('<script>alert("x")</script> & \'y\'')).toBe('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;');
    const evil = '<img src=x onerror=alert(1)>';
    const s = stored({ users: [{ userId: evil, country: 'DE' }], outside: new Map([[evil, [{ site: 'sg', key: `users/${evil}/"k"&`, size: 1 }]]]) });
    const html = renderReportHtml(buildResidencyReport(sites, { ...s, migrationId: '<m1>' }));
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<m1>');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('users/&lt;img src=x onerror=alert(1)&gt;/&quot;k&quot;&amp;');
  });

  it('is one self-contained page: no external resource, an inline SVG chart coloured by jurisdiction, the headline', () => {
    const html = renderReportHtml(buildResidencyReport(sites, stored()));
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
    expect(html).not.toMatch(/<link|<script|@import|url\(/i);
    expect(html.match(/<svg/g)).toHaveLength(2);
    expect(html).toContain('#1f7a4d'); // EEA
    expect(html).toContain('#c0392b'); // outside the EEA
    expect(html).toContain('1 of 5 users&#39; data is in the EEA only; 4 users still have data outside the EEA');
  });

  it(`shows the first ${HTML_USERS_SHOWN} users and says when there are more`, () => {
    const users = Array.from({ length: HTML_USERS_SHOWN + 3 }, (_, i) => ({ userId: `user-${i}`, country: 'DE' }));
    const html = renderReportHtml(buildResidencyReport(sites, stored({ users, manifests: new Map(), outside: new Map() })));
    expect(html).toContain(`Showing the first ${HTML_USERS_SHOWN} of ${HTML_USERS_SHOWN + 3} users`);
    expect(html).toContain(`<td>user-${HTML_USERS_SHOWN - 1}</td>`);
    expect(html).not.toContain(`<td>user-${HTML_USERS_SHOWN}</td>`);
  });
});
