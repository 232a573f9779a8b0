import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { ByteBudget } from './byte-budget';
import { inlineHasher, sizeClass, type Hasher } from './hash-pool';
import type { Site } from './clients';
import { StorageError, describeS3Error, isNotFound, isPreconditionFailed } from './errors';

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

export interface CopyOutcome {
  sha256: string;
  size: number;
  targetEtag: string;
  /** The SHA-256 checksum as the target server reported it ('' when it did not; composite for multipart). */
  targetChecksum: string;
}

export interface CopySettings {
  /** Objects above this size are sent as multipart uploads. */
  multipartThreshold: number;
  /** Minimum part size; the real one grows so no object needs more than 9,000 parts. */
  minPartSize: number;
  /** Parts of one object uploaded at once. */
  partConcurrency: number;
}

export const stripQuotes = (etag: string | undefined): string => (etag ?? '').replace(/^"|"$/g, '');

export function partSizeFor(size: number, minPartSize: number): number {
  return Math.max(minPartSize, Math.ceil(size / 9000));
}

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

/** Thrown when the source object no longer has the ETag it was listed with (invariant 3). */
export class SourceChangedError extends StorageError {
  constructor(site: string, key: string) {
    super(`source object ${JSON.stringify(key)} at site ${site} changed while it was being copied`, 'SourceChanged', false, 412);
  }
}

/** Thrown when a conditional write to the target fails: someone else wrote the key (invariant 2). */
export class TargetChangedError extends StorageError {
  constructor(site: string, key: string) {
    super(`target key ${JSON.stringify(key)} at site ${site} was written by someone else during the copy`, 'TargetChanged', false, 412);
  }
}

async function getPinned(site: Site, key: string, etag: string, signal?: AbortSignal): Promise<GetObjectCommandOutput> {
  try {
    return await site.s3.send(new GetObjectCommand({ Bucket: site.bucket, Key: key, IfMatch: `"${etag}"` }), { abortSignal: signal });
  } catch (err) {
    if (isPreconditionFailed(err) || isNotFound(err)) throw new SourceChangedError(site.name, key);
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'GetObject' });
  }
}

/**
 * Reads an object (pinned to `etag` when given) and returns its SHA-256 and size; the body is always
 * consumed. With a `hasher` in `offload` (the activity deps), large objects are hashed on its threads.
 */
export async function hashObject(
  site: Site, key: string, etag: string | undefined, signal?: AbortSignal, offload?: { hasher?: Hasher; budget: ByteBudget },
): Promise<{ sha256: string; size: number }> {
  let res: GetObjectCommandOutput;
  if (etag) res = await getPinned(site, key, etag, signal);
  else {
    try {
      res = await site.s3.send(new GetObjectCommand({ Bucket: site.bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'GetObject' });
    }
  }
  const body = res.Body as Readable;
  try {
    if (offload?.hasher && (res.ContentLength ?? 0) >= OFFLOAD_MIN_BYTES) return await hashOnThreads(body, res.ContentLength!, offload.hasher, offload.budget);
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: hash.digest('hex'), size };
  } catch (err) {
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'reading GetObject body' });
  } finally {
    body.destroy();
  }
}

/** Hashes a body on the hash threads in blocks of up to 1 MiB, one block hashing while the next fills. */
async function hashOnThreads(body: Readable, length: number, hasher: Hasher, budget: ByteBudget): Promise<{ sha256: string; size: number }> {
  const stream = hasher.stream(false);
  let hashing: Promise<void> = Promise.resolve();
  try {
    const size = await readInBlocks(body, Math.min(sizeClass(length), 1024 * 1024), hasher, budget, async (block, held) => {
      try {
        await hashing; // at most one block hashing at a time
      } catch (err) {
        hasher.free(block);
        budget.release(held);
        throw err;
      }
      hashing = stream.update(block).finally(() => {
        hasher.free(block);
        budget.release(held);
      });
      hashing.catch(() => undefined); // awaited later; not an unhandled rejection meanwhile
    });
    await hashing;
    return { sha256: (await stream.end()).sha256.toString('hex'), size };
  } catch (err) {
    await hashing.catch(() => undefined);
    stream.drop();
    throw err;
  }
}

/**
 * Reads `body` into buffers of `blockSize` from `hasher`, each held against `budget`, and hands every
 * full one, then the last partial one (or one empty block for an empty body), to `take`, which owns the
 * buffer and its budget from then on and must free both. Returns the bytes read.
 */
async function readInBlocks(
  body: Readable, blockSize: number, hasher: Hasher, budget: ByteBudget, take: (block: Buffer, held: number) => Promise<void>,
): Promise<number> {
  let held = await budget.acquire(blockSize);
  let buf = hasher.alloc(blockSize);
  let fill = 0;
  let read = 0;
  let handed = 0;
  const hand = (block: Buffer, h: number) => {
    buf = Buffer.alloc(0);
    held = 0;
    handed++;
    return take(block, h);
  };
  try {
    for await (const chunk of body) {
      let c = chunk as Buffer;
      read += c.length;
      while (c.length > 0) {
        const n = Math.min(c.length, blockSize - fill);
        c.copy(buf, fill, 0, n);
        fill += n;
        c = c.subarray(n);
        if (fill < blockSize) continue;
        await hand(buf, held);
        held = await budget.acquire(blockSize);
        buf = hasher.alloc(blockSize);
        fill = 0;
      }
    }
    if (fill > 0 || handed === 0) await hand(buf.subarray(0, fill), held);
    return read;
  } finally {
    // Only a buffer not yet handed to `take` is still ours here.
    if (buf.length > 0) hasher.free(buf);
    budget.release(held);
  }
}

export interface CopyRequest {
  source: Site;
  target: Site;
  object: SourceObject;
  migrationId: string;
  /** Overwrite only this target ETag (an object this migration wrote); undefined: the key must not exist. */
  overwriteEtag?: string;
  settings: CopySettings;
  budget: ByteBudget;
  signal?: AbortSignal;
  /**
   * Restore mode (rollback): write the object back with exactly its original metadata, without Clover's
   * own `clover-*` keys.
   */
  restore?: boolean;
  /** A multipart upload of this very object (same source ETag) left by an earlier attempt: continue it. */
  resumeUpload?: UploadCheckpoint;
  /** Called once the multipart upload exists, so the caller can checkpoint it. */
  onUpload?: (u: UploadCheckpoint) => void;
  /** Parts sent / found already uploaded and reused (added to). */
  partCounters?: { sent: number; reused: number };
  /** Where object bytes are hashed (the worker's hash threads); default: on this thread. */
  hasher?: Hasher;
}

/** Objects smaller than this are hashed on the copying thread: handing them to a thread costs more. */
export const OFFLOAD_MIN_BYTES = 256 * 1024;

/** A single-part source ETag is the MD5 of the object's bytes, so the MD5 is worth computing. */
const needsMd5 = (etag: string) => /^[0-9a-f]{32}$/.test(etag);

/**
 * Presets the SigV4 payload hash (x-amz-content-sha256) to the SHA-256 Clover has already computed for
 * the checksum header, so the SDK does not hash the body once more before signing.
 */
function signedWith<C extends PutObjectCommand | UploadPartCommand>(command: C, sha256Hex: string): C {
  // Both commands share the middleware stack's shape; the middleware only touches the HTTP request.
  (command as unknown as PutObjectCommand).middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = sha256Hex;
      return next(args);
    },
    { step: 'build', name: 'cloverPayloadHash' },
  );
  return command;
}

/** What a checkpoint keeps of an object's multipart upload to continue it after a crash. */
export interface UploadCheckpoint {
  uploadId: string;
  partSize: number;
  sourceEtag: string;
}

/**
 * Copies one object, streaming: the source is read pinned to its listed ETag, hashed (SHA-256, and MD5
 * to check single-part ETags) as it flows, and written with a conditional write and a SHA-256 checksum
 * header the target validates. Buffers never exceed one part (or one small object), taken from `budget`.
 */
export async function copyObject(req: CopyRequest): Promise<CopyOutcome> {
  const { source, object, signal } = req;
  const res = await getPinned(source, object.key, object.etag, signal);
  const body = res.Body as Readable;
  try {
    const size = res.ContentLength ?? object.size;
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.Metadata ?? {})) if (!k.startsWith('clover-')) metadata[k] = v;
    if (!req.restore) {
      Object.assign(metadata, {
        [META.sourceSite]: source.name,
        [META.sourceEtag]: object.etag,
        [META.sourceLastModified]: object.lastModified,
        [META.migration]: req.migrationId,
      });
    }
    const headers = {
      ContentType: res.ContentType,
      ContentEncoding: res.ContentEncoding,
      CacheControl: res.CacheControl,
      ContentDisposition: res.ContentDisposition,
      ContentLanguage: res.ContentLanguage,
    };
    const write = size > req.settings.multipartThreshold ? putMultipart : putSingle;
    return await write(req, body, size, headers, metadata);
  } finally {
    body.destroy();
  }
}

type Headers = { ContentType?: string; ContentEncoding?: string; CacheControl?: string; ContentDisposition?: string; ContentLanguage?: string };

function checkSourceLength(req: CopyRequest, read: number, size: number): void {
  if (read !== size) {
    throw new StorageError(`source object ${JSON.stringify(req.object.key)} at site ${req.source.name}: read ${read} bytes, expected ${size}`, 'SourceTruncated', false);
  }
}

/** The bytes read from the source hash to its single-part ETag (multipart `-N` and SSE-KMS ETags are not MD5s). */
function checkSourceMd5(req: CopyRequest, md5hex: string | undefined): void {
  if (needsMd5(req.object.etag) && md5hex !== req.object.etag) {
    throw new StorageError(
      `source object ${JSON.stringify(req.object.key)} at site ${req.source.name}: bytes read do not match its ETag (MD5 ${md5hex} != ${req.object.etag})`,
      'SourceCorrupt',
      false,
    );
  }
}

function conditional(req: CopyRequest): { IfNoneMatch?: string; IfMatch?: string } {
  return req.overwriteEtag ? { IfMatch: `"${req.overwriteEtag}"` } : { IfNoneMatch: '*' };
}

async function putSingle(req: CopyRequest, body: Readable, size: number, headers: Headers, metadata: Record<string, string>): Promise<CopyOutcome> {
  const { target, object, signal } = req;
  // Large enough objects are read into a buffer the hash threads read in place; small ones are hashed here.
  const hasher = req.hasher && size >= OFFLOAD_MIN_BYTES ? req.hasher : inlineHasher;
  const held = await req.budget.acquire(hasher === inlineHasher ? size : sizeClass(size));
  const buf = hasher.alloc(size);
  try {
    let read = 0;
    try {
      for await (const chunk of body) {
        const b = chunk as Buffer;
        if (read + b.length <= size) b.copy(buf, read);
        read += b.length;
      }
    } catch (err) {
      throw describeS3Error(err, { site: req.source.name, bucket: req.source.bucket, key: object.key, action: 'reading GetObject body' });
    }
    checkSourceLength(req, read, size);
    const digests = await hasher.once(buf, needsMd5(object.etag));
    checkSourceMd5(req, digests.md5);
    const shaHex = digests.sha256.toString('hex');
    const checksum = digests.sha256.toString('base64');
    try {
      const out = await target.s3.send(
        signedWith(
          new PutObjectCommand({
            Bucket: target.bucket,
            Key: object.key,
            Body: buf,
            ContentLength: size,
            ChecksumSHA256: checksum,
            ...headers,
            Metadata: req.restore ? metadata : { ...metadata, [META.sha256]: shaHex },
            ...conditional(req),
          }),
          shaHex,
        ),
        { abortSignal: signal },
      );
      return { sha256: shaHex, size, targetEtag: stripQuotes(out.ETag), targetChecksum: out.ChecksumSHA256 ?? '' };
    } catch (err) {
      if (isPreconditionFailed(err)) throw new TargetChangedError(target.name, object.key);
      throw describeS3Error(err, { site: target.name, bucket: target.bucket, key: object.key, action: 'PutObject' });
    }
  } finally {
    hasher.free(buf);
    req.budget.release(held);
  }
}

async function putMultipart(req: CopyRequest, body: Readable, size: number, headers: Headers, metadata: Record<string, string>): Promise<CopyOutcome> {
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
  const hashes = hasher.stream(needsMd5(object.etag));
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
  try {
    let partNumber = 0;
    let read: number;
    try {
      read = await readInBlocks(body, partSize, hasher, req.budget, async (part, held) => {
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
    checkSourceMd5(req, whole.md5);
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
    if (req.restore) return { sha256: shaHex, size: read, targetEtag: completedEtag, targetChecksum: composite };
    // The whole-object SHA-256 is known only now: record it by replacing the metadata in place,
    // pinned to the ETag just written so a concurrent foreign write is never clobbered.
    try {
      const out = await target.s3.send(
        new CopyObjectCommand({
          Bucket: target.bucket, Key: object.key,
          CopySource: `${target.bucket}/${encodeURIComponent(object.key)}`,
          CopySourceIfMatch: `"${completedEtag}"`,
          MetadataDirective: 'REPLACE',
          ...headers,
          Metadata: { ...metadata, [META.sha256]: shaHex },
        }),
        { abortSignal: signal },
      );
      return { sha256: shaHex, size: read, targetEtag: stripQuotes(out.CopyObjectResult?.ETag) || completedEtag, targetChecksum: composite };
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

const STALE_UPLOAD = new Set(['SourceChanged', 'SourceCorrupt', 'SourceTruncated', 'TargetChanged']);
