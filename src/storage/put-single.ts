import type { Readable } from 'node:stream';
import { checkSourceLength, checkSourceMd5, conditional, needsMd5, signedWith, type CopyOutcome, type CopyRequest, type Headers } from './copy-request';
import { TargetChangedError, describeS3Error, isPreconditionFailed } from './errors';
import { inlineHasher, sizeClass } from './hash-pool';
import { sendPutObject } from './lean-requests';
import { META, stripQuotes } from './object-meta';
import { OFFLOAD_MIN_BYTES } from './pinned-read';
import { progressed } from './liveness';

/** Writes an object of at most one part: read whole into a budgeted buffer, hashed, one conditional PUT. */
export async function putSingle(req: CopyRequest, body: Readable, size: number, headers: Headers, metadata: Record<string, string>): Promise<CopyOutcome> {
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
        progressed();
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
      // The lean path when the site has it and every field is one it maps; else the SDK (payload hash preset).
      const out = await sendPutObject(target, {
        Bucket: target.bucket,
        Key: object.key,
        Body: buf,
        ContentLength: size,
        ChecksumSHA256: checksum,
        ...headers,
        Metadata: req.restore ? metadata : { ...metadata, [META.sha256]: shaHex },
        ...conditional(req),
      }, shaHex, signedWith, signal);
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
