import type { PutObjectCommand, StorageClass, UploadPartCommand } from '@aws-sdk/client-s3';
import type { ByteBudget } from './byte-budget';
import type { Site } from './clients';
import { StorageError } from './errors';
import type { Hasher } from './hash-pool';
import type { SourceObject } from './object-meta';

/** What a checkpoint keeps of an object's multipart upload to continue it after a crash. */
export interface UploadCheckpoint {
  uploadId: string;
  partSize: number;
  sourceEtag: string;
}

export interface CopyOutcome {
  sha256: string;
  size: number;
  targetEtag: string;
  /** The SHA-256 checksum as the target server reported it ('' when it did not; composite for multipart). */
  targetChecksum: string;
  /** The source version read (x-amz-version-id of the GET), in a versioned source. */
  sourceVersionId?: string;
}

export interface CopySettings {
  /** Objects above this size are sent as multipart uploads. */
  multipartThreshold: number;
  /** Minimum part size; the real one grows so no object needs more than 9,000 parts. */
  minPartSize: number;
  /** Parts of one object uploaded at once. */
  partConcurrency: number;
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
  /** The plan's `targetStorageClass` (default: the source's class when it is not an archive class). */
  storageClass?: string;
}

export type Headers = {
  ContentType?: string; ContentEncoding?: string; CacheControl?: string; ContentDisposition?: string; ContentLanguage?: string;
  /** The EU copy's storage class (see targetStorageClass in domain/versions.ts); absent: the bucket's default. */
  StorageClass?: StorageClass;
};

/** A single-part source ETag is the MD5 of the object's bytes, so the MD5 is worth computing. */
export const needsMd5 = (etag: string) => /^[0-9a-f]{32}$/.test(etag);

/**
 * Presets the SigV4 payload hash (x-amz-content-sha256) to the SHA-256 Clover has already computed for
 * the checksum header, so the SDK does not hash the body once more before signing.
 */
export function signedWith<C extends PutObjectCommand | UploadPartCommand>(command: C, sha256Hex: string): C {
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

/** Names the source object for its own checks: site, bucket, key and the ETag it was read with. */
const sourceObject = (req: CopyRequest) =>
  `source object ${JSON.stringify(req.object.key)} at site ${req.source.name}, bucket ${req.source.bucket}, ETag ${req.object.etag}`;

/** The bytes read are as many as the source announced; repeated on the same ETag, the stored object is damaged. */
export function checkSourceLength(req: CopyRequest, read: number, size: number): void {
  if (read !== size) {
    throw new StorageError(`${sourceObject(req)}: read ${read} bytes, expected ${size}`, 'SourceTruncated', false, undefined, true);
  }
}

/**
 * The bytes read hash to its single-part ETag (multipart `-N` and SSE-KMS ETags are not MD5s). A
 * mismatch read again on the same ETag is bit rot at the source: repeatable, never transient forever.
 */
export function checkSourceMd5(req: CopyRequest, md5hex: string | undefined): void {
  if (needsMd5(req.object.etag) && md5hex !== req.object.etag) {
    throw new StorageError(`${sourceObject(req)}: the bytes read do not match its ETag (MD5 ${md5hex})`, 'SourceCorrupt', false, undefined, true);
  }
}

export function conditional(req: CopyRequest): { IfNoneMatch?: string; IfMatch?: string } {
  return req.overwriteEtag ? { IfMatch: `"${req.overwriteEtag}"` } : { IfNoneMatch: '*' };
}
