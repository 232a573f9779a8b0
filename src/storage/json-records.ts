import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Site } from './clients';
import { StorageError, describeS3Error, isNotFound } from './errors';

/**
 * Reads one of Clover's own JSON records; undefined when it does not exist. `what` names the record in
 * errors. A record that is not valid JSON is a permanent error naming the key: retrying cannot fix it.
 */
export async function getJson<T>(site: Site, key: string, what: string, signal?: AbortSignal): Promise<T | undefined> {
  let text: string;
  try {
    const r = await site.s3.send(new GetObjectCommand({ Bucket: site.bucket, Key: key }), { abortSignal: signal });
    text = await r.Body!.transformToString('utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: `reading ${what}` });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new StorageError(
      `${what} at site ${site.name}, bucket ${site.bucket}, key ${JSON.stringify(key)} is not valid JSON (${(err as Error).message})`,
      'MalformedRecord',
      true,
    );
  }
}

/** Writes one of Clover's own JSON records with a SHA-256 checksum the site validates. */
export async function putJson(
  site: Site, key: string, value: unknown, what: string,
  opts: { signal?: AbortSignal; metadata?: Record<string, string>; pretty?: boolean } = {},
): Promise<void> {
  const body = Buffer.from(opts.pretty ? JSON.stringify(value, null, 1) : JSON.stringify(value));
  try {
    await site.s3.send(
      new PutObjectCommand({
        Bucket: site.bucket, Key: key, Body: body, ContentType: 'application/json',
        ChecksumSHA256: createHash('sha256').update(body).digest('base64'), Metadata: opts.metadata,
      }),
      { abortSignal: opts.signal },
    );
  } catch (err) {
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: `writing ${what}` });
  }
}
