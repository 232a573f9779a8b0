import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { readInBlocks } from './block-reader';
import type { ByteBudget } from './byte-budget';
import type { Site } from './clients';
import { sourceNeedsCustomerKey } from './copy-request';
import { SourceChangedError, describeS3Error, isCustomerKeyRequired, isNotFound, isPreconditionFailed } from './errors';
import { sizeClass, type Hasher } from './hash-pool';
import { sendGetObject, type ObjectRead } from './lean-requests';
import { progressed } from './liveness';

/** Objects smaller than this are hashed on the copying thread: handing them to a thread costs more. */
export const OFFLOAD_MIN_BYTES = 256 * 1024;

/**
 * Reads the object only while it still has `etag` (invariant 3); otherwise SourceChangedError. An SSE-C
 * object (no customer key here) is SourceNeedsCustomerKey, permanent. The object's stored checksum is
 * asked for (x-amz-checksum-mode: ENABLED) as a plain header: with `ChecksumMode` in an SDK input the SDK
 * would hash the body once more itself; Clover compares the SHA-256 it computes anyway
 * (copy-request.ts checkSourceChecksum).
 */
export async function getPinned(site: Site, key: string, etag: string, signal?: AbortSignal): Promise<ObjectRead> {
  try {
    return await sendGetObject(site, { Bucket: site.bucket, Key: key, IfMatch: `"${etag}"` }, signal, { storedChecksum: true });
  } catch (err) {
    if (isPreconditionFailed(err) || isNotFound(err)) throw new SourceChangedError(site.name, key);
    if (isCustomerKeyRequired(err)) throw sourceNeedsCustomerKey(site, key);
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
  let res: ObjectRead;
  if (etag) res = await getPinned(site, key, etag, signal);
  else {
    try {
      res = await sendGetObject(site, { Bucket: site.bucket, Key: key }, signal);
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'GetObject' });
    }
  }
  const body = res.Body;
  try {
    if (offload?.hasher && (res.ContentLength ?? 0) >= OFFLOAD_MIN_BYTES) return await hashOnThreads(body, res.ContentLength!, offload.hasher, offload.budget);
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      progressed();
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
