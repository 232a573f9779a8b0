import { createHash } from 'node:crypto';
import { amendManifest, buildManifest, manifestDigest, type Manifest, type ManifestEntry } from '../../src/domain/manifest';
import { assertManifestValid, manifestProblem, type ManifestExpectations } from '../../src/domain/manifest-guard';

const entry = (key: string, over: Partial<ManifestEntry> = {}): ManifestEntry => ({
  key, size: 10, sha256: createHash('sha256').update(key).digest('hex'), sourceSite: 'sg', sourceEtag: `etag-${key}`,
  sourceLastModified: '2024-05-01T00:00:00.000Z', targetEtag: `t-${key}`, outcome: 'copied', ...over,
});
const good = (): Manifest => buildManifest({
  migrationId: 'wave-1', userId: 'u-1', targetSite: 'eu-ie', bucket: 'clover-eu-ie', userPrefix: 'users/u-1/',
  committedAt: '2024-05-02T00:00:00.000Z', generation: 1, erasures: [], conflicts: [],
  entries: [entry('users/u-1/a', { alsoAt: [{ site: 'us', etag: 'etag-dup' }] }), entry('users/u-1/b', { sourceSite: 'us', superseded: [{ site: 'sg', etag: 'etag-old' }] })],
});
const expected: ManifestExpectations = { migrationId: 'wave-1', userId: 'u-1', userPrefix: 'users/u-1/', sources: ['sg', 'us'] };
/** `m` changed by `edit`, with its digest recomputed: only the guard's other checks can catch it. */
const resigned = (edit: (m: Manifest) => void): Manifest => {
  const m = structuredClone(good());
  edit(m);
  return { ...m, digest: manifestDigest(m) };
};

describe('manifest guard (before a destructive step)', () => {
  it('accepts a committed manifest that matches the plan', () => {
    expect(manifestProblem(good(), expected)).toBeUndefined();
    expect(() => assertManifestValid(good(), expected, 'k')).not.toThrow();
  });

  it('rejects an entry whose key points into another user\'s prefix, naming it, even with a valid digest', () => {
    const m = resigned((x) => (x.entries[1]!.key = 'users/u-2/b'));
    expect(manifestProblem(m, expected)).toMatch(/entry 1 \(key "users\/u-2\/b"\) lies outside the user's prefix "users\/u-1\/"/);
  });

  it('rejects a key that merely starts like the prefix, or is the prefix itself', () => {
    expect(manifestProblem(resigned((x) => (x.entries[0]!.key = 'users/u-10/a')), expected)).toMatch(/entry 0 .*outside/);
    expect(manifestProblem(resigned((x) => (x.entries[0]!.key = 'users/u-1/')), expected)).toMatch(/entry 0 .*outside/);
  });

  it('rejects a source site that is not one of the plan\'s sources', () => {
    expect(manifestProblem(resigned((x) => (x.entries[0]!.sourceSite = 'eu-no')), expected)).toMatch(/entry 0 .*names source site "eu-no", which is not one of the plan's sources \(sg, us\)/);
  });

  it('rejects a duplicate (alsoAt) or a superseded source in a site that is not one of the plan\'s sources', () => {
    expect(manifestProblem(resigned((x) => (x.entries[0]!.alsoAt = [{ site: 'us', etag: 'e' }, { site: 'eu-no', etag: 'e' }])), expected))
      .toMatch(/entry 0 \(key "users\/u-1\/a"\) names site "eu-no" in alsoAt, which is not one of the plan's sources \(sg, us\)/);
    expect(manifestProblem(resigned((x) => (x.entries[1]!.superseded = [{ site: 'elsewhere', etag: 'e' }])), expected))
      .toMatch(/entry 1 \(key "users\/u-1\/b"\) names site "elsewhere" in superseded, which is not one of the plan's sources/);
    expect(manifestProblem(resigned((x) => Object.assign(x.entries[0]!, { alsoAt: 'us' })), expected)).toMatch(/entry 0 .* alsoAt that is not a list/);
  });

  it('accepts a manifest of any generation: a later pass\'s, or an amendment\'s', () => {
    const later = resigned((x) => Object.assign(x, { generation: 5, previousDigest: 'ab'.repeat(32), erasures: [{ key: 'users/u-1/gone', size: 1, sha256: 'cd'.repeat(32), sourceSite: 'sg', erasedAt: '2024-05-03T00:00:00.000Z', generation: 4 }] }));
    expect(manifestProblem(later, expected)).toBeUndefined();
    const amended = amendManifest(later, { sourceDisposition: { state: 'deleted', at: '2024-06-01T00:00:00.000Z', deleted: 3, keptChanged: [], residue: [], residueCount: 0 } }, 'w');
    expect(amended.generation).toBe(6);
    expect(manifestProblem(amended, expected)).toBeUndefined();
    expect(manifestProblem({ ...amended, generation: 7 }, expected)).toMatch(/digest does not match/);
  });

  it('rejects a userPrefix other than the user\'s resolved prefix, even when every key lies under it', () => {
    const m = resigned((x) => {
      x.userPrefix = 'users/';
    });
    expect(manifestProblem(m, expected)).toMatch(/userPrefix "users\/" is not the user's prefix "users\/u-1\/"/);
  });

  it('rejects another user\'s or another migration\'s manifest', () => {
    expect(manifestProblem(good(), { ...expected, userId: 'u-2' })).toMatch(/names user "u-1", not "u-2"/);
    expect(manifestProblem(good(), { ...expected, migrationId: 'wave-2' })).toMatch(/names migration "wave-1"/);
  });

  it('rejects a manifest whose digest does not hold', () => {
    const m = structuredClone(good());
    m.entries[0]!.size = 11;
    expect(manifestProblem(m, expected)).toMatch(/digest does not match/);
  });

  it('throws a permanent ManifestInvalid error naming the user, the manifest key and the first bad entry', () => {
    const m = resigned((x) => (x.entries[0]!.key = 'users/u-2/a'));
    let err: unknown;
    try {
      assertManifestValid(m, expected, '_clover/migrations/wave-1/manifests/u-1.json');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ type: 'ManifestInvalid', permanent: true });
    expect((err as Error).message).toMatch(/^user u-1: manifest _clover\/migrations\/wave-1\/manifests\/u-1.json is not valid: entry 0 \(key "users\/u-2\/a"\)/);
  });
});
