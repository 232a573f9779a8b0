import { GetObjectTaggingCommand } from '@aws-sdk/client-s3';
import { siteEncryption, type Site } from './clients';
import {
  md5CheckFor, needsMd5, sourceEncryption, sourceNeedsCustomerKey, storedChecksum,
  type CopyOutcome, type CopyRequest, type Headers, type SourceIntegrity,
} from './copy-request';
import { describeS3Error } from './errors';
import type { StorageClass } from '@aws-sdk/client-s3';
import { META } from './object-meta';
import { getPinned } from './pinned-read';
import { targetChecksContentMd5 } from './probe';
import { putMultipart } from './put-multipart';
import { putSingle } from './put-single';
import { targetStorageClass } from '../domain/versions';

const storageClassHeader = (planned: string | undefined, source: string | undefined): { StorageClass?: StorageClass } => {
  const c = targetStorageClass(planned, source);
  return c ? { StorageClass: c as StorageClass } : {};
};

/**
 * Copies one object, streaming: the source is read pinned to its listed ETag, hashed (SHA-256, and MD5
 * to check single-part ETags unless the target checks a Content-MD5 itself) as it flows, and written
 * with a conditional write and a SHA-256 checksum header the target validates. Its HTTP headers, user
 * metadata and tags go with it (not its ACL); the target site's encryption is applied. Buffers never
 * exceed one part (or one small object), taken from `budget`.
 */
export async function copyObject(req: CopyRequest): Promise<CopyOutcome> {
  const { source, object, signal } = req;
  const single = object.size <= req.settings.multipartThreshold;
  // Asked before the GET (once per target and process), so no source socket waits on it.
  const targetMd5 = single && needsMd5(object.etag) && (await targetChecksContentMd5(req.target, signal));
  const res = await getPinned(source, object.key, object.etag, signal);
  const body = res.Body;
  try {
    const encryption = sourceEncryption(res);
    if (encryption === 'sse-c') throw sourceNeedsCustomerKey(source, object.key);
    const size = res.ContentLength ?? object.size;
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.Metadata ?? {})) if (!k.startsWith('clover-')) metadata[k] = v;
    if (!req.restore) {
      Object.assign(metadata, {
        [META.sourceSite]: source.name,
        [META.sourceEtag]: object.etag,
        [META.sourceLastModified]: object.lastModified,
        [META.migration]: req.migrationId,
      });
    }
    const tagging = (res.TagCount ?? 0) > 0 ? await sourceTagging(source, object.key, signal) : undefined;
    const headers: Headers = {
      ContentType: res.ContentType,
      ContentEncoding: res.ContentEncoding,
      CacheControl: res.CacheControl,
      ContentDisposition: res.ContentDisposition,
      ContentLanguage: res.ContentLanguage,
      ...(res.Expires ? { Expires: res.Expires } : {}),
      ...(tagging ? { Tagging: tagging } : {}),
      ...siteEncryption(req.target),
      ...storageClassHeader(req.storageClass, res.StorageClass),
      ...(req.retention ? { ObjectLockMode: req.retention.mode, ObjectLockRetainUntilDate: new Date(Date.now() + req.retention.days * 86_400_000) } : {}),
    };
    const multipart = size > req.settings.multipartThreshold;
    const integrity: SourceIntegrity = { md5: md5CheckFor(object.etag, encryption, !multipart, targetMd5), stored: storedChecksum(res) };
    const write = multipart ? putMultipart : putSingle;
    const out = await write(req, body, size, headers, metadata, integrity);
    // A versioned source names the version read: recorded, so the cut-over deletes exactly that one as current.
    return res.VersionId && res.VersionId !== 'null' ? { ...out, sourceVersionId: res.VersionId } : out;
  } finally {
    body.destroy();
  }
}

/** The source object's tags as a Tagging header value (URL-encoded `k=v&…`). */
async function sourceTagging(site: Site, key: string, signal?: AbortSignal): Promise<string | undefined> {
  try {
    const out = await site.s3.send(new GetObjectTaggingCommand({ Bucket: site.bucket, Key: key }), { abortSignal: signal });
    const tags = out.TagSet ?? [];
    return tags.length ? tags.map((t) => `${encodeURIComponent(t.Key ?? '')}=${encodeURIComponent(t.Value ?? '')}`).join('&') : undefined;
  } catch (err) {
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'GetObjectTagging' });
  }
}
