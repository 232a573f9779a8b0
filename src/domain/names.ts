/**
 * Names shared by the worker, the workflows, the operator commands and the local stack: each is written
 * here once. Plain data, so workflow code may import it.
 */

/** The task queue workers poll and `clover start` targets, unless CLOVER_TASK_QUEUE says otherwise. */
export const DEFAULT_TASK_QUEUE = 'clover-migrations';

/** Custom search attributes (all Keyword): the local stack registers them; workflows set them. */
export const SEARCH_ATTRIBUTE_NAMES = {
  migrationId: 'CloverMigrationId',
  userId: 'CloverUserId',
  phase: 'CloverPhase',
  targetSite: 'CloverTargetSite',
} as const;

/** S3 error codes that no retry can fix, with what they mean for an operator. */
export const PERMANENT_S3_ERRORS: Readonly<Record<string, string>> = {
  AccessDenied: 'access denied',
  InvalidAccessKeyId: 'the access key is not known to the site',
  SignatureDoesNotMatch: 'the secret key does not match the access key',
  NoSuchBucket: 'the bucket does not exist',
  InvalidBucketName: 'the bucket name is invalid',
  PermanentRedirect: 'the bucket is in another region or endpoint',
  AuthorizationHeaderMalformed: 'the region in the sites file is wrong for this endpoint',
};

/** Failure types of Clover's own permanent faults (raised by activities and workflows). */
export const CLOVER_PERMANENT_FAILURES = [
  'UnknownSite', 'ResidencyViolation', 'VerifyMismatch', 'SourcesConflict', 'NoManifest', 'ManifestInvalid', 'MalformedRecord', 'UserListChanged', 'RolledBack', 'UserStillRunning',
] as const;

/** Every failure type that retry policies never retry. */
export const PERMANENT_FAILURES: readonly string[] = [...Object.keys(PERMANENT_S3_ERRORS), ...CLOVER_PERMANENT_FAILURES];
