import { createHash } from 'node:crypto';
import {
  amendManifest, buildManifest, canonicalJson, compareKeys, manifestDigest, manifestGeneration, type Manifest, type ManifestEntry,
} from '../../src/domain/manifest';
import { at } from '../support/at';

const entry = (key: string, size = 10, over: Partial<ManifestEntry> = {}): ManifestEntry => ({
  key, size, sha256: createHash('sha256').update(key).digest('hex'), sourceSite: 'sg', sourceEtag: `etag-${key}`,
  sourceLastModified: '2024-05-01T00:00:00.000Z', targetEtag: `t-${key}`, outcome: 'copied', ...over,
});

const fields = (entries: ManifestEntry[]) => ({
  migrationId: 'wave-1', userId: 'u-1', targetSite: 'eu-ie', bucket: 'clover-eu-ie', userPrefix: 'users/u-1/',
  committedAt: '2024-05-02T00:00:00.000Z', generation: 1, entries, conflicts: [], erasures: [],
});

/** The same object with its keys in reverse order at every level (arrays keep their order). */
function reverseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)]));
  return v;
}

describe('canonical JSON', () => {
  it('sorts object keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1, { z: 1, y: 2 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,1,{"y":2,"z":1}]},"b":1}');
  });
  it('gives the same bytes for the same data whatever the key order', () => {
    const v = { migrationId: 'm', entries: [{ key: 'k', size: 1, nested: { p: true, q: null } }], n: 2.5 };
    expect(canonicalJson(reverseKeys(v))).toBe(canonicalJson(v));
  });
  it('is JSON that parses back to the same data', () => {
    const v = { s: 'quote " backslash \\ newline \n unicode é 😀', n: -0.125, t: true, f: false, z: null, a: [] as unknown[], o: {} };
    expect(JSON.parse(canonicalJson(v))).toEqual(v);
  });
  it('leaves out undefined fields, as JSON.stringify does', () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    expect(canonicalJson({ a: 1, b: undefined })).toBe(canonicalJson({ a: 1 }));
  });
  it('escapes keys', () => {
    expect(canonicalJson({ 'a"b': 1 })).toBe('{"a\\"b":1}');
  });
});

describe('manifest', () => {
  const entries = [entry('users/u-1/b.txt', 5), entry('users/u-1/a.txt', 7), entry('users/u-1/é.txt', 11), entry('users/u-1/Z.txt', 13)];

  it('is built with its entries in S3 key order, counts, total bytes and a digest of everything else', () => {
    const m = buildManifest(fields(entries));
    expect(m.format).toBe('clover-manifest/1');
    expect(m.entries.map((e) => e.key)).toEqual(['users/u-1/Z.txt', 'users/u-1/a.txt', 'users/u-1/b.txt', 'users/u-1/é.txt']);
    expect(m.objectCount).toBe(4);
    expect(m.totalBytes).toBe(36);
    expect(m.digest).toMatch(/^[0-9a-f]{64}$/);
    // The digest is the SHA-256 of the canonical JSON of every field but itself: an auditor can recompute it.
    const { digest, ...rest } = m;
    expect(createHash('sha256').update(canonicalJson(rest)).digest('hex')).toBe(digest);
    expect(manifestDigest(m)).toBe(digest);
  });

  it('does not reorder the caller\'s entry list', () => {
    const mine = [...entries];
    buildManifest(fields(mine));
    expect(mine).toEqual(entries);
  });

  it('an empty user gives an empty manifest', () => {
    const m = buildManifest(fields([]));
    expect(m).toMatchObject({ objectCount: 0, totalBytes: 0, entries: [] });
    expect(manifestDigest(m)).toBe(m.digest);
  });

  it('its digest does not depend on key order, entry order or the stored digest', () => {
    const m = buildManifest(fields(entries));
    expect(manifestDigest(reverseKeys(m) as Manifest)).toBe(m.digest);
    expect(buildManifest(fields([...entries].reverse())).digest).toBe(m.digest);
    expect(manifestDigest({ ...m, digest: 'something else' })).toBe(m.digest);
    // A manifest read back from storage (JSON round trip) still verifies.
    expect(manifestDigest(JSON.parse(JSON.stringify(m)))).toBe(m.digest);
  });

  it('its digest changes when any entry changes', () => {
    const m = buildManifest(fields(entries));
    const changed: Partial<ManifestEntry>[] = [
      { sha256: '0'.repeat(64) }, { size: 6 }, { key: 'users/u-1/c.txt' }, { sourceSite: 'us' }, { sourceEtag: 'other' },
      { sourceLastModified: '2024-05-01T00:00:00.001Z' }, { targetEtag: 'other' }, { outcome: 'present' },
    ];
    const digests = new Set([m.digest]);
    for (const change of changed) {
      const e2 = entries.map((e, i) => (i === 0 ? { ...e, ...change } : e));
      digests.add(buildManifest(fields(e2)).digest);
      // Tampering with a stored manifest is detected too.
      const tampered = { ...m, entries: m.entries.map((e) => (e.key === at(entries, 0).key ? { ...e, ...change } : e)) };
      expect(manifestDigest(tampered)).not.toBe(m.digest);
    }
    expect(digests.size).toBe(changed.length + 1);
  });

  it('its digest changes when an entry is removed, a conflict is added or a header field changes', () => {
    const m = buildManifest(fields(entries));
    expect(buildManifest(fields(entries.slice(1))).digest).not.toBe(m.digest);
    expect(buildManifest({ ...fields(entries), conflicts: [{ key: 'users/u-1/a.txt', kind: 'sources-differ', chosenSite: 'sg', sites: [], resolution: 'newest-wins' }] }).digest).not.toBe(m.digest);
    expect(buildManifest({ ...fields(entries), userId: 'u-2' }).digest).not.toBe(m.digest);
    expect(manifestDigest({ ...m, objectCount: 3 })).not.toBe(m.digest);
    expect(manifestDigest({ ...m, totalBytes: 35 })).not.toBe(m.digest);
  });

  it('an amendment recomputes the digest and leaves the original as it was', () => {
    const m = buildManifest(fields(entries));
    const before = JSON.stringify(m);
    const disposed = amendManifest(m, { sourceDisposition: { state: 'deleted', at: '2024-06-01T00:00:00.000Z', deleted: 4, keptChanged: [] } });
    expect(disposed.sourceDisposition?.deleted).toBe(4);
    expect(disposed.digest).not.toBe(m.digest);
    expect(manifestDigest(disposed)).toBe(disposed.digest);
    expect(JSON.stringify(m)).toBe(before);
    const rolledBack = amendManifest(disposed, { rolledBack: { at: '2024-06-02T00:00:00.000Z', restored: 4, targetDeleted: 4, kept: [] } });
    expect(manifestDigest(rolledBack)).toBe(rolledBack.digest);
    expect(rolledBack.sourceDisposition).toEqual(disposed.sourceDisposition);
    expect(new Set([m.digest, disposed.digest, rolledBack.digest]).size).toBe(3);
  });

  it('an amendment is the next generation, chained to the one it amends; the pass it belongs to keeps its name', () => {
    const m = buildManifest(fields(entries));
    const disposed = amendManifest(m, { sourceDisposition: { state: 'deleted', at: '2024-06-01T00:00:00.000Z', deleted: 4, keptChanged: [] } }, 'wf/run/7');
    expect(disposed).toMatchObject({ generation: 2, previousDigest: m.digest, writtenBy: 'wf/run/7' });
    const rolledBack = amendManifest(disposed, { rolledBack: { at: '2024-06-02T00:00:00.000Z', restored: 4, targetDeleted: 4, kept: [] } });
    expect(rolledBack).toMatchObject({ generation: 3, previousDigest: disposed.digest });
    expect(manifestGeneration(disposed)).toBe(manifestGeneration(m));
    expect(manifestGeneration(rolledBack)).toBe(manifestGeneration(m));
    expect(manifestGeneration(buildManifest(fields(entries.slice(1))))).not.toBe(manifestGeneration(m));
  });
});

describe('compareKeys: the order S3 lists keys in (UTF-8 bytes)', () => {
  /** Independent oracle: UTF-8 byte order is Unicode code point order. */
  const byCodePoints = (a: string, b: string): number => {
    const x = [...a].map((c) => c.codePointAt(0)!);
    const y = [...b].map((c) => c.codePointAt(0)!);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
    return x.length - y.length;
  };
  const sign = (n: number) => Math.sign(n);

  it('orders ASCII by byte: digits, then capitals, then lower case; a prefix first', () => {
    const sorted = ['users/u/', 'users/u/-', 'users/u/.', 'users/u/0', 'users/u/9', 'users/u/A', 'users/u/Z', 'users/u/_', 'users/u/a', 'users/u/a/', 'users/u/a/b', 'users/u/z'];
    expect([...sorted].reverse().sort(compareKeys)).toEqual(sorted);
  });
  it('is 0 only for equal keys', () => {
    expect(compareKeys('a/b', 'a/b')).toBe(0);
    expect(compareKeys('', '')).toBe(0);
    expect(compareKeys('a', 'a ')).toBeLessThan(0);
    expect(compareKeys('é', 'e\u0301')).not.toBe(0); // no Unicode normalisation: different bytes, different keys
  });
  it('puts non-ASCII after ASCII, by code point', () => {
    expect(compareKeys('z', 'é')).toBeLessThan(0); // 0x7A < 0xC3
    expect(compareKeys('é', 'ü')).toBeLessThan(0);
    expect(compareKeys('ÿ', 'Ā')).toBeLessThan(0); // U+00FF < U+0100: 2-byte vs 2-byte
    expect(compareKeys('߿', 'ࠀ')).toBeLessThan(0); // U+07FF (2 bytes) < U+0800 (3 bytes)
    expect(compareKeys('中', '日')).toBeLessThan(0);
  });
  it('puts a surrogate pair (4 UTF-8 bytes) after every BMP character, unlike JavaScript\'s UTF-16 order', () => {
    const bmpHigh = '\uFF61'; // HALFWIDTH IDEOGRAPHIC FULL STOP: UTF-16 FF61, UTF-8 EF BD A1
    const emoji = '😀'; // U+1F600: UTF-16 D83D DE00, UTF-8 F0 9F 98 80
    expect(emoji < bmpHigh).toBe(true); // what a plain string sort does
    expect(compareKeys(bmpHigh, emoji)).toBeLessThan(0); // what S3 does
    expect(compareKeys(emoji, bmpHigh)).toBeGreaterThan(0);
    expect(compareKeys('\uE000', '𐀀')).toBeLessThan(0); // private use U+E000 vs U+10000
    expect(compareKeys('\uFFFD', '\u{10FFFF}')).toBeLessThan(0);
    expect(['k/😀', 'k/\uFF61', 'k/a', 'k/\uD7FF'].sort(compareKeys)).toEqual(['k/a', 'k/\uD7FF', 'k/\uFF61', 'k/😀']);
  });
  it('agrees with code point order on a mixed set, and is a consistent order', () => {
    const alphabet = ['a', 'B', '0', '/', '-', '.', 'é', 'ß', 'Ω', '中', '\uD7FF', '\uE000', '\uFF61', '\uFFFD', '😀', '𐀀', '\u{10FFFF}', 'Ā'];
    // Deterministic pseudo-random keys (a small LCG), so a failure reproduces.
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const keys = Array.from({ length: 400 }, () => Array.from({ length: 1 + rnd(4) }, () => alphabet[rnd(alphabet.length)]).join(''));
    for (let i = 0; i < keys.length; i++) {
      const a = at(keys, i);
      const b = at(keys, (i * 7 + 3) % keys.length);
      expect(sign(compareKeys(a, b))).toBe(sign(byCodePoints(a, b)));
      expect(sign(compareKeys(b, a)) + sign(compareKeys(a, b))).toBe(0); // antisymmetric
    }
    const sorted = [...keys].sort(compareKeys);
    expect(sorted).toEqual([...keys].sort(byCodePoints));
    for (let i = 1; i < sorted.length; i++) expect(compareKeys(at(sorted, i - 1), at(sorted, i))).toBeLessThanOrEqual(0);
  });
});
