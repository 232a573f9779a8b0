import { DeleteObjectCommand, GetBucketVersioningCommand, HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { lockReason, type ObjectVersion } from '../domain/versions';
import type { Site } from './clients';
import { StorageError, describeS3Error, isNotFound, isPreconditionFailed, s3Status } from './errors';
import { decodeListedKey } from './listing';
import { stripQuotes } from './object-meta';

/**
 * Whether the site's bucket keeps versions (versioning Enabled or Suspended: a suspended bucket still
 * holds the versions written while it was enabled). One GetBucketVersioning request (the site's
 * credentials need s3:GetBucketVersioning).
 */
export async function isVersioned(site: Site, signal?: AbortSignal): Promise<boolean> {
  try {
    const r = await site.s3.send(new GetBucketVersioningCommand({ Bucket: site.bucket }), { abortSignal: signal });
    return r.Status === 'Enabled' || r.Status === 'Suspended';
  } catch (err) {
    // A store with no versioning at all (versitygw started without --versioning-dir answers 501
    // VersioningNotConfigured) keeps no versions.
    if (s3Status(err) === 501) return false;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, action: 'GetBucketVersioning' });
  }
}

/**
 * For read-only listings (residue, verify, report): whether to list the bucket's versions. As
 * `isVersioned`, except that credentials refused GetBucketVersioning (an auditor's: S3 and versitygw
 * give it to the bucket owner or by policy only) fall back to trying ListObjectVersions itself, which
 * read access allows: it lists every version of a versioned bucket and each object once (version
 * `null`) of a plain one, so listing versions is right either way when the store answers it.
 */
export async function listsVersions(site: Site, signal?: AbortSignal): Promise<boolean> {
  try {
    return await isVersioned(site, signal);
  } catch (err) {
    if (!(err instanceof StorageError) || err.status !== 403) throw err;
  }
  try {
    await site.s3.send(new ListObjectVersionsCommand({ Bucket: site.bucket, MaxKeys: 1 }), { abortSignal: signal });
    return true;
  } catch (err) {
    if (s3Status(err) === 501) return false;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, action: 'ListObjectVersions' });
  }
}

const decoded = (encoding: string | undefined, s: string | undefined) => (s !== undefined && encoding === 'url' ? decodeListedKey(s) : s);

/**
 * Every version and delete marker under `prefix`, page by page, in key order and within a key newest
 * first (as ListObjectVersions returns them: `onVersion` per entry). `what` names the listing in errors.
 */
export async function forEachVersion(site: Site, prefix: string, what: string, onVersion: (v: ObjectVersion) => void | 'stop', signal?: AbortSignal): Promise<void> {
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    let r;
    try {
      r = await site.s3.send(new ListObjectVersionsCommand({
        Bucket: site.bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker, EncodingType: 'url',
      }), { abortSignal: signal });
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key: prefix, action: what });
    }
    const enc = r.EncodingType;
    const page: (ObjectVersion & { order: number })[] = [];
    let order = 0;
    for (const v of r.Versions ?? []) {
      page.push({
        key: decoded(enc, v.Key)!, versionId: v.VersionId ?? 'null', etag: stripQuotes(v.ETag), size: v.Size ?? 0, deleteMarker: false,
        latest: v.IsLatest === true, lastModified: (v.LastModified ?? new Date(0)).toISOString(), storageClass: v.StorageClass, order: order++,
      });
    }
    for (const d of r.DeleteMarkers ?? []) {
      page.push({
        key: decoded(enc, d.Key)!, versionId: d.VersionId ?? 'null', etag: '', size: 0, deleteMarker: true,
        latest: d.IsLatest === true, lastModified: (d.LastModified ?? new Date(0)).toISOString(), order: order++,
      });
    }
    // The SDK splits one ordered list in two: merged back by key (byte order), latest first, then newest first.
    page.sort((a, b) => (a.key === b.key
      ? Number(b.latest) - Number(a.latest) || b.lastModified.localeCompare(a.lastModified) || a.order - b.order
      : Buffer.compare(Buffer.from(a.key), Buffer.from(b.key))));
    for (const { order: _o, ...v } of page) if (onVersion(v) === 'stop') return;
    if (!r.IsTruncated) return;
    keyMarker = decoded(enc, r.NextKeyMarker);
    versionIdMarker = r.NextVersionIdMarker;
  }
}

/** Every version and delete marker of exactly `key`, newest first. */
export async function keyVersions(site: Site, key: string, signal?: AbortSignal): Promise<ObjectVersion[]> {
  const out: ObjectVersion[] = [];
  await forEachVersion(site, key, 'ListObjectVersions (the versions of a key)', (v) => {
    if (v.key === key) out.push(v);
    else if (Buffer.compare(Buffer.from(v.key), Buffer.from(key)) > 0 && out.length > 0) return 'stop';
  }, signal);
  return out;
}

/** Why a version cannot be deleted, from its HEAD (legal hold, retention until a date), or undefined when it is not locked. */
export async function lockOf(site: Site, key: string, versionId: string | undefined, signal?: AbortSignal): Promise<string | undefined> {
  try {
    const h = await site.s3.send(new HeadObjectCommand({ Bucket: site.bucket, Key: key, VersionId: versionId }), { abortSignal: signal });
    return lockReason({ legalHold: h.ObjectLockLegalHoldStatus, mode: h.ObjectLockMode, retainUntil: h.ObjectLockRetainUntilDate }, new Date());
  } catch (err) {
    // A delete marker has no HEAD (405/404): it holds no data and is never locked.
    if (isNotFound(err) || s3Status(err) === 405) return undefined;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'HeadObject (object lock)' });
  }
}

export type VersionDelete = { r: 'deleted' | 'changed' | 'absent' } | { r: 'locked'; reason: string };

/**
 * Deletes one version, pinned by its VersionId and, for a version with data, its listed ETag (If-Match):
 * never another version, never bytes that are not the ones listed. A refusal (403) is looked at: a
 * version under retention or legal hold is `locked` with the reason and date; any other refusal is an error.
 */
export async function deleteVersion(site: Site, key: string, versionId: string, etag: string | undefined, signal?: AbortSignal): Promise<VersionDelete> {
  try {
    await site.s3.send(new DeleteObjectCommand({
      Bucket: site.bucket, Key: key, VersionId: versionId, ...(etag ? { IfMatch: `"${etag}"` } : {}),
    }), { abortSignal: signal });
    return { r: 'deleted' };
  } catch (err) {
    if (isPreconditionFailed(err)) return { r: 'changed' };
    if (isNotFound(err)) return { r: 'absent' };
    if (s3Status(err) === 403) {
      const reason = await lockOf(site, key, versionId, signal);
      if (reason) return { r: 'locked', reason };
    }
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: `DeleteObject (version ${versionId})` });
  }
}
