/**
 * Shared shapes of the workflows: inputs, results, signals and queries. Clients, tests and activities
 * import these without importing workflow bodies. Everything here is small by design (invariant 5):
 * ids, cursors and counters, never object lists or secrets.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Routing } from '../domain/routing';

export const TASK_QUEUE = 'clover-migrations';

/** Failure types activities raise for permanent faults; retry policies never retry them. */
export const PERMANENT_FAILURES = [
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'NoSuchBucket', 'InvalidBucketName',
  'PermanentRedirect', 'AuthorizationHeaderMalformed', 'UnknownSite', 'ResidencyViolation', 'VerifyMismatch', 'SourcesConflict',
] as const;

export const SA = {
  migrationId: defineSearchAttributeKey('CloverMigrationId', SearchAttributeType.KEYWORD),
  userId: defineSearchAttributeKey('CloverUserId', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('CloverPhase', SearchAttributeType.KEYWORD),
  targetSite: defineSearchAttributeKey('CloverTargetSite', SearchAttributeType.KEYWORD),
};

export const migrationWorkflowId = (migrationId: string): string => `migration-${migrationId}`;
export const userWorkflowId = (migrationId: string, userId: string): string => `migration-${migrationId}-user-${userId}`;

/** The plan without its user list (which lives in storage, read a page at a time). */
export interface MigrationSettings {
  migrationId: string;
  sources: string[];
  routing: Routing;
  userPrefix: string;
  verify: 'full' | 'checksum';
  conflictPolicy: 'newest-wins' | 'fail';
  concurrency: { users: number; objectsPerUser: number };
}

/** Object-level counters, summed per user and per migration. */
export interface ObjectCounters {
  /** Objects in committed manifests, and their bytes. */
  objects: number;
  bytes: number;
  /** Of those: written by this migration / found already in place. */
  copied: number;
  skipped: number;
  verified: number;
  /** PUTs actually sent (includes re-copies after a crash or a failed verify). */
  transferredObjects: number;
  transferredBytes: number;
  recopied: number;
  conflicts: number;
}

export const zeroCounters = (): ObjectCounters => ({
  objects: 0, bytes: 0, copied: 0, skipped: 0, verified: 0, transferredObjects: 0, transferredBytes: 0, recopied: 0, conflicts: 0,
});

export function addCounters(a: ObjectCounters, b: Partial<ObjectCounters>): ObjectCounters {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof ObjectCounters)[]) out[k] += b[k] ?? 0;
  return out;
}

export interface MigrationInput {
  settings: MigrationSettings;
  /** Site and count of the stored user list (`_clover/migrations/<id>/users.jsonl`). */
  usersSite: string;
  usersTotal: number;
  /** `retry` skips users whose manifest is already committed. */
  mode: 'start' | 'retry';
  /** Continue-as-new once a run's history has this many events (default 4,000; tests lower it). */
  historyLimit?: number;
  /** Carried across continue-as-new. */
  state?: MigrationState;
}

export interface FailedUser {
  userId: string;
  reason: string;
}

export const MAX_FAILED_LISTED = 100;

export interface MigrationState {
  startedAt: string;
  runs: number;
  usersOffset: number;
  usersExhausted: boolean;
  /** Rows read from the user list but not yet started (at most one page). */
  pending: { userId: string; country: string; committed?: boolean }[];
  inFlight: string[];
  usersDone: number;
  usersFailed: number;
  usersAlreadyDone: number;
  failed: FailedUser[];
  counters: ObjectCounters;
}

export interface MigrationStatus {
  migrationId: string;
  phase: 'running' | 'completed' | 'completed-with-failures';
  startedAt: string;
  finishedAt?: string;
  usersTotal: number;
  usersDone: number;
  usersFailed: number;
  usersAlreadyDone: number;
  usersInFlight: number;
  inFlight: string[];
  failed: FailedUser[];
  counters: ObjectCounters;
  runs: number;
}

export type MigrationResult = MigrationStatus;

export interface UserMigrationInput {
  settings: MigrationSettings;
  parentWorkflowId: string;
  userId: string;
  country: string;
  targetSite: string;
}

export interface UserOutcome {
  userId: string;
  ok: boolean;
  reason?: string;
  counters: ObjectCounters;
  manifestKey?: string;
}

export const userFinishedSignal = defineSignal<[UserOutcome]>('userFinished');
export const statusQuery = defineQuery<MigrationStatus>('status');
