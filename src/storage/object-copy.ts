import type { Readable } from 'node:stream';
import type { StorageClass } from '@aws-sdk/client-s3';
import type { CopyOutcome, CopyRequest } from './copy-request';
import { META } from './object-meta';
import { getPinned } from './pinned-read';
import { putMultipart } from './put-multipart';
import { putSingle } from './put-single';
import { targetStorageClass } from '../domain/versions';

const storageClassHeader = (planned: string | undefined, source: string | undefined): { StorageClass?: StorageClass } => {
  const c = targetStorageClass(planned, source);
  return c ? { StorageClass: c as StorageClass } : {};
};

/**
 * Copies one object, streaming: the source is read pinned to its listed ETag, hashed (SHA-256, and MD5
 * to check single-part ETags) as it flows, and written with a conditional write and a SHA-256 checksum
 * header the target validates. Buffers never exceed one part (or one small object), taken from `budget`.
 */
export async function copyObject(req: CopyRequest): Promise<CopyOutcome> {
  const { source, object, signal } = req;
  const res = await getPinned(source, object.key, object.etag, signal);
  const body = res.Body as Readable;
  try {
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
    const headers = {
      ContentType: res.ContentType,
      ContentEncoding: res.ContentEncoding,
      CacheControl: res.CacheControl,
      ContentDisposition: res.ContentDisposition,
      ContentLanguage: res.ContentLanguage,
      ...storageClassHeader(req.storageClass, res.StorageClass),
    };
    const write = size > req.settings.multipartThreshold ? putMultipart : putSingle;
    const out = await write(req, body, size, headers, metadata);
    // A versioned source names the version read: recorded, so the cut-over deletes exactly that one as current.
    return res.VersionId && res.VersionId !== 'null' ? { ...out, sourceVersionId: res.VersionId } : out;
  } finally {
    body.destroy();
  }
}
