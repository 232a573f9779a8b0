import { createHash, randomBytes } from 'node:crypto';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CONTROL_ROOT } from '../domain/layout';
import { siteEncryption, type Site } from './clients';
import { StorageError, describeS3Error, isPreconditionFailed, s3Code, s3Status } from './errors';

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

const CANARY = Buffer.from('clover probe canary');

/** Writes a canary under `_clover/probe/` with `extra` PutObject fields, runs `then` on the outcome, removes it. */
async function withCanary<T>(site: Site, name: string, extra: Record<string, unknown>, then: (out: { ServerSideEncryption?: string } | unknown) => T, signal?: AbortSignal): Promise<T> {
  const key = `${CONTROL_ROOT}probe/${name}-${randomBytes(6).toString('hex')}`;
  try {
    const out = await site.s3.send(new PutObjectCommand({ Bucket: site.bucket, Key: key, Body: CANARY, ...siteEncryption(site), ...extra }), { abortSignal: signal })
      .catch((err: unknown) => ({ failed: err }));
    return then(out);
  } finally {
    await site.s3.send(new DeleteObjectCommand({ Bucket: site.bucket, Key: key }), { abortSignal: signal }).catch(() => undefined);
  }
}

/**
 * Whether `site` checks a Content-MD5 header: a canary sent with a wrong one must be refused (BadDigest
 * or InvalidDigest). Only then can a copy send the source's MD5 ETag instead of hashing MD5 itself.
 */
export async function probeContentMd5(site: Site, signal?: AbortSignal): Promise<boolean> {
  const wrong = createHash('md5').update('not the canary').digest('base64');
  return withCanary(site, 'content-md5', { ContentMD5: wrong }, (out) => {
    const err = (out as { failed?: unknown }).failed;
    if (err === undefined) return false; // stored despite the wrong MD5: the store does not check it
    if (s3Status(err) === 400 && ['BadDigest', 'InvalidDigest'].includes(s3Code(err))) return true;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, action: 'writing the Content-MD5 probe' });
  }, signal);
}

const contentMd5Checked = new WeakMap<Site['s3'], Promise<boolean>>();

/**
 * `probeContentMd5`, once per site and process. A probe that fails answers false, the safe side (MD5
 * hashed locally): for good when the site refuses it for good (no right to write under
 * `_clover/probe/`), else for this copy only (the next one probes again).
 */
export function targetChecksContentMd5(site: Site, signal?: AbortSignal): Promise<boolean> {
  let p = contentMd5Checked.get(site.s3);
  if (!p) {
    p = probeContentMd5(site, signal).catch((err: unknown) => {
      // A refusal that will not change (no right to write the canary, say) is kept: no probe per object.
      const settled = err instanceof StorageError && (err.permanent || err.repeatable) && !signal?.aborted;
      if (!settled) contentMd5Checked.delete(site.s3);
      return false;
    });
    contentMd5Checked.set(site.s3, p);
  }
  return p;
}

/**
 * The encryption a canary written with the site's `encryption` settings comes back with
 * (x-amz-server-side-encryption of the PUT response; undefined when the store says nothing).
 */
export async function probeEncryption(site: Site, signal?: AbortSignal): Promise<string | undefined> {
  return withCanary(site, 'encryption', {}, (out) => {
    const err = (out as { failed?: unknown }).failed;
    if (err !== undefined) throw describeS3Error(err, { site: site.name, bucket: site.bucket, action: 'writing the encryption probe' });
    return (out as { ServerSideEncryption?: string }).ServerSideEncryption;
  }, signal);
}
