import type { LimitFunction } from 'p-limit';
import type { ObjectVersion } from '../domain/versions';
import type { Site } from '../storage/clients';
import { readProgress, runRecorded } from '../storage/progress';
import { deleteVersion, forEachVersion } from '../storage/versions';
import { site, type ActivityDeps } from './deps';

/** One erased key's purge, as its progress record (op `purge-erased`) holds it. */
export interface PurgeOutcome {
  /** `<site>\u0000<key>`: a key may be erased in several sources. */
  key: string;
  site: string;
  objectKey: string;
  /** Versions and delete markers Clover deleted. */
  deleted: number;
  /** Versions left, with why (object lock, changed since listed). */
  kept?: string[];
}

/**
 * The plan's `purgeErased` at cut-over: in each versioned source, every key under the user's prefix
 * whose current version is a delete marker (the user erased it; its data still sits in noncurrent
 * versions) and that the migration did not copy loses every version and delete marker listed, each
 * deleted pinned by VersionId (and ETag). A version written after the listing is not known and not
 * deleted: the residue check reports it. Recorded per key like the disposal (op `purge-erased`), so a
 * re-run acts only on keys with no outcome. Returns the number of keys purged (over every run).
 */
export async function purgeErasedKeys(o: {
  deps: ActivityDeps; target: Site; migrationId: string; userId: string; generation: string; userPrefix: string;
  sources: string[]; migrated: ReadonlySet<string>; limit: LimitFunction; fenceDown: () => Promise<void>; beat: () => void; signal?: AbortSignal;
}): Promise<number> {
  const progress = await readProgress<PurgeOutcome>(o.target, o.migrationId, o.userId, 'purge-erased', o.generation, o.signal);
  const items: { site: string; key: string; versions: ObjectVersion[] }[] = [];
  for (const name of o.sources) {
    let current: { site: string; key: string; versions: ObjectVersion[] } | undefined;
    await forEachVersion(site(o.deps, name), o.userPrefix, 'ListObjectVersions (erased keys to purge)', (v) => {
      if (current?.key !== v.key) {
        current = v.latest && v.deleteMarker && !o.migrated.has(v.key) ? { site: name, key: v.key, versions: [] } : undefined;
        if (current) items.push(current);
      }
      current?.versions.push(v);
    }, o.signal);
    o.beat();
  }
  await runRecorded({
    site: o.target, migrationId: o.migrationId, userId: o.userId, op: 'purge-erased', generation: o.generation, signal: o.signal,
    items, keyOf: (i) => `${i.site}\u0000${i.key}`, progress, limit: o.limit,
    work: async (i): Promise<PurgeOutcome> => {
      const src = site(o.deps, i.site);
      let deleted = 0;
      const kept: string[] = [];
      // Oldest first, the delete marker last: an interrupted purge leaves the key still reading as erased.
      for (const v of [...i.versions].reverse()) {
        await o.fenceDown();
        const r = await deleteVersion(src, i.key, v.versionId, v.deleteMarker ? undefined : v.etag, o.signal);
        if (r.r === 'deleted' || r.r === 'absent') deleted++;
        else kept.push(r.r === 'locked' ? `version ${v.versionId} is ${r.reason}` : `version ${v.versionId} changed since it was listed`);
        o.beat();
      }
      return { key: `${i.site}\u0000${i.key}`, site: i.site, objectKey: i.key, deleted, ...(kept.length > 0 ? { kept } : {}) };
    },
  });
  let purged = 0;
  for (const out of progress.done.values()) if (!out.kept) purged++;
  return purged;
}
