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
  // An archived object (GLACIER, DEEP_ARCHIVE) read without a finished restore.
  InvalidObjectState: { class: 'permanent', meaning: 'the object is archived and not restored', action: 'add "restoreArchived" to the plan or restore it, then run `clover retry`' },
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
  // Clover's own checks of the source's bytes (storage/copy-request.ts).
  SourceCorrupt: {
    class: 'repeatable', meaning: 'the bytes read do not match the source\'s MD5 ETag (bit rot, or a store serving damaged data)',
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
  if (status === 401 || status === 403) return { class: 'permanent', meaning: 'access denied', action: CONFIG };
  if (status !== undefined && status >= 300 && status < 400) {
    return { class: 'permanent', meaning: `the site answered with a redirect (HTTP ${status}): the bucket is in another region or endpoint`, action: REGION };
  }
  return { class: 'transient', meaning: 'a transient fault', action: 'retried with backoff' };
}

/** Codes a retry policy must never retry (the permanent rows; repeatable ones end through the activity). */
export const PERMANENT_S3_CODES: readonly string[] = Object.entries(S3_ERROR_TABLE).filter(([, r]) => r.class === 'permanent').map(([c]) => c);
