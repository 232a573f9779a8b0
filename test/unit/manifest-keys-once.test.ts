import { InvalidManifestError, buildManifest, type ManifestEntry } from '../../src/domain/manifest';

/** A manifest never holds a key twice: building one from staging that repeats a key is refused. */
describe('buildManifest refuses a key listed twice', () => {
  const entry = (key: string, size = 10): ManifestEntry => ({
    key, size, sha256: 'ab'.repeat(32), sourceSite: 'sg', sourceEtag: 'e', sourceLastModified: '2026-01-01T00:00:00.000Z', targetEtag: 't', outcome: 'copied',
  });
  const fields = (entries: ManifestEntry[]) => ({
    migrationId: 'm', userId: 'u1', targetSite: 'eu-ie', bucket: 'b', userPrefix: 'users/u1/', committedAt: '2026-01-01T00:00:00.000Z', generation: 1, entries, conflicts: [], erasures: [],
  });

  it('counts each key once when there are no repeats', () => {
    const m = buildManifest(fields([entry('users/u1/b'), entry('users/u1/a', 5)]));
    expect(m.entries.map((e) => e.key)).toEqual(['users/u1/a', 'users/u1/b']);
    expect(m).toMatchObject({ objectCount: 2, totalBytes: 15 });
  });

  it('throws a permanent ManifestInvalid naming the first repeated key (a second staging pass of the same page)', () => {
    const staged = [entry('users/u1/a'), entry('users/u1/b'), entry('users/u1/a'), entry('users/u1/b')];
    let thrown: unknown;
    try {
      buildManifest(fields(staged));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidManifestError);
    expect(thrown).toMatchObject({ type: 'ManifestInvalid', permanent: true });
    expect((thrown as Error).message).toMatch(/user u1: the staging records list 2 key\(s\) more than once \(first "users\/u1\/a"\)/);
  });
});
