import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  checkSourceChecksum, checkSourceLength, checkSourceMd5, conditional, contentMd5Of, crc32Base64, signedWith, sourceMd5Refused,
  type CopyOutcome, type CopyRequest, type Headers, type SourceIntegrity,
} from './copy-request';
import { TargetChangedError, describeS3Error, isPreconditionFailed, s3Code } from './errors';
import { inlineHasher, sizeClass } from './hash-pool';
import { sendPutObject } from './lean-requests';
import { META, stripQuotes } from './object-meta';
import { OFFLOAD_MIN_BYTES } from './pinned-read';
import { progressed } from './liveness';

/**
 * Writes an object of at most one part: read whole into a budgeted buffer, hashed, one conditional PUT.
 * With `integrity.md5` `target` the source's MD5 ETag goes as Content-MD5 and the target refuses bytes
 * that do not match it (BadDigest): no MD5 is computed here, and no damaged copy is ever stored.
 */
export async function putSingle(
  req: CopyRequest, body: Readable, size: number, headers: Headers, metadata: Record<string, string>, integrity: SourceIntegrity,
): Promise<CopyOutcome> {
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
    const digests = await hasher.once(buf, integrity.md5 === 'local');
    checkSourceMd5(req, digests.md5, integrity.md5);
    const shaHex = digests.sha256.toString('hex');
    const checksum = digests.sha256.toString('base64');
    const crc = integrity.stored?.algorithm === 'CRC32' ? crc32Base64(crc32(buf.subarray(0, size))) : undefined;
    const sourceChecksumChecked = checkSourceChecksum(req, integrity.stored, { SHA256: checksum, CRC32: crc });
    try {
      // The lean path when the site has it and every field is one it maps; else the SDK (payload hash preset).
      const out = await sendPutObject(target, {
        Bucket: target.bucket,
        Key: object.key,
        Body: buf,
        ContentLength: size,
        ChecksumSHA256: checksum,
        ...(integrity.md5 === 'target' ? { ContentMD5: contentMd5Of(object.etag) } : {}),
        ...headers,
        Metadata: req.restore ? metadata : { ...metadata, [META.sha256]: shaHex },
        ...conditional(req),
      }, shaHex, signedWith, signal);
      return { sha256: shaHex, size, targetEtag: stripQuotes(out.ETag), targetChecksum: out.ChecksumSHA256 ?? '', md5Check: integrity.md5, sourceChecksumChecked };
    } catch (err) {
      if (isPreconditionFailed(err)) throw new TargetChangedError(target.name, object.key);
      // The SHA-256 was computed from these very bytes, so a digest refused here is the Content-MD5 (or
      // bytes damaged on the way to the target: repeatable either way, so a re-read settles which).
      if (integrity.md5 === 'target' && ['BadDigest', 'InvalidDigest'].includes(s3Code(err))) throw sourceMd5Refused(req);
      throw describeS3Error(err, { site: target.name, bucket: target.bucket, key: object.key, action: 'PutObject' });
    }
  } finally {
    hasher.free(buf);
    req.budget.release(held);
  }
}
