/**
 * The one table that decides what a failed S3 request means for the copy (issue #11, bounded failure).
 * Pure data and a pure lookup: storage/errors.ts uses it to describe every S3 error, the activity
 * scaffold to decide whether Temporal retries, and the retry policies to name what never retries.
 *
 * - `transient`: throttling, 5xx, network, a timed-out request; retried with backoff, no limit.
 * - `permanent`: configuration, credentials, bucket, region/endpoint; no retry can fix it: the user
 *   fails at once.
 * - `repeatable`: the request itself is refused the same way each time (a bad argument, a key or an
 *   object the store cannot take, a method it does not implement), or the source's bytes do not match
 *   its ETag; retried a few times in case an intermediary garbled one attempt, then the user fails.
 */
export type ErrorClass = 'transient' | 'permanent' | 'repeatable';

export interface ErrorRule {
  class: ErrorClass;
  /** What the error means, in the operator's words. */
  meaning: string;
  /** What the operator should do about it. */
  action: string;
}

/** How many times a `repeatable` failure of the same request is tried before the user fails. */
export const REPEATABLE_ATTEMPTS = 3;

const CONFIG = 'check the sites file and the worker\'s credentials';
const CREDENTIALS = 'renew the worker\'s credentials, then run `clover retry`';
const REGION = 'fix the region or endpoint of this site in the sites file';
const OBJECT = 'this object cannot be copied as it is: fix or exclude it at the source, then run `clover retry`';
const STORE = 'this store does not support a request Clover needs: use a store that does, or report it';
const KMS = 'check the KMS key of this site (it must exist, be enabled, and the worker\'s credentials must be allowed to use it), then run `clover retry`';
const RETRIED = 'retried with backoff, no limit; nothing to do unless it lasts';

/** S3 error codes (the SDK's error name) and their class. Codes not listed fall back on the HTTP status. */
export const S3_ERROR_TABLE: Readonly<Record<string, ErrorRule>> = {
  // Credentials and access.
  AccessDenied: { class: 'permanent', meaning: 'access denied', action: CONFIG },
  InvalidAccessKeyId: { class: 'permanent', meaning: 'the access key is not known to the site', action: CONFIG },
  SignatureDoesNotMatch: { class: 'permanent', meaning: 'the secret key does not match the access key', action: CONFIG },
  ExpiredToken: { class: 'permanent', meaning: 'the session token has expired', action: CREDENTIALS },
  TokenRefreshRequired: { class: 'permanent', meaning: 'the session token must be refreshed', action: CREDENTIALS },
  InvalidToken: { class: 'permanent', meaning: 'the session token is malformed or invalid', action: CREDENTIALS },
  AccountProblem: { class: 'permanent', meaning: 'the account behind the credentials is blocked', action: CONFIG },
  // The bucket, its region and endpoint.
  NoSuchBucket: { class: 'permanent', meaning: 'the bucket does not exist', action: CONFIG },
  InvalidBucketName: { class: 'permanent', meaning: 'the bucket name is invalid', action: CONFIG },
  PermanentRedirect: { class: 'permanent', meaning: 'the bucket is in another region or endpoint', action: REGION },
  AuthorizationHeaderMalformed: { class: 'permanent', meaning: 'the region in the sites file is wrong for this endpoint', action: REGION },
  IllegalLocationConstraintException: { class: 'permanent', meaning: 'the bucket is in another region', action: REGION },
  RequestTimeTooSkewed: { class: 'permanent', meaning: 'the worker\'s clock is too far from the site\'s', action: 'set the worker machine\'s clock right (NTP), then run `clover retry`' },
  // The object's state and encryption: an operator must act on the object or the key.
  InvalidObjectState: {
    class: 'permanent', meaning: 'the object is archived (e.g. Glacier) and cannot be read until restored',
    action: 'add "restoreArchived" to the plan, or restore the object at the source (S3 RestoreObject), then run `clover retry`',
  },
  'KMS.DisabledException': { class: 'permanent', meaning: 'the KMS key is disabled', action: KMS },
  'KMS.NotFoundException': { class: 'permanent', meaning: 'the KMS key does not exist', action: KMS },
  'KMS.KMSInvalidStateException': { class: 'permanent', meaning: 'the KMS key is pending deletion or import', action: KMS },
  'KMS.AccessDeniedException': { class: 'permanent', meaning: 'the credentials may not use the KMS key', action: KMS },
  'KMS.InvalidKeyUsageException': { class: 'permanent', meaning: 'the KMS key cannot be used for encryption', action: KMS },
  InvalidEncryptionAlgorithmError: { class: 'permanent', meaning: 'the store refuses the encryption requested', action: 'fix "encryption" of this site in the sites file' },
  SourceNeedsCustomerKey: {
    class: 'permanent', meaning: 'the source object is encrypted with a customer-provided key (SSE-C), which Clover does not hold',
    action: 're-encrypt the object at the source with SSE-S3 or SSE-KMS (or copy it by hand), then run `clover retry`',
  },
  // Requests the store refuses the same way every time.
  InvalidArgument: { class: 'repeatable', meaning: 'the store refused an argument of the request', action: OBJECT },
  InvalidRequest: { class: 'repeatable', meaning: 'the store refused the request as invalid', action: OBJECT },
  KeyTooLongError: { class: 'repeatable', meaning: 'the key is too long for this store', action: OBJECT },
  EntityTooLarge: { class: 'repeatable', meaning: 'the object is too large for this store', action: OBJECT },
  EntityTooSmall: { class: 'repeatable', meaning: 'a multipart part is below the store\'s minimum size', action: 'raise the worker\'s --part-mib to the store\'s minimum part size, then run `clover retry`' },
  MetadataTooLarge: { class: 'repeatable', meaning: 'the object\'s metadata is too large for this store', action: OBJECT },
  MalformedXML: { class: 'repeatable', meaning: 'the store could not parse the request', action: STORE },
  MethodNotAllowed: { class: 'repeatable', meaning: 'the store does not allow this method here', action: STORE },
  NotImplemented: { class: 'repeatable', meaning: 'the store does not implement this request', action: STORE },
  // Throttling, server faults and time-outs: retried (listed so the table says so; unknown codes are too).
  SlowDown: { class: 'transient', meaning: 'the site asks to slow down', action: RETRIED },
  ServiceUnavailable: { class: 'transient', meaning: 'the site is unavailable', action: RETRIED },
  InternalError: { class: 'transient', meaning: 'the site had an internal error', action: RETRIED },
  RequestTimeout: { class: 'transient', meaning: 'the connection was idle too long', action: RETRIED },
  'KMS.ThrottlingException': { class: 'transient', meaning: 'KMS is throttling the site\'s requests', action: RETRIED },
  // Clover's own checks of the source's bytes (storage/copy-request.ts).
  SourceCorrupt: {
    class: 'repeatable', meaning: 'the bytes read do not match the source\'s MD5 ETag or stored checksum (bit rot, or a store serving damaged data)',
    action: 'restore the object at the source from a backup (or rewrite it so its ETag matches), then run `clover retry`',
  },
  SourceTruncated: {
    class: 'repeatable', meaning: 'the source returned fewer or more bytes than its length',
    action: 'check the object at the source (a damaged or truncated stored file), then run `clover retry`',
  },
};

/**
 * The rule for an error code and HTTP status. Codes in the table decide; otherwise 401/403 are
 * permanent (HEAD answers carry no code), a 3xx without a code is a redirect the SDK cannot follow (the
 * SDK names it `Unknown`: a wrong region or endpoint), and everything else is transient.
 */
export function classifyS3Error(code: string, status: number | undefined): ErrorRule {
  const rule = S3_ERROR_TABLE[code];
  if (rule) return rule;
  // Other KMS errors (e.g. KMS.IncorrectKeyException) name the key's state or use.
  if (code.startsWith('KMS.') && !/Throttling|LimitExceeded|Unavailable|Internal/.test(code)) return { class: 'permanent', meaning: 'KMS refused the key', action: KMS };
  if (status === 401 || status === 403) return { class: 'permanent', meaning: 'access denied', action: CONFIG };
  if (status !== undefined && status >= 300 && status < 400) {
    return { class: 'permanent', meaning: `the site answered with a redirect (HTTP ${status}): the bucket is in another region or endpoint`, action: REGION };
  }
  return { class: 'transient', meaning: 'a transient fault', action: 'retried with backoff' };
}

/**
 * Codes a retry policy must never retry (the permanent rows; repeatable ones end through the activity).
 * Other `KMS.*` codes classified permanent by the prefix rule are raised as non-retryable by the activity.
 */
export const PERMANENT_S3_CODES: readonly string[] = Object.entries(S3_ERROR_TABLE).filter(([, r]) => r.class === 'permanent').map(([c]) => c);
