import { AbortMultipartUploadCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Site } from './clients';
import { describeS3Error, isNotFound, isPreconditionFailed } from './errors';
import { listUploadsPage } from './listing';

/**
 * Deletes `key` only while it still has `etag` (a conditional DeleteObject): an object changed since
 * Clover recorded it is never removed. Returns what happened.
 */
export async function deleteIfUnchanged(site: Site, key: string, etag: string, signal?: AbortSignal): Promise<'deleted' | 'changed' | 'absent'> {
  try {
    await site.s3.send(new DeleteObjectCommand({ Bucket: site.bucket, Key: key, IfMatch: `"${etag}"` }), { abortSignal: signal });
    return 'deleted';
  } catch (err) {
    if (isPreconditionFailed(err)) return 'changed';
    if (isNotFound(err)) return 'absent';
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'DeleteObject' });
  }
}

/** Deletes one of Clover's own records (staging); a record already gone is fine. */
export async function deleteRecord(site: Site, key: string, signal?: AbortSignal): Promise<void> {
  try {
    await site.s3.send(new DeleteObjectCommand({ Bucket: site.bucket, Key: key }), { abortSignal: signal });
  } catch (err) {
    if (!isNotFound(err)) throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'DeleteObject (a staging record)' });
  }
}

/** Aborts the incomplete multipart uploads under `prefix` (what a cancelled or crashed copy left behind). */
export async function abortUploads(site: Site, prefix: string, signal?: AbortSignal): Promise<number> {
  let aborted = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    let r;
    try {
      r = await listUploadsPage(site, { Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }, signal);
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key: prefix, action: 'ListMultipartUploads' });
    }
    for (const u of r.Uploads ?? []) {
      try {
        await site.s3.send(new AbortMultipartUploadCommand({ Bucket: site.bucket, Key: u.Key!, UploadId: u.UploadId! }), { abortSignal: signal });
        aborted++;
      } catch (err) {
        if (!isNotFound(err)) throw describeS3Error(err, { site: site.name, bucket: site.bucket, key: u.Key, action: 'AbortMultipartUpload' });
      }
    }
    if (!r.IsTruncated) return aborted;
    keyMarker = r.NextKeyMarker;
    uploadIdMarker = r.NextUploadIdMarker;
  }
}
