import { compareKeys } from '../domain/manifest';
import type { Listed, TargetListed } from '../domain/pass-plan';
import { isArchived } from '../domain/versions';
import type { Site } from './clients';
import { describeS3Error } from './errors';
import { listObjectsPage } from './listing';
import { stripQuotes } from './object-meta';

/** One page of a pass: what every source and the target list in the same key range. */
export interface PageListing {
  /** Source objects by key (several when the key is in several sources). */
  sources: Map<string, Listed[]>;
  /** Target objects by key. */
  target: Map<string, TargetListed>;
  /** The page's last key (inclusive); undefined when every listing is exhausted (the page runs to the end). */
  nextCursor?: string;
}

/**
 * Lists one page of the user's prefix after `cursor` in every source and in the target. S3 lists in
 * UTF-8 byte order, so the page ends at the smallest last key among the truncated listings: every key
 * up to it is known in all of them (a key present in several sites lands in the same page, and a key
 * missing from one listing is missing from that site).
 */
export async function listPage(sources: Site[], target: Site, prefix: string, cursor: string | undefined, pageSize: number, signal?: AbortSignal): Promise<PageListing> {
  const all = [...sources, target];
  const lists = await Promise.all(
    all.map(async (s) => {
      try {
        const r = await listObjectsPage(s, { Prefix: prefix, StartAfter: cursor, MaxKeys: pageSize }, signal);
        return { site: s, items: r.Contents ?? [], truncated: r.IsTruncated === true };
      } catch (err) {
        throw describeS3Error(err, { site: s.name, bucket: s.bucket, key: prefix, action: 'ListObjectsV2' });
      }
    }),
  );
  let boundary: string | undefined;
  for (const l of lists) {
    const last = l.items.at(-1)?.Key;
    if (!l.truncated || last === undefined) continue;
    if (boundary === undefined || compareKeys(last, boundary) < 0) boundary = last;
  }
  const page: PageListing = { sources: new Map(), target: new Map(), nextCursor: boundary };
  for (const l of lists) {
    for (const o of l.items) {
      const key = o.Key!;
      if (boundary !== undefined && compareKeys(key, boundary) > 0) break;
      if (key.endsWith('/') && (o.Size ?? 0) === 0) continue; // "folder" markers carry no data
      if (l.site === target) {
        page.target.set(key, { etag: stripQuotes(o.ETag), size: o.Size ?? 0 });
        continue;
      }
      const c: Listed = {
        site: l.site.name, key, etag: stripQuotes(o.ETag), size: o.Size ?? 0, lastModified: (o.LastModified ?? new Date(0)).toISOString(),
        ...(isArchived(o.StorageClass) ? { storageClass: o.StorageClass } : {}),
      };
      const list = page.sources.get(key);
      if (list) list.push(c);
      else page.sources.set(key, [c]);
    }
  }
  return page;
}
