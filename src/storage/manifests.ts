import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { manifestKey } from '../domain/layout';
import type { Manifest } from '../domain/manifest';
import type { Site } from './clients';
import { describeS3Error, isNotFound } from './errors';

/** The user's committed manifest, or undefined when none was committed. */
export async function getManifest(target: Site, migrationId: string, userId: string, signal?: AbortSignal): Promise<Manifest | undefined> {
  const key = manifestKey(migrationId, userId);
  try {
    const r = await target.s3.send(new GetObjectCommand({ Bucket: target.bucket, Key: key }), { abortSignal: signal });
    return JSON.parse(await r.Body!.transformToString('utf8')) as Manifest;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw describeS3Error(err, { site: target.name, bucket: target.bucket, key, action: 'reading the manifest' });
  }
}

/** Writes the manifest (Clover's own record: overwriting it is how it is amended). */
export async function putManifest(target: Site, m: Manifest, signal?: AbortSignal): Promise<string> {
  const key = manifestKey(m.migrationId, m.userId);
  const body = Buffer.from(JSON.stringify(m, null, 1));
  try {
    await target.s3.send(
      new PutObjectCommand({
        Bucket: target.bucket, Key: key, Body: body, ContentType: 'application/json',
        ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
        Metadata: { 'clover-manifest-digest': m.digest },
      }),
      { abortSignal: signal },
    );
  } catch (err) {
    throw describeS3Error(err, { site: target.name, bucket: target.bucket, key, action: 'writing the manifest' });
  }
  return key;
}
