import { deletedCount, keptAtDisposal, sitesDeletedByClover, type DisposalOutcome } from '../../src/domain/disposal';
import type { ConflictRecord, ManifestEntry } from '../../src/domain/manifest';
import { NOT_IN_MANIFEST, conflictResidueReason, residueClassifier } from '../../src/domain/residue';

const entry = (key: string, over: Partial<ManifestEntry> = {}): ManifestEntry => ({
  key, size: 10, sha256: 'ab'.repeat(32), sourceSite: 'sg', sourceEtag: `sg-${key}`,
  sourceLastModified: '2024-05-01T00:00:00.000Z', targetEtag: `t-${key}`, outcome: 'copied', ...over,
});
const conflict = (key: string, over: Partial<ConflictRecord> = {}): ConflictRecord => ({
  key, kind: 'sources-differ', chosenSite: 'us', resolution: 'newest-wins',
  sites: [{ site: 'sg', etag: 'a', lastModified: '2024-05-01T00:00:00.000Z', size: 1 }, { site: 'us', etag: 'b', lastModified: '2024-05-02T00:00:00.000Z', size: 2 }],
  ...over,
});

describe('residue reasons (what a source still holds after cut-over, and why)', () => {
  const m = {
    entries: [
      entry('p/dup', { alsoAt: [{ site: 'us', etag: 'us-dup' }] }),
      entry('p/newest', { sourceSite: 'us', sourceEtag: 'us-new', superseded: [{ site: 'sg', etag: 'sg-old' }] }),
      entry('p/changed'),
    ],
    conflicts: [conflict('p/both'), conflict('p/fail', { resolution: 'failed-user', chosenSite: undefined }), conflict('p/foreign', { kind: 'foreign-target', sites: [], resolution: 'left-in-place' })],
  };
  const kept = [{ key: 'p/changed', site: 'sg', reason: 'the source object changed since it was copied' }];
  const classify = residueClassifier(m, kept);

  it('names the kept reason of the disposal for the very site it was kept in', () => {
    expect(classify({ key: 'p/changed', site: 'sg', etag: 'x' })).toEqual({
      key: 'p/changed', site: 'sg', etag: 'x', reason: 'kept at disposal: the source object changed since it was copied',
    });
    // The same key in another site was not kept there: something written since, not in the manifest at that site.
    expect(classify({ key: 'p/changed', site: 'us', etag: 'x' }).reason).toBe(NOT_IN_MANIFEST);
  });

  it('names a conflict of the newest generation', () => {
    expect(classify({ key: 'p/both', site: 'sg', etag: 'a' }).reason).toBe('a conflict of the last pass: sources sg and us hold different bytes; the newest (us) was copied');
    expect(classify({ key: 'p/fail', site: 'us', etag: 'b' }).reason).toMatch(/conflictPolicy "fail"\), so it was not migrated/);
    expect(classify({ key: 'p/foreign', site: 'sg', etag: 'a' }).reason).toMatch(/did not write, so it was not migrated/);
    expect(conflictResidueReason(conflict('k', { kind: 'target-changed', sites: [], resolution: 'left-in-place' }))).toMatch(/EU copy was changed by someone else/);
  });

  it('names a source superseded under newest-wins while it still has the recorded ETag', () => {
    expect(classify({ key: 'p/newest', site: 'sg', etag: 'sg-old' }).reason).toMatch(/^superseded under newest-wins: .* from us; never deleted$/);
    expect(classify({ key: 'p/newest', site: 'sg', etag: 'sg-newer-still' }).reason).toBe(NOT_IN_MANIFEST);
  });

  it('tells a migrated object still there from one written again after its deletion, in the source and in a duplicate', () => {
    expect(classify({ key: 'p/dup', site: 'sg', etag: 'sg-p/dup' }).reason).toMatch(/still there: it was not deleted/);
    expect(classify({ key: 'p/dup', site: 'us', etag: 'us-dup' }).reason).toMatch(/still there: it was not deleted/);
    expect(classify({ key: 'p/dup', site: 'us', etag: 'other' }).reason).toMatch(/written at this key after Clover deleted/);
  });

  it('anything else is not in the manifest', () => {
    expect(classify({ key: 'p/new-after-final-pass', site: 'sg', etag: 'z' })).toEqual({ key: 'p/new-after-final-pass', site: 'sg', etag: 'z', reason: NOT_IN_MANIFEST });
    expect(NOT_IN_MANIFEST).toBe('not in the manifest: written after the final pass, or never migrated');
  });
});

describe('disposal outcomes (what Clover deleted where)', () => {
  const e = { sourceSite: 'sg' };
  const rec = (o: Partial<DisposalOutcome>): DisposalOutcome => ({ key: 'k', site: 'sg', outcome: 'deleted', ...o });

  it('a record with sites names exactly those; never the sites where the object was already gone or kept', () => {
    expect(sitesDeletedByClover(rec({ sites: ['sg', 'us'] }), e)).toEqual(['sg', 'us']);
    expect(sitesDeletedByClover(rec({ outcome: 'kept', sites: ['us'], kept: [{ site: 'sg', reason: 'changed' }] }), e)).toEqual(['us']);
    expect(sitesDeletedByClover(rec({ sites: [], goneBefore: ['sg'] }), e)).toEqual([]);
  });

  it('an old record without sites means the entry\'s source site when deleted, none when kept; no record: unknown', () => {
    expect(sitesDeletedByClover(rec({}), e)).toEqual(['sg']);
    expect(sitesDeletedByClover(rec({ outcome: 'kept', reason: 'changed' }), e)).toEqual([]);
    expect(sitesDeletedByClover(undefined, e)).toBeUndefined();
  });

  it('kept reasons per site (old records: the entry\'s source site) and deletions counted per site', () => {
    const outcomes = [
      rec({ key: 'a', sites: ['sg', 'us'] }),
      rec({ key: 'b', outcome: 'kept', sites: ['us'], kept: [{ site: 'sg', reason: 'changed' }], reason: 'changed' }),
      rec({ key: 'c', outcome: 'kept', reason: 'old reason' }),
      rec({ key: 'd' }),
      rec({ key: 'e', sites: [], goneBefore: ['sg'] }),
    ];
    expect(keptAtDisposal(outcomes)).toEqual([{ key: 'b', site: 'sg', reason: 'changed' }, { key: 'c', site: 'sg', reason: 'old reason' }]);
    expect(deletedCount(outcomes)).toBe(4);
  });
});
