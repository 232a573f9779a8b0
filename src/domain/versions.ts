/**
 * Versioned sources, object lock and archive storage classes: the pure decisions (no S3 import).
 */

/** One entry of a ListObjectVersions listing: a version with data, or a delete marker. */
export interface ObjectVersion {
  key: string;
  versionId: string;
  /** Empty for a delete marker. */
  etag: string;
  size: number;
  deleteMarker: boolean;
  /** The key's current version (a delete marker here means the key reads as absent: erased). */
  latest: boolean;
  lastModified: string;
  storageClass?: string;
}

/**
 * What to do with the versions of one migrated key at cut-over, from its listing (newest first) and
 * the ETag (and, when the copy recorded it, the version id) the manifest recorded for this site:
 * - `absent`: no version at all;
 * - `changed`: the newest entry is not the migrated version (a newer version or a delete marker
 *   appeared after the final pass): nothing is deleted, it is residue;
 * - `delete`: every older version and delete marker, oldest first, then the migrated (current) version
 *   last, each pinned by its VersionId (and ETag for versions with data). Every entry here was there
 *   before the migrated version was current, so none is unknown to the migration; the migrated version
 *   goes last so that a run interrupted half-way still finds it current and carries on.
 */
export function planKeyVersionDeletes(versions: readonly ObjectVersion[], etag: string, versionId?: string):
  { action: 'absent' } | { action: 'changed'; reason: string } | { action: 'delete'; order: ObjectVersion[] } {
  const newest = versions[0];
  if (!newest) return { action: 'absent' };
  if (newest.deleteMarker) return { action: 'changed', reason: `erased at the source after the final pass (its current version is a delete marker, ${newest.versionId}); its versions were not deleted` };
  // The version the copy read, when recorded, must be the current one (same bytes written again are a new version).
  if (newest.etag !== etag || (versionId !== undefined && newest.versionId !== versionId)) return { action: 'changed', reason: `the source object changed since it was copied (a newer version, ${newest.versionId}); its versions were not deleted` };
  return { action: 'delete', order: [...versions].reverse() };
}

/** Why an object cannot be deleted: legal hold, or retention whose date is still ahead; undefined when neither. */
export function lockReason(l: { legalHold?: string; mode?: string; retainUntil?: Date | string }, now: Date): string | undefined {
  const parts: string[] = [];
  if (l.legalHold === 'ON') parts.push('under legal hold (it can go once the hold is removed)');
  const until = l.retainUntil === undefined ? undefined : new Date(l.retainUntil);
  if (until && until.getTime() > now.getTime()) parts.push(`under object lock (${l.mode ?? 'retention'}) until ${until.toISOString()}`);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** Storage classes whose objects cannot be read without a restore (S3 Glacier Flexible Retrieval and Deep Archive). */
export const ARCHIVE_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export function isArchived(storageClass: string | undefined): boolean {
  return storageClass !== undefined && ARCHIVE_CLASSES.has(storageClass);
}

/**
 * The storage class of an EU copy: the plan's `targetStorageClass`, else the source's class when it
 * is neither an archive class nor STANDARD (undefined: the bucket's default, STANDARD on S3).
 */
export function targetStorageClass(planned: string | undefined, source: string | undefined): string | undefined {
  if (planned) return planned;
  return source && source !== 'STANDARD' && !isArchived(source) ? source : undefined;
}

/** The line a user fails with for an archived object when the plan has no `restoreArchived`. */
export function archivedLine(site: string, key: string, storageClass: string): string {
  return `ARCHIVED site ${site} key ${key} (${storageClass}): add "restoreArchived" to the plan or restore it`;
}

/**
 * What HEAD's `x-amz-restore` says: `none` (no restore asked), `ongoing`, or `done` (a readable copy
 * exists until its expiry). `ongoing-request="false"` is the signal that the copy may start.
 */
export function restoreState(header: string | undefined): 'none' | 'ongoing' | 'done' {
  if (!header) return 'none';
  const m = /ongoing-request="(true|false)"/.exec(header);
  if (!m) return 'none';
  return m[1] === 'true' ? 'ongoing' : 'done';
}

/** Per storage class: objects and bytes (the plan-level estimate), and the archived keys by name. */
export interface StorageClassEstimate {
  classes: Record<string, { objects: number; bytes: number }>;
  archived: { site: string; key: string; storageClass: string; size: number }[];
}

export function addToEstimate(e: StorageClassEstimate, o: { site: string; key: string; size: number; storageClass?: string }): void {
  const c = o.storageClass ?? 'STANDARD';
  const row = (e.classes[c] ??= { objects: 0, bytes: 0 });
  row.objects++;
  row.bytes += o.size;
  if (isArchived(c)) e.archived.push({ site: o.site, key: o.key, storageClass: c, size: o.size });
}
