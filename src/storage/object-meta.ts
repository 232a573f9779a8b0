import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Site } from './clients';
import { describeS3Error, isNotFound } from './errors';

/** User-metadata keys Clover writes on every target object (x-amz-meta-…). */
export const META = {
  sourceSite: 'clover-source-site',
  sourceEtag: 'clover-source-etag',
  sourceLastModified: 'clover-source-last-modified',
  sha256: 'clover-sha256',
  migration: 'clover-migration',
} as const;

/** An object as listed in a source site. */
export interface SourceObject {
  site: string;
  key: string;
  etag: string;
  size: number;
  lastModified: string;
}

export interface TargetHead {
  etag: string;
  size: number;
  metadata: Record<string, string>;
  /** x-amz-checksum-sha256 as the target stores it (base64, `-N` suffix for multipart). */
  checksumSha256?: string;
}

export const stripQuotes = (etag: string | undefined): string => (etag ?? '').replace(/^"|"$/g, '');

/** The object's current state in a site, or undefined when it does not exist. */
export async function headObject(site: Site, key: string, signal?: AbortSignal): Promise<TargetHead | undefined> {
  try {
    const h = await site.s3.send(new HeadObjectCommand({ Bucket: site.bucket, Key: key, ChecksumMode: 'ENABLED' }), { abortSignal: signal });
    return { etag: stripQuotes(h.ETag), size: h.ContentLength ?? 0, metadata: h.Metadata ?? {}, checksumSha256: h.ChecksumSHA256 };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'HeadObject' });
  }
}

