import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand, ListPartsCommand, UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { DEFAULT_COPY_OBJECT_MAX_BYTES } from '../config/sites';
import { readInBlocks } from './block-reader';
import {
  checkSourceChecksum, checkSourceLength, checkSourceMd5, conditional, crc32Base64, signedWith, type CopyOutcome, type CopyRequest, type Headers, type SourceIntegrity,
} from './copy-request';
import { StorageError, TargetChangedError, describeS3Error, isNotFound, isPreconditionFailed } from './errors';
import { inlineHasher } from './hash-pool';
import { META, stripQuotes } from './object-meta';

export function partSizeFor(size: number, minPartSize: number): number {
  return Math.max(minPartSize, Math.ceil(size / 9000));
}

/**
 * Writes a large object as a multipart upload, resuming an upload left by an earlier attempt part by
 * part, then records the whole-object SHA-256 in its metadata (pinned to the ETag just written).
 */
export async function putMultipart(
  req: CopyRequest, body: Readable, size: number, headers: Headers, metadata: Record<string, string>, integrity: SourceIntegrity,
): Promise<CopyOutcome> {
  const { target, object, signal } = req;
  const ctx = (action: string) => ({ site: target.name, bucket: target.bucket, key: object.key, action });
  // Parts already in the target from an earlier attempt (resume): reused when their checksum matches
  // the source bytes read now. The whole-object SHA-256 is recomputed by re-reading those bytes from the
  // source (pinned to its ETag): a hash state cannot be checkpointed, and this also re-checks each reused
  // part against the source.
  const existing = new Map<number, { ETag: string; ChecksumSHA256?: string; Size: number }>();
  let uploadId = '';
  let partSize = partSizeFor(size, req.settings.minPartSize);
  if (req.resumeUpload && req.resumeUpload.sourceEtag === object.etag) {
    try {
      let marker: string | undefined;
      do {
        const l = await target.s3.send(
          new ListPartsCommand({ Bucket: target.bucket, Key: object.key, UploadId: req.resumeUpload.uploadId, PartNumberMarker: marker }),
          { abortSignal: signal },
        );
        for (const p of l.Parts ?? []) existing.set(p.PartNumber!, { ETag: p.ETag!, ChecksumSHA256: p.ChecksumSHA256, Size: p.Size ?? 0 });
        marker = l.IsTruncated ? l.NextPartNumberMarker : undefined;
      } while (marker);
      uploadId = req.resumeUpload.uploadId;
      partSize = req.resumeUpload.partSize;
    } catch (err) {
      if (!isNotFound(err)) throw describeS3Error(err, ctx('ListParts'));
      existing.clear(); // the upload is gone (completed or aborted): start a new one
    }
  }
  if (!uploadId) {
    try {
      const created = await target.s3.send(
        new CreateMultipartUploadCommand({ Bucket: target.bucket, Key: object.key, ChecksumAlgorithm: 'SHA256', ...headers, Metadata: metadata }),
        { abortSignal: signal },
      );
      uploadId = created.UploadId!;
    } catch (err) {
      throw describeS3Error(err, ctx('CreateMultipartUpload'));
    }
  }
  req.onUpload?.({ uploadId, partSize, sourceEtag: object.etag });
  // Whole-object SHA-256 (and MD5 for a single-part source ETag) and each part's SHA-256, on the hash threads.
  const hasher = req.hasher ?? inlineHasher;
  const hashes = hasher.stream(integrity.md5 === 'local');
  const parts: { PartNumber: number; ETag: string; ChecksumSHA256: string; raw: Buffer }[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const upload = (partNumber: number, buf: Buffer, held: number) => {
    const p = hashes
      .part(buf)
      .then(async (partSha) => {
        const checksum = partSha.toString('base64');
        const done = existing.get(partNumber);
        if (done && done.Size === buf.length && done.ChecksumSHA256 === checksum) {
          parts.push({ PartNumber: partNumber, ETag: done.ETag, ChecksumSHA256: checksum, raw: partSha });
          if (req.partCounters) req.partCounters.reused++;
          return;
        }
        if (req.partCounters) req.partCounters.sent++;
        const out = await target.s3.send(
          signedWith(
            new UploadPartCommand({
              Bucket: target.bucket, Key: object.key, UploadId: uploadId, PartNumber: partNumber,
              Body: buf, ContentLength: buf.length, ChecksumSHA256: checksum,
            }),
            partSha.toString('hex'),
          ),
          { abortSignal: signal },
        );
        parts.push({ PartNumber: partNumber, ETag: out.ETag!, ChecksumSHA256: checksum, raw: partSha });
      })
      .catch((err) => {
        failure ??= describeS3Error(err, ctx(`UploadPart ${partNumber}`));
      })
      .finally(() => {
        hasher.free(buf);
        req.budget.release(held);
        inFlight.delete(p);
      });
    inFlight.add(p);
  };
  // The source's stored full-object CRC32, when that is what it has, is computed as the parts go by.
  let crc = integrity.stored?.algorithm === 'CRC32' ? 0 : undefined;
  try {
    let partNumber = 0;
    let read: number;
    try {
      read = await readInBlocks(body, partSize, hasher, req.budget, async (part, held) => {
        if (crc !== undefined) crc = crc32(part, crc); // in order: parts are handed over as read
        upload(++partNumber, part, held);
        if (failure) throw failure;
        // Backpressure: the source stream pauses while the part queue is full.
        while (inFlight.size >= req.settings.partConcurrency) await Promise.race(inFlight);
        if (failure) throw failure;
      });
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw describeS3Error(err, { site: req.source.name, bucket: req.source.bucket, key: object.key, action: 'reading GetObject body' });
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    checkSourceLength(req, read, size);
    const whole = await hashes.end();
    checkSourceMd5(req, whole.md5, integrity.md5);
    const sourceChecksumChecked = checkSourceChecksum(req, integrity.stored, { SHA256: whole.sha256.toString('base64'), CRC32: crc === undefined ? undefined : crc32Base64(crc) });
    const checked = { md5Check: integrity.md5, sourceChecksumChecked };
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    const shaHex = whole.sha256.toString('hex');
    const composite = `${createHash('sha256').update(Buffer.concat(parts.map((p) => p.raw))).digest('base64')}-${parts.length}`;
    let completedEtag: string;
    try {
      const done = await target.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: target.bucket, Key: object.key, UploadId: uploadId,
          MultipartUpload: { Parts: parts.map(({ PartNumber, ETag, ChecksumSHA256 }) => ({ PartNumber, ETag, ChecksumSHA256 })) },
          ...conditional(req),
        }),
        { abortSignal: signal },
      );
      completedEtag = stripQuotes(done.ETag);
    } catch (err) {
      if (isPreconditionFailed(err)) throw new TargetChangedError(target.name, object.key);
      throw describeS3Error(err, ctx('CompleteMultipartUpload'));
    }
    uploadId = '';
    if (req.restore) return { sha256: shaHex, size: read, targetEtag: completedEtag, targetChecksum: composite, ...checked };
    // The whole-object SHA-256 is known only now: record it by replacing the metadata in place, pinned to
    // the ETag just written so a concurrent foreign write is never clobbered. CopyObject takes objects up
    // to the site's copyObjectMaxBytes (5 GiB on AWS); above it, a multipart copy of itself does.
    const recorded = { ...metadata, [META.sha256]: shaHex };
    if (read > (target.config.copyObjectMaxBytes ?? DEFAULT_COPY_OBJECT_MAX_BYTES)) {
      const out = await recordByPartCopy(req, headers, recorded, completedEtag, parts.map((p) => p.ChecksumSHA256), partSize, read);
      return { sha256: shaHex, size: read, targetEtag: out.etag, targetChecksum: out.checksum ? composite : '', ...checked };
    }
    try {
      const out = await target.s3.send(
        new CopyObjectCommand({
          Bucket: target.bucket, Key: object.key,
          CopySource: `${target.bucket}/${encodeURIComponent(object.key)}`,
          CopySourceIfMatch: `"${completedEtag}"`,
          MetadataDirective: 'REPLACE',
          ...withoutTagging(headers), // tags stay (TaggingDirective COPY)
          Metadata: recorded,
        }),
        { abortSignal: signal },
      );
      return { sha256: shaHex, size: read, targetEtag: stripQuotes(out.CopyObjectResult?.ETag) || completedEtag, targetChecksum: composite, ...checked };
    } catch (err) {
      if (isPreconditionFailed(err)) throw new TargetChangedError(target.name, object.key);
      throw describeS3Error(err, ctx('CopyObject (record SHA-256 in metadata)'));
    }
  } catch (err) {
    await Promise.allSettled(inFlight);
    hashes.drop();
    // Keep the upload when the work was interrupted (pause, cancel, shutdown: cancel's cleanup aborts it)
    // or hit a transient fault: the next attempt continues it from its parts. Abort it when its parts
    // belong to a source version or target state that no longer holds.
    const resumable = signal?.aborted || (err instanceof StorageError && !err.permanent && !STALE_UPLOAD.has(err.type));
    if (uploadId && !resumable) {
      await target.s3.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: object.key, UploadId: uploadId })).catch(() => undefined);
    }
    throw err;
  }
}

/** A store that reports a copied part's checksum other than the part's own (versitygw 1.7 reports the whole object's). */
class PartChecksumUnusable extends Error {}

/**
 * Replaces the object just completed (ETag `completedEtag`) by a multipart copy of itself carrying
 * `metadata` (UploadPartCopy of each part's range, pinned to that ETag; the completion is conditional on
 * it too). Part ranges are the upload's, so each part's SHA-256 is the one already computed and the
 * stored composite checksum stays the same. A store whose UploadPartCopy reports another checksum gets
 * the copy without checksums: the object then stores no SHA-256 (`checksum: false`; verify "full" checks it).
 */
async function recordByPartCopy(
  req: CopyRequest, headers: Headers, metadata: Record<string, string>, completedEtag: string, partChecksums: string[], partSize: number, size: number,
): Promise<{ etag: string; checksum: boolean }> {
  const { target, object, signal } = req;
  const ctx = (action: string) => ({ site: target.name, bucket: target.bucket, key: object.key, action });
  for (const withChecksum of [true, false]) {
    let uploadId: string;
    try {
      const created = await target.s3.send(
        new CreateMultipartUploadCommand({
          Bucket: target.bucket, Key: object.key, ...(withChecksum ? { ChecksumAlgorithm: 'SHA256' as const } : {}), ...headers, Metadata: metadata,
        }),
        { abortSignal: signal },
      );
      uploadId = created.UploadId!;
    } catch (err) {
      throw describeS3Error(err, ctx('CreateMultipartUpload (record SHA-256 in metadata)'));
    }
    try {
      const etags: string[] = [];
      let next = 0;
      let stopped = false;
      const copyParts = async () => {
        while (!stopped && next < partChecksums.length) {
          const i = next++;
          const first = i * partSize;
          const last = Math.min(size, first + partSize) - 1;
          const out = await target.s3.send(
            new UploadPartCopyCommand({
              Bucket: target.bucket, Key: object.key, UploadId: uploadId, PartNumber: i + 1,
              CopySource: `${target.bucket}/${encodeURIComponent(object.key)}`, CopySourceIfMatch: `"${completedEtag}"`, CopySourceRange: `bytes=${first}-${last}`,
            }),
            { abortSignal: signal },
          );
          if (withChecksum && out.CopyPartResult?.ChecksumSHA256 !== partChecksums[i]) throw new PartChecksumUnusable();
          etags[i] = out.CopyPartResult!.ETag!;
        }
      };
      const copier = () => copyParts().catch((err: unknown) => {
        stopped = true; // the other copiers finish the part they are on, then stop
        throw err;
      });
      const copiers = await Promise.allSettled(Array.from({ length: Math.min(req.settings.partConcurrency, partChecksums.length) }, copier));
      const failed = copiers.find((c) => c.status === 'rejected');
      if (failed) throw failed.reason;
      const done = await target.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: target.bucket, Key: object.key, UploadId: uploadId, IfMatch: `"${completedEtag}"`,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag, ...(withChecksum ? { ChecksumSHA256: partChecksums[i] } : {}) })) },
        }),
        { abortSignal: signal },
      );
      return { etag: stripQuotes(done.ETag), checksum: withChecksum };
    } catch (err) {
      await target.s3.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: object.key, UploadId: uploadId })).catch(() => undefined);
      if (err instanceof PartChecksumUnusable) continue;
      if (isPreconditionFailed(err)) throw new TargetChangedError(target.name, object.key);
      throw describeS3Error(err, ctx('UploadPartCopy (record SHA-256 in metadata)'));
    }
  }
  throw new Error('unreachable');
}

function withoutTagging(headers: Headers): Omit<Headers, 'Tagging'> {
  const { Tagging: _tags, ...rest } = headers;
  return rest;
}

const STALE_UPLOAD = new Set(['SourceChanged', 'SourceCorrupt', 'SourceTruncated', 'TargetChanged']);
