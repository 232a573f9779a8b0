import type { ListedObject } from '../domain/residue';
import type { Site } from './clients';
import { describeS3Error } from './errors';
import { listObjectsPage } from './listing';
import { stripQuotes } from './object-meta';

/**
 * Every object under `prefix` in `site`, with its ETag, page by page (`onObject` per object, in
 * listing order): the residue check after a cut-over. `what` names the listing in errors.
 */
export async function forEachObject(site: Site, prefix: string, what: string, onObject: (o: ListedObject) => void, signal?: AbortSignal): Promise<void> {
  let token: string | undefined;
  do {
    let r;
    try {
      r = await listObjectsPage(site, { Prefix: prefix, ContinuationToken: token }, signal);
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key: prefix, action: what });
    }
    for (const o of r.Contents ?? []) onObject({ key: o.Key!, site: site.name, etag: stripQuotes(o.ETag) });
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
}
