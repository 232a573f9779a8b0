/**
 * The baseline for `npm run bench`: a plain copy loop with the AWS SDK and p-limit, no Temporal, no
 * hashing beyond what S3 does, no checkpoints. Usage: sdk-copy.ts SITES_FILE FROM TO PREFIX CONCURRENCY
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { parseSites } from '../src/config/sites';
import { createSiteClients } from '../src/storage/clients';

const [sitesFile, from, to, prefix, conc] = process.argv.slice(2);
if (!sitesFile || !from || !to || prefix === undefined) throw new Error('usage: sdk-copy.ts SITES-FILE FROM-SITE TO-SITE PREFIX [CONCURRENCY]');
const clients = createSiteClients(parseSites(JSON.parse(readFileSync(sitesFile, 'utf8'))), { maxSockets: 64 });
const src = clients.get(from)!;
const dst = clients.get(to)!;
const PART = 16 * 1024 * 1024;

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function copy(key: string, size: number): Promise<void> {
  if (size <= PART) {
    const g = await src.s3.send(new GetObjectCommand({ Bucket: src.bucket, Key: key }));
    await dst.s3.send(new PutObjectCommand({ Bucket: dst.bucket, Key: key, Body: await readAll(g.Body as Readable), ContentType: g.ContentType }));
    return;
  }
  const { UploadId } = await dst.s3.send(new CreateMultipartUploadCommand({ Bucket: dst.bucket, Key: key }));
  const parts: { PartNumber: number; ETag: string }[] = [];
  const lim = pLimit(4);
  await Promise.all(Array.from({ length: Math.ceil(size / PART) }, (_, i) => lim(async () => {
    const g = await src.s3.send(new GetObjectCommand({ Bucket: src.bucket, Key: key, Range: `bytes=${i * PART}-${Math.min(size, (i + 1) * PART) - 1}` }));
    const r = await dst.s3.send(new UploadPartCommand({ Bucket: dst.bucket, Key: key, UploadId, PartNumber: i + 1, Body: await readAll(g.Body as Readable) }));
    parts.push({ PartNumber: i + 1, ETag: r.ETag! });
  })));
  parts.sort((a, b) => a.PartNumber - b.PartNumber);
  await dst.s3.send(new CompleteMultipartUploadCommand({ Bucket: dst.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
}

(async () => {
  const limit = pLimit(Number(conc));
  const jobs: Promise<void>[] = [];
  let token: string | undefined;
  do {
    const r = await src.s3.send(new ListObjectsV2Command({ Bucket: src.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) jobs.push(limit(() => copy(o.Key!, o.Size ?? 0)));
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  await Promise.all(jobs);
  for (const c of clients.values()) c.s3.destroy();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
