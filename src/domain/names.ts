/**
 * Names shared by the worker, the workflows, the operator commands and the local stack: each is written
 * here once. Plain data, so workflow code may import it.
 */
import { PERMANENT_S3_CODES } from './error-classes';

/** The task queue workers poll and `clover start` targets, unless CLOVER_TASK_QUEUE says otherwise. */
export const DEFAULT_TASK_QUEUE = 'clover-migrations';

/** Custom search attributes (all Keyword): the local stack registers them; workflows set them. */
export const SEARCH_ATTRIBUTE_NAMES = {
  migrationId: 'CloverMigrationId',
  userId: 'CloverUserId',
  phase: 'CloverPhase',
  targetSite: 'CloverTargetSite',
} as const;

/** Failure types of Clover's own permanent faults (raised by activities and workflows). */
export const CLOVER_PERMANENT_FAILURES = [
  'UnknownSite', 'ResidencyViolation', 'VerifyMismatch', 'SourcesConflict', 'NoManifest', 'ManifestInvalid', 'ManifestConflict', 'CutOver', 'SourceEmpty', 'MalformedRecord', 'UserListChanged', 'RolledBack', 'UserStillRunning',
] as const;

/** Every failure type that retry policies never retry. */
export const PERMANENT_FAILURES: readonly string[] = [...PERMANENT_S3_CODES, ...CLOVER_PERMANENT_FAILURES];
