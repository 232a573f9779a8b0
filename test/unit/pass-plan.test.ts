import type { ManifestEntry } from '../../src/domain/manifest';
import { entriesInRange, planPage, type Listed, type TargetListed } from '../../src/domain/pass-plan';

const listed = (key: string, site = 'sg', etag = `e-${key}`): Listed => ({ site, key, etag, size: 10, lastModified: '2026-01-01T00:00:00.000Z' });
const entry = (key: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
  key, size: 10, sha256: `sha-${key}`, sourceSite: 'sg', sourceEtag: `e-${key}`, sourceLastModified: '2026-01-01T00:00:00.000Z', targetEtag: `t-${key}`, outcome: 'copied', ...extra,
});
const sources = (...items: Listed[]) => {
  const m = new Map<string, Listed[]>();
  for (const i of items) m.set(i.key, [...(m.get(i.key) ?? []), i]);
  return m;
};
const target = (...items: [string, string][]) => new Map<string, TargetListed>(items.map(([k, etag]) => [k, { etag, size: 10 }]));
const previous = (...items: ManifestEntry[]) => new Map(items.map((e) => [e.key, e]));
const kinds = (plans: ReturnType<typeof planPage>) => plans.map((p) => `${p.key}:${p.kind}`);

describe('planning a page of a pass', () => {
  it('first pass: every source key is placed, create-only when the target lists nothing there', () => {
    const plans = planPage(sources(listed('u/b'), listed('u/a')), target(['u/b', 'x']), previous());
    expect(kinds(plans)).toEqual(['u/a:place', 'u/b:place']);
    expect(plans[0]).toMatchObject({ expect: { absent: true } });
    expect(plans[1]).toMatchObject({ expect: { unknown: true } });
  });

  it('an unchanged key costs nothing: same source ETag, same EU ETag', () => {
    expect(kinds(planPage(sources(listed('u/a')), target(['u/a', 't-u/a']), previous(entry('u/a'))))).toEqual(['u/a:carry']);
  });

  it('a changed source is copied over the EU copy only while it has the recorded ETag', () => {
    const [p] = planPage(sources(listed('u/a', 'sg', 'new')), target(['u/a', 't-u/a']), previous(entry('u/a')));
    expect(p).toMatchObject({ kind: 'place', expect: { etag: 't-u/a' }, previous: { key: 'u/a' } });
  });

  it('a key no source lists any more is an erasure; already gone from the target: no request', () => {
    expect(planPage(sources(), target(['u/a', 't-u/a']), previous(entry('u/a')))).toEqual([{ kind: 'erase', key: 'u/a', entry: entry('u/a'), targetGone: false }]);
    expect(planPage(sources(), target(), previous(entry('u/a')))).toEqual([{ kind: 'erase', key: 'u/a', entry: entry('u/a'), targetGone: true }]);
  });

  it('an EU copy with another ETag is reported (changed or erased source alike), never planned for a write', () => {
    const changed = planPage(sources(listed('u/a', 'sg', 'new')), target(['u/a', 'someone-else']), previous(entry('u/a')));
    expect(changed).toMatchObject([{ kind: 'target-changed', found: { etag: 'someone-else' } }]);
    const erased = planPage(sources(), target(['u/a', 'someone-else']), previous(entry('u/a')));
    expect(erased).toMatchObject([{ kind: 'target-changed', candidates: [] }]);
  });

  it('an EU copy that vanished is copied again, create-only', () => {
    expect(planPage(sources(listed('u/a')), target(), previous(entry('u/a')))).toMatchObject([{ kind: 'place', expect: { absent: true } }]);
  });

  it('a duplicate across sources is unchanged while every recorded site keeps its ETag', () => {
    const dup = entry('u/a', { alsoAt: [{ site: 'us', etag: 'e-us' }] });
    expect(kinds(planPage(sources(listed('u/a'), listed('u/a', 'us', 'e-us')), target(['u/a', 't-u/a']), previous(dup)))).toEqual(['u/a:carry']);
    // One duplicate erased: the key is placed again (the remaining source decides), not erased.
    expect(kinds(planPage(sources(listed('u/a', 'us', 'e-us')), target(['u/a', 't-u/a']), previous(dup)))).toEqual(['u/a:place']);
    // A superseded version (newest-wins) is known too: no read.
    const sup = entry('u/a', { superseded: [{ site: 'us', etag: 'old' }] });
    expect(kinds(planPage(sources(listed('u/a'), listed('u/a', 'us', 'old')), target(['u/a', 't-u/a']), previous(sup)))).toEqual(['u/a:carry']);
  });

  it('a key only the target holds, that no generation recorded, is looked at as a possible orphan', () => {
    expect(kinds(planPage(sources(), target(['u/z', 'x']), previous()))).toEqual(['u/z:orphan']);
  });

  it('plans come in S3 key order (UTF-8 bytes)', () => {
    const plans = planPage(sources(listed('u/é'), listed('u/z'), listed('u/A')), target(), previous(entry('u/b')));
    expect(plans.map((p) => p.key)).toEqual(['u/A', 'u/b', 'u/z', 'u/é']);
  });
});

describe('the previous generation in a page range', () => {
  const entries = ['u/a', 'u/b', 'u/c', 'u/d'].map((k) => entry(k));
  it('is after the cursor (exclusive) up to the page end (inclusive)', () => {
    expect([...entriesInRange(entries, 'u/a', 'u/c').keys()]).toEqual(['u/b', 'u/c']);
    expect([...entriesInRange(entries, undefined, 'u/a').keys()]).toEqual(['u/a']);
    expect([...entriesInRange(entries, 'u/b', undefined).keys()]).toEqual(['u/c', 'u/d']);
  });
});
