import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CONTROL_ROOT } from '../domain/layout';
import type { Site } from './clients';
import { describeS3Error, isPreconditionFailed, s3Status } from './errors';

/** What a site does with `If-Match` on DeleteObject. */
export type ConditionalDeletes = 'enforced' | 'ignored' | 'unsupported';

/**
 * Proves whether `site` enforces conditional deletes, the guard of every deletion Clover makes: writes a
 * canary object under `_clover/probe/`, deletes it with an `If-Match` that cannot match (an enforcing
 * store answers 412), then removes it. `ignored`: the wrong ETag deleted it anyway; `unsupported`: the
 * store refuses the header (501, as AWS did before September 2025).
 */
export async function probeConditionalDeletes(site: Site, signal?: AbortSignal): Promise<ConditionalDeletes> {
  const key = `${CONTROL_ROOT}probe/conditional-delete-${randomBytes(6).toString('hex')}`;
  const ctx = (action: string) => ({ site: site.name, bucket: site.bucket, key, action });
  // In a versioned bucket the canary is removed by its version id (and a delete marker the probe made,
  // by its own), so nothing of it is left behind.
  const versions: (string | undefined)[] = [];
  try {
    versions.push((await site.s3.send(new PutObjectCommand({ Bucket: site.bucket, Key: key, Body: 'clover conditional-delete probe' }), { abortSignal: signal })).VersionId);
  } catch (err) {
    throw describeS3Error(err, ctx('writing the conditional-delete probe'));
  }
  try {
    const r = await site.s3.send(new DeleteObjectCommand({ Bucket: site.bucket, Key: key, IfMatch: '"00000000000000000000000000000000"' }), { abortSignal: signal });
    if (r.DeleteMarker) versions.push(r.VersionId);
    return 'ignored';
  } catch (err) {
    if (isPreconditionFailed(err)) return 'enforced';
    if (s3Status(err) === 501) return 'unsupported';
    throw describeS3Error(err, ctx('DeleteObject with If-Match (conditional-delete probe)'));
  } finally {
    for (const VersionId of versions) {
      await site.s3.send(new DeleteObjectCommand({ Bucket: site.bucket, Key: key, VersionId }), { abortSignal: signal }).catch(() => undefined);
    }
  }
}
