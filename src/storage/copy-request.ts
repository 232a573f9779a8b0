import type { PutObjectCommand, PutObjectCommandInput, UploadPartCommand } from '@aws-sdk/client-s3';
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
  /**
   * How the bytes were checked against the source's MD5 ETag: `target` (sent as Content-MD5, the target
   * refuses a mismatch; no local MD5), `local` (hashed here), `none` (the ETag is not an MD5: multipart,
   * SSE-KMS, SSE-C).
   */
  md5Check: Md5Check;
  /** The source's stored full-object SHA-256 checksum was compared with the bytes read. */
  sourceChecksumChecked: boolean;
  /** The source version read (x-amz-version-id of the GET), in a versioned source. */
  sourceVersionId?: string;
}

export type Md5Check = 'target' | 'local' | 'none';

/** How the source object is encrypted at rest, as its GET response says. */
export type SourceEncryption = 'none' | 'sse-s3' | 'sse-kms' | 'sse-c';

export function sourceEncryption(res: { ServerSideEncryption?: string; SSECustomerAlgorithm?: string }): SourceEncryption {
  if (res.SSECustomerAlgorithm) return 'sse-c';
  if (res.ServerSideEncryption?.startsWith('aws:kms')) return 'sse-kms'; // aws:kms and aws:kms:dsse
  return res.ServerSideEncryption ? 'sse-s3' : 'none';
}

/** What the copy checks the bytes read against, decided from the source's GET response and the target. */
export interface SourceIntegrity {
  /** How the MD5 of the source ETag is checked (see CopyOutcome.md5Check). */
  md5: Md5Check;
  /** The source's stored full-object checksum Clover checks (base64), when it returned one. */
  stored?: StoredChecksum;
}

/** A full-object checksum the source stores: SHA-256 (compared with the SHA-256 computed anyway) or CRC32. */
export interface StoredChecksum {
  algorithm: 'SHA256' | 'CRC32';
  value: string;
}

/**
 * The MD5 decision: the ETag is an MD5 of the bytes only for a single-part object stored plain or with
 * SSE-S3 (SSE-KMS and SSE-C ETags are not MD5s). Then the target checks it when it enforces
 * Content-MD5 and the object goes in one PUT; otherwise it is hashed here.
 */
export function md5CheckFor(etag: string, encryption: SourceEncryption, singlePut: boolean, targetChecksContentMd5: boolean): Md5Check {
  if (!needsMd5(etag) || encryption === 'sse-kms' || encryption === 'sse-c') return 'none';
  return singlePut && targetChecksContentMd5 ? 'target' : 'local';
}

/**
 * The source's stored checksum Clover checks: a full-object SHA-256 (free: the copy computes it
 * anyway), else a full-object CRC32 (zlib's, cheap). Composite (`-N`) checksums, CRC32C, CRC64NVME and
 * SHA-1 are not checked.
 */
export function storedChecksum(res: { ChecksumSHA256?: string; ChecksumCRC32?: string; ChecksumType?: string }): StoredChecksum | undefined {
  if (res.ChecksumType !== undefined && res.ChecksumType !== 'FULL_OBJECT') return undefined;
  const full = (v: string | undefined) => (v && !v.includes('-') ? v : undefined);
  const sha = full(res.ChecksumSHA256);
  if (sha) return { algorithm: 'SHA256', value: sha };
  const crc = full(res.ChecksumCRC32);
  return crc ? { algorithm: 'CRC32', value: crc } : undefined;
}

/** A CRC32 (zlib's running value) as S3 writes it: 4 bytes big-endian, base64. */
export function crc32Base64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
}

/** The MD5 hex of a plain ETag as a Content-MD5 header value (base64). */
export const contentMd5Of = (etag: string) => Buffer.from(etag, 'hex').toString('base64');

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
  /** The plan's `targetRetention`: S3 Object Lock mode, retained `days` from the write. */
  retention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

/**
 * What a write carries besides the bytes: the source's HTTP headers and tags, and the target site's
 * encryption. Plain PutObject input fields (CreateMultipartUpload takes the same ones).
 */
export type Headers = Pick<
  PutObjectCommandInput,
  'ContentType' | 'ContentEncoding' | 'CacheControl' | 'ContentDisposition' | 'ContentLanguage' | 'Expires' | 'Tagging' | 'ServerSideEncryption' | 'SSEKMSKeyId' | 'StorageClass' | 'ObjectLockMode' | 'ObjectLockRetainUntilDate'
>;

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
export function checkSourceMd5(req: CopyRequest, md5hex: string | undefined, check: Md5Check = needsMd5(req.object.etag) ? 'local' : 'none'): void {
  if (check === 'local' && md5hex !== req.object.etag) {
    throw new StorageError(`${sourceObject(req)}: the bytes read do not match its ETag (MD5 ${md5hex})`, 'SourceCorrupt', false, undefined, true);
  }
}

/** The target refused the Content-MD5 of the source's ETag: the bytes read are not the source's. */
export function sourceMd5Refused(req: CopyRequest): StorageError {
  return new StorageError(
    `${sourceObject(req)}: the bytes read do not match its ETag (target ${req.target.name} refused them as Content-MD5)`, 'SourceCorrupt', false, undefined, true,
  );
}

/**
 * The bytes read hash to the checksum the source stores for the object (when it returned one); `read`
 * has the bytes' SHA-256 and, when the stored one is a CRC32, their CRC32 (base64).
 */
export function checkSourceChecksum(req: CopyRequest, stored: StoredChecksum | undefined, read: { SHA256: string; CRC32?: string }): boolean {
  if (stored === undefined) return false;
  const got = read[stored.algorithm];
  if (stored.value !== got) {
    const name = stored.algorithm === 'SHA256' ? 'SHA-256' : 'CRC32';
    throw new StorageError(`${sourceObject(req)}: the bytes read do not match its stored ${name} checksum ${stored.value} (read ${got})`, 'SourceCorrupt', false, undefined, true);
  }
  return true;
}

/** A source object encrypted with a customer key (SSE-C): Clover holds no such key, so it cannot read it. */
export function sourceNeedsCustomerKey(site: { name: string; bucket: string }, key: string): StorageError {
  return new StorageError(
    `GetObject failed at site ${site.name}, bucket ${site.bucket}, key ${JSON.stringify(key)}: the object is encrypted with a customer-provided key (SSE-C), which Clover does not hold (SourceNeedsCustomerKey); ` +
      're-encrypt the object at the source with SSE-S3 or SSE-KMS (or copy it by hand), then run `clover retry`',
    'SourceNeedsCustomerKey', true,
  );
}

export function conditional(req: CopyRequest): { IfNoneMatch?: string; IfMatch?: string } {
  return req.overwriteEtag ? { IfMatch: `"${req.overwriteEtag}"` } : { IfNoneMatch: '*' };
}

