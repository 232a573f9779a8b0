import {
  ListMultipartUploadsCommand, ListObjectsV2Command,
  type ListMultipartUploadsCommandInput, type ListMultipartUploadsCommandOutput, type ListObjectsV2CommandInput, type ListObjectsV2CommandOutput, type _Object,
} from '@aws-sdk/client-s3';
import type { Site } from './clients';
import { describeS3Error } from './errors';

/**
 * A key as a listing with `encoding-type=url` returns it: S3 encodes it as a form (`+` for a space,
 * `%XX` for the rest), so a key holding characters XML 1.0 cannot carry (control characters) survives.
 * The AWS SDK for JavaScript v3 does not decode it (botocore does); this does.
 */
export function decodeListedKey(encoded: string): string {
  return decodeURIComponent(encoded.replace(/\+/g, '%20'));
}

const decoded = (s: string | undefined) => (s === undefined ? s : decodeListedKey(s));

/**
 * The page with its keys decoded when the server says it encoded them (`EncodingType: url` in the
 * response). A server that ignores the request (versitygw 1.7.0 does) returns raw keys and no
 * EncodingType: those are left as they are, so a key holding `%` or `+` is never decoded twice.
 */
export function decodeObjectsPage(r: ListObjectsV2CommandOutput): ListObjectsV2CommandOutput {
  if (r.EncodingType !== 'url') return r;
  return {
    ...r,
    Prefix: decoded(r.Prefix),
    StartAfter: decoded(r.StartAfter),
    Delimiter: decoded(r.Delimiter),
    Contents: r.Contents?.map((o) => ({ ...o, Key: decoded(o.Key) })),
    CommonPrefixes: r.CommonPrefixes?.map((p) => ({ ...p, Prefix: decoded(p.Prefix) })),
  };
}

/** Same as decodeObjectsPage, for ListMultipartUploads (NextKeyMarker goes back as KeyMarker, decoded). */
export function decodeUploadsPage(r: ListMultipartUploadsCommandOutput): ListMultipartUploadsCommandOutput {
  if (r.EncodingType !== 'url') return r;
  return {
    ...r,
    Prefix: decoded(r.Prefix),
    Delimiter: decoded(r.Delimiter),
    KeyMarker: decoded(r.KeyMarker),
    NextKeyMarker: decoded(r.NextKeyMarker),
    Uploads: r.Uploads?.map((u) => ({ ...u, Key: decoded(u.Key) })),
    CommonPrefixes: r.CommonPrefixes?.map((p) => ({ ...p, Prefix: decoded(p.Prefix) })),
  };
}

/**
 * One ListObjectsV2 page of `site`'s bucket, keys asked URL-encoded and returned decoded: every listing
 * Clover makes goes through here. Errors are the SDK's (callers describe them with their own action).
 */
export async function listObjectsPage(site: Site, input: Omit<ListObjectsV2CommandInput, 'Bucket' | 'EncodingType'>, signal?: AbortSignal): Promise<ListObjectsV2CommandOutput> {
  return decodeObjectsPage(await site.s3.send(new ListObjectsV2Command({ ...input, Bucket: site.bucket, EncodingType: 'url' }), { abortSignal: signal }));
}

/** One ListMultipartUploads page, keys asked URL-encoded and returned decoded (see listObjectsPage). */
export async function listUploadsPage(site: Site, input: Omit<ListMultipartUploadsCommandInput, 'Bucket' | 'EncodingType'>, signal?: AbortSignal): Promise<ListMultipartUploadsCommandOutput> {
  return decodeUploadsPage(await site.s3.send(new ListMultipartUploadsCommand({ ...input, Bucket: site.bucket, EncodingType: 'url' }), { abortSignal: signal }));
}

/**
 * Every object under `prefix` in a site, in listing order (after `startAfter` when given), page by page:
 * `onObject` per object. `what` names the listing in errors.
 */
export async function forEachListed(
  site: Site, prefix: string, what: string, onObject: (o: _Object) => void, signal?: AbortSignal, startAfter?: string,
): Promise<void> {
  let token: string | undefined;
  do {
    let r;
    try {
      r = await listObjectsPage(site, { Prefix: prefix, ContinuationToken: token, StartAfter: token ? undefined : startAfter }, signal);
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key: prefix, action: what });
    }
    for (const o of r.Contents ?? []) onObject(o);
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
}

/** Every key under `prefix` in a site, in listing order; `what` names the listing in errors. */
export async function listAllKeys(site: Site, prefix: string, what: string, signal?: AbortSignal): Promise<string[]> {
  const keys: string[] = [];
  await forEachListed(site, prefix, what, (o) => keys.push(o.Key!), signal);
  return keys;
}
