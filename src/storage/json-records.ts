import { createHash } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { siteEncryption, type Site } from './clients';
import { signedWith } from './copy-request';
import { StorageError, describeS3Error, isNotFound, isPreconditionFailed } from './errors';
import { sendGetObject, sendPutObject } from './lean-requests';
import { stripQuotes } from './object-meta';

/** S3 Object Lock retention for a write-once record: this mode until `days` after it is written. */
export interface Retention {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  days: number;
}

const DAY_MS = 86_400_000;

/**
 * Reads one of Clover's own JSON records; undefined when it does not exist. `what` names the record in
 * errors. A record that is not valid JSON is a permanent error naming the key: retrying cannot fix it.
 * Records go over the site's lean request path, as the copy's objects do (several per user: manifest,
 * ledger, staging; on users of one object the SDK's pipeline was about a third of the worker's CPU).
 */
export async function getJson<T>(site: Site, key: string, what: string, signal?: AbortSignal): Promise<T | undefined> {
  return (await getJsonRecord<T>(site, key, what, signal))?.value;
}

/** getJson with the record's ETag (for a conditional write over it). */
export async function getJsonRecord<T>(site: Site, key: string, what: string, signal?: AbortSignal): Promise<{ value: T; etag: string } | undefined> {
  let text: string;
  let etag: string;
  try {
    const r = await sendGetObject(site, { Bucket: site.bucket, Key: key }, signal);
    const body = await buffer(r.Body);
    // A short read is a fault on the way (retried), never a malformed record.
    if (r.ContentLength !== undefined && body.length !== r.ContentLength) {
      throw new StorageError(`${what} at site ${site.name}, bucket ${site.bucket}, key ${JSON.stringify(key)}: read ${body.length} of ${r.ContentLength} bytes`, 'IncompleteBody', false);
    }
    text = body.toString('utf8');
    etag = stripQuotes(r.ETag);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: `reading ${what}` });
  }
  try {
    return { value: JSON.parse(text) as T, etag };
  } catch (err) {
    throw new StorageError(
      `${what} at site ${site.name}, bucket ${site.bucket}, key ${JSON.stringify(key)} is not valid JSON (${(err as Error).message})`,
      'MalformedRecord',
      true,
    );
  }
}

/**
 * Writes one of Clover's own JSON records with a SHA-256 checksum the site validates; returns its ETag.
 * `ifMatch` (an ETag) or `ifNoneMatch: '*'` make it a conditional write: when the condition fails,
 * nothing is written and `'precondition-failed'` is returned instead. `retention`: written under S3
 * Object Lock (the bucket must have it enabled), so it cannot be deleted or overwritten until then.
 */
export async function putJson(
  site: Site, key: string, value: unknown, what: string,
  opts: { signal?: AbortSignal; metadata?: Record<string, string>; pretty?: boolean; ifMatch?: string; ifNoneMatch?: '*'; retention?: Retention } = {},
): Promise<string> {
  const body = Buffer.from(opts.pretty ? JSON.stringify(value, null, 1) : JSON.stringify(value));
  const sha256 = createHash('sha256').update(body).digest();
  try {
    // Under Object Lock (fields the lean path does not map) it goes through the SDK.
    const r = await sendPutObject(site, {
      Bucket: site.bucket, Key: key, Body: body, ContentType: 'application/json',
      ChecksumSHA256: sha256.toString('base64'), Metadata: opts.metadata, ...siteEncryption(site),
      IfMatch: opts.ifMatch === undefined ? undefined : `"${opts.ifMatch}"`, IfNoneMatch: opts.ifNoneMatch,
      ...(opts.retention ? { ObjectLockMode: opts.retention.mode, ObjectLockRetainUntilDate: new Date(Date.now() + opts.retention.days * DAY_MS) } : {}),
    }, sha256.toString('hex'), signedWith, opts.signal);
    return stripQuotes(r.ETag);
  } catch (err) {
    if ((opts.ifMatch !== undefined || opts.ifNoneMatch !== undefined) && isPreconditionFailed(err)) return 'precondition-failed';
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: `writing ${what}` });
  }
}
