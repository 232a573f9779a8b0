import { HeadObjectCommand, RestoreObjectCommand, type Tier } from '@aws-sdk/client-s3';
import { isArchived, restoreState } from '../domain/versions';
import type { Site } from './clients';
import { describeS3Error, s3Code, s3Status } from './errors';
import { forEachListed } from './listing';

/** An object in an archive storage class, as a source lists it. */
export interface ArchivedObject {
  site: string;
  key: string;
  storageClass: string;
  size: number;
}

/** Every object under `prefix` with its storage class and size (`onObject` per object, listing order). */
export function forEachWithClass(site: Site, prefix: string, onObject: (o: ArchivedObject) => void, signal?: AbortSignal): Promise<void> {
  return forEachListed(site, prefix, 'ListObjectsV2 (storage classes)', (o) => {
    if (o.Key!.endsWith('/') && (o.Size ?? 0) === 0) return; // "folder" markers carry no data
    onObject({ site: site.name, key: o.Key!, storageClass: o.StorageClass ?? 'STANDARD', size: o.Size ?? 0 });
  }, signal);
}

/** The archived objects under `prefix` in `site` (GLACIER, DEEP_ARCHIVE). */
export async function listArchived(site: Site, prefix: string, signal?: AbortSignal): Promise<ArchivedObject[]> {
  const out: ArchivedObject[] = [];
  await forEachWithClass(site, prefix, (o) => {
    if (isArchived(o.storageClass)) out.push(o);
  }, signal);
  return out;
}

/** Where a restore of one archived object stands, from its HEAD's `x-amz-restore`. */
export async function restoreStatus(site: Site, key: string, signal?: AbortSignal): Promise<'none' | 'ongoing' | 'done'> {
  try {
    const h = await site.s3.send(new HeadObjectCommand({ Bucket: site.bucket, Key: key }), { abortSignal: signal });
    return restoreState(h.Restore);
  } catch (err) {
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'HeadObject (restore status)' });
  }
}

/**
 * Asks for a temporary readable copy of an archived object (RestoreObject, `days` at `tier`). A restore
 * already under way (409 RestoreAlreadyInProgress) is fine: the request is idempotent for Clover.
 */
export async function requestRestore(site: Site, key: string, days: number, tier: Tier, signal?: AbortSignal): Promise<void> {
  try {
    await site.s3.send(new RestoreObjectCommand({
      Bucket: site.bucket, Key: key, RestoreRequest: { Days: days, GlacierJobParameters: { Tier: tier } },
    }), { abortSignal: signal });
  } catch (err) {
    if (s3Status(err) === 409 && s3Code(err) === 'RestoreAlreadyInProgress') return;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'RestoreObject' });
  }
}
