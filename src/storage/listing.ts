import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Site } from './clients';
import { describeS3Error } from './errors';

/** Every key under `prefix` in a site, in listing order; `what` names the listing in errors. */
export async function listAllKeys(site: Site, prefix: string, what: string, signal?: AbortSignal): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    try {
      const r = await site.s3.send(new ListObjectsV2Command({ Bucket: site.bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal: signal });
      for (const o of r.Contents ?? []) keys.push(o.Key!);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key: prefix, action: what });
    }
  } while (token);
  return keys;
}
