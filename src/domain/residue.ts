import { describeConflict, entrySites, type ConflictRecord, type Manifest, type ManifestEntry, type ResidueItem } from './manifest';

/** Why an object is in a source after cut-over when Clover knows nothing of it. */
export const NOT_IN_MANIFEST = 'not in the manifest: written after the final pass, or never migrated';

/** A source object the residue check found (key, site and the ETag listed). */
export interface ListedObject {
  key: string;
  site: string;
  etag: string;
  /** Bytes, as listed (absent where a caller built the object itself). */
  size?: number;
  /** In a versioned source: the version's id. */
  versionId?: string;
  /** A noncurrent version (an older version of the key, or one under a delete marker). */
  noncurrent?: boolean;
  /** The key's current version is a delete marker: the user erased it, its data is in noncurrent versions. */
  erased?: boolean;
}

/** Why a version of a key the user erased is still in a versioned source. */
export const ERASED_VERSION = 'erased by the user (its current version is a delete marker) but this noncurrent version still holds its data; set "purgeErased": true in the plan to delete such versions at cut-over';

/** What a conflict of the newest generation means for the object left in a source. */
export function conflictResidueReason(c: ConflictRecord): string {
  const outcome = c.kind === 'target-changed' ? ', so the source was not deleted'
    : c.kind === 'foreign-target' || c.resolution !== 'newest-wins' ? ', so it was not migrated' : '';
  return `a conflict of the last pass: ${describeConflict(c)}${outcome}`;
}

const at = (key: string, site: string) => `${site}\u0000${key}`;

/**
 * Classifies what a listing of the user's prefix in the sources found after the deletion: each object
 * with why it is there, from what Clover knows, first match wins:
 * 1. kept at disposal (`kept`: the disposal's per-site kept reasons, e.g. it changed since the copy);
 * 2. a conflict of the newest generation (`m.conflicts`);
 * 3. superseded under newest-wins (`e.superseded`, same ETag as recorded): never deleted;
 * 4. a manifest entry's site: still the migrated object (ETag as recorded), or written again after the deletion;
 * 5. otherwise NOT_IN_MANIFEST.
 * A version of a versioned source is classified the same, its reason starting with its version id;
 * a noncurrent version of an erased key not migrated is ERASED_VERSION.
 * Pure: builds its indexes once, then classifies each listed object.
 */
export function residueClassifier(m: Pick<Manifest, 'entries' | 'conflicts'>, kept: readonly { key: string; site: string; reason: string }[]): (o: ListedObject) => ResidueItem {
  const keptAt = new Map(kept.map((k) => [at(k.key, k.site), k.reason]));
  const conflicts = new Map<string, ConflictRecord>();
  for (const c of m.conflicts) if (!conflicts.has(c.key)) conflicts.set(c.key, c);
  const entries = new Map<string, ManifestEntry>(m.entries.map((e) => [e.key, e]));
  const classifyOne = (o: ListedObject): ResidueItem => {
    const item = (reason: string): ResidueItem => ({ key: o.key, site: o.site, etag: o.etag, reason });
    const keptReason = keptAt.get(at(o.key, o.site));
    if (keptReason !== undefined) return item(`kept at disposal: ${keptReason}`);
    const c = conflicts.get(o.key);
    if (c) return item(conflictResidueReason(c));
    const e = entries.get(o.key);
    if (e) {
      const lost = e.superseded?.find((s) => s.site === o.site);
      if (lost && lost.etag === o.etag) {
        return item(`superseded under newest-wins: its different bytes lost to the newer copy from ${e.sourceSite}; never deleted`);
      }
      const mine = entrySites(e).find((s) => s.site === o.site);
      if (mine) {
        return item(mine.etag === o.etag
          ? 'the migrated object is still there: it was not deleted'
          : 'written at this key after Clover deleted the migrated object (different bytes)');
      }
    }
    return item(NOT_IN_MANIFEST);
  };
  return (o) => {
    if (o.versionId === undefined) return classifyOne(o);
    const version = `version ${o.versionId}${o.noncurrent ? ' (noncurrent)' : ''}: `;
    const keptReason = keptAt.get(at(o.key, o.site));
    if (keptReason === undefined && o.erased && !entries.has(o.key)) return { key: o.key, site: o.site, etag: o.etag, reason: version + ERASED_VERSION };
    if (keptReason === undefined && o.noncurrent && entries.has(o.key)) {
      return { key: o.key, site: o.site, etag: o.etag, reason: `${version}an older version of a migrated key, not deleted` };
    }
    const r = classifyOne(o);
    return { ...r, reason: version + r.reason };
  };
}
