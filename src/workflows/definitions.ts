/**
 * Shared shapes of the workflows: inputs, results, signals and queries. Clients, tests and activities
 * import these without importing workflow bodies. Everything here is small by design (invariant 5):
 * ids, cursors and counters, never object lists or secrets.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType, type RetryPolicy } from '@temporalio/common';
import { PERMANENT_FAILURES, SEARCH_ATTRIBUTE_NAMES } from '../domain/names';
import type { Routing } from '../domain/routing';

/** Every activity's retry policy: transient faults (throttling, 5xx, network, a killed worker) retry; permanent ones fail at once. */
export const ACTIVITY_RETRY: RetryPolicy = {
  initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m', nonRetryableErrorTypes: [...PERMANENT_FAILURES],
};

export const SA = {
  migrationId: defineSearchAttributeKey(SEARCH_ATTRIBUTE_NAMES.migrationId, SearchAttributeType.KEYWORD),
  userId: defineSearchAttributeKey(SEARCH_ATTRIBUTE_NAMES.userId, SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey(SEARCH_ATTRIBUTE_NAMES.phase, SearchAttributeType.KEYWORD),
  targetSite: defineSearchAttributeKey(SEARCH_ATTRIBUTE_NAMES.targetSite, SearchAttributeType.KEYWORD),
};

export const migrationWorkflowId = (migrationId: string): string => `migration-${migrationId}`;
export const rollbackWorkflowId = (migrationId: string): string => `rollback-${migrationId}`;
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
  /** `delete-after-verify`: after the grace period, delete source objects still equal to what was copied. */
  sourceDisposition: 'keep' | 'delete-after-verify';
  /** A duration such as 7d, 12h, 30s (Temporal's format). */
  gracePeriod: string;
  /** A user whose deletion would remove more objects than this waits for `clover cutover`. */
  maxDeletes?: number;
  /**
   * `auto`: after its first pass and the grace period, a user gets a final delta pass and (with
   * delete-after-verify) its sources are deleted. `operator`: after its first pass each user waits in
   * phase `in-sync` (delta passes on `clover sync` or every `syncInterval`) until `clover cutover`.
   * Absent in migrations started before cut-over modes: `auto`.
   */
  cutover?: 'auto' | 'operator';
  /** A user waiting in `in-sync` gets a delta pass every interval (a durable timer). Temporal's duration format. */
  syncInterval?: string;
  /** Versioned sources: at cut-over also delete every version of keys the user erased (current version a delete marker). */
  purgeErased?: boolean;
  /** Archived source objects: restore for `days` at `tier`, poll HEAD every `pollInterval` (durable timer), then copy. */
  restoreArchived?: { days: number; tier: 'Standard' | 'Bulk' | 'Expedited'; pollInterval: string };
  /** Storage class of the EU copies (default: the source's, when it is not an archive class). */
  targetStorageClass?: string;
  /**
   * S3 Object Lock retention for the evidence: every ledger record and manifest generation is written
   * with this mode, retained until `days` after it is written. The buckets must have Object Lock
   * (checked before start). Absent: no retention.
   */
  evidenceRetention?: EvidenceRetention;
  /** S3 Object Lock retention on every EU copy (PUT, multipart upload, metadata copy), `days` from each write. */
  targetRetention?: EvidenceRetention;
}

/** A plan's `evidenceRetention` (the same shape as storage's `Retention`). */
export interface EvidenceRetention {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  days: number;
}

/** What one pass of one user did (first pass or delta pass), as `clover sync --wait` reports it. */
export interface PassReport {
  userId: string;
  /** The manifest generation the pass committed (absent when it failed before committing). */
  generation?: number;
  kind: 'first' | 'delta';
  copied: number;
  overwritten: number;
  erased: number;
  unchanged: number;
  verified: number;
  conflicts: number;
  /** The first conflicts (key and why): EU objects changed by someone else, sources that differ. */
  conflictKeys: { key: string; reason: string }[];
  /** True when the pass committed with no conflict: the EU copy equals the sources as listed, verified. */
  inStep: boolean;
  /** Why the pass failed, when it did (the user keeps waiting; the next pass starts from the newest generation). */
  error?: string;
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
  /** Source objects deleted after the grace period / left because they changed since the copy. */
  sourceDeleted: number;
  sourceKeptChanged: number;
  /** Objects still found in a source under a user's prefix after its cut-over (the residue check). */
  sourceResidue: number;
  /** Multipart parts uploaded, and parts found already uploaded by a crashed attempt and reused. */
  partsSent: number;
  partsReused: number;
}

export const zeroCounters = (): ObjectCounters => ({
  objects: 0, bytes: 0, copied: 0, skipped: 0, verified: 0, transferredObjects: 0, transferredBytes: 0, recopied: 0, conflicts: 0,
  sourceDeleted: 0, sourceKeptChanged: 0, sourceResidue: 0, partsSent: 0, partsReused: 0,
});

export function addCounters(a: ObjectCounters, b: Partial<ObjectCounters>): ObjectCounters {
  const out = { ...a };
  // Counters carried from a run before a counter existed lack it: it starts at 0.
  for (const k of Object.keys(zeroCounters()) as (keyof ObjectCounters)[]) out[k] = (out[k] ?? 0) + (b[k] ?? 0);
  return out;
}

export interface MigrationInput {
  settings: MigrationSettings;
  /** Site and count of the stored user list (`_clover/migrations/<id>/users.jsonl`). */
  usersSite: string;
  usersTotal: number;
  /** The stored user list's ETag: every read of the list is pinned to it (absent in migrations started before pinning). */
  usersEtag?: string;
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

/** Failure reasons kept in workflow state are cut to this length (the worker's log has the whole text). */
export const MAX_REASON_CHARS = 1000;

/** The innermost cause's message: an activity failure wraps the activity's own error, which names site, bucket and key. */
export function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

export function cutReason(text: string): string {
  return text.length <= MAX_REASON_CHARS ? text : `${text.slice(0, MAX_REASON_CHARS)}… (cut; the worker's log has the whole message)`;
}

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
  usersCancelled: number;
  /** Users migrated whose source deletion (grace period) is still to come. */
  usersAwaitingDisposal: number;
  failed: FailedUser[];
  counters: ObjectCounters;
  paused: boolean;
  pausedAt?: string;
  cancelled: boolean;
}

export interface MigrationStatus {
  migrationId: string;
  phase: 'running' | 'paused' | 'completed' | 'completed-with-failures' | 'cancelled';
  startedAt: string;
  finishedAt?: string;
  usersTotal: number;
  usersDone: number;
  usersFailed: number;
  usersAlreadyDone: number;
  usersCancelled: number;
  usersAwaitingDisposal: number;
  pausedAt?: string;
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
  /** Continue-as-new once the user's history has this many events (default: when Temporal suggests it; tests lower it). */
  historyLimit?: number;
  /**
   * `migrate` (default): the user's whole life in the migration. `sync-once`: one delta pass of a user
   * whose workflow had finished (`clover sync` on a finished user); reports to no parent.
   * `cutover-once`: the cut-over of a user whose workflow had finished before it (`clover cutover` on
   * a finished user, delete-after-verify, manifest neither cut over nor rolled back): final delta pass,
   * then the sources are deleted; reports to no parent.
   */
  mode?: 'migrate' | 'sync-once' | 'cutover-once';
  /**
   * Set by the migration for the users it starts: the first pass begins with one activity
   * (`firstPassSmallUser`) and sets no phase `copy` (set at the start). Absent in users started before
   * it existed, which replay the three-activity pass. (An input field, not a workflow patch: a patch
   * would upsert the TemporalChangeVersion search attribute, one more action per user.)
   */
  firstPassOneActivity?: boolean;
  /**
   * Set by the migration for the users it starts: that one activity is first tried as a local activity
   * (run by the worker that runs the workflow task, recorded as one marker), which hands the user back
   * (`deferred`) unless the worker finds it small (see `ActivityDeps.localFirstPassBytes`). Absent in
   * users started before it existed, which replay the regular activity.
   */
  firstPassLocal?: boolean;
}

export interface UserOutcome {
  userId: string;
  ok: boolean;
  cancelled?: boolean;
  reason?: string;
  counters: ObjectCounters;
  manifestKey?: string;
  /** True when the user still has a cut-over ahead (grace period, `in-sync`, source deletion): the migration waits for it. */
  awaitingDisposal?: boolean;
  /** The user's last pass (a sync-once run's only pass). */
  lastPass?: PassReport;
  /** After a cut-over: objects still found in a source under the user's prefix (first few) and how many. */
  residue?: { key: string; site: string; reason: string }[];
  residueCount?: number;
  /** After a cut-over: source objects deleted. */
  sourceDeleted?: number;
}

export interface DisposalOutcome {
  userId: string;
  deleted: number;
  keptChanged: number;
  /** Objects the residue check found in a source after the deletion. */
  residue?: number;
  error?: string;
}

/** Child → migration: the user is migrated (or failed, or cancelled). */
export const userFinishedSignal = defineSignal<[UserOutcome]>('userFinished');
/** Child → migration: the user's source objects were deleted after the grace period. */
export const userDisposedSignal = defineSignal<[DisposalOutcome]>('userDisposed');
export const statusQuery = defineQuery<MigrationStatus>('status');
/** Operator → migration: hold (running copies stop at their next checkpoint) / go on. */
export const pauseUpdate = defineUpdate<MigrationStatus, []>('pause');
export const resumeUpdate = defineUpdate<MigrationStatus, []>('resume');
/** Migration or operator → user: hold or go on. */
export const userPauseSignal = defineSignal<[boolean]>('userPause');
/** Operator → user: end the grace period now (and approve a deletion above maxDeletes); in `in-sync`: cut over now. */
export const cutoverSignal = defineSignal<[]>('cutover');
/** Operator → user: run a delta pass now; completes with that pass's report (rejected before the first pass committed or after cut-over). */
export const syncUpdate = defineUpdate<PassReport, []>('sync');

export interface RollbackInput {
  settings: MigrationSettings;
  usersSite: string;
  /** The user list's ETag, as pinned by the migration. */
  usersEtag?: string;
  /** Only these users; all users of the migration when absent. */
  userIds?: string[];
  state?: RollbackState;
  historyLimit?: number;
}

export interface RollbackState {
  startedAt: string;
  usersOffset: number;
  usersExhausted: boolean;
  userIndex: number;
  counters: RollbackCounters;
  problems: { userId: string; key?: string; problem: string }[];
  /** The first erased objects (not restored, not problems). */
  erased?: { userId: string; key: string; reason: string }[];
}

export interface RollbackCounters {
  users: number;
  restored: number;
  targetDeleted: number;
  partialDeleted: number;
  kept: number;
  uploadsAborted: number;
  /** Objects not restored because the application erased them (never restored; not problems). */
  erased: number;
}

export interface RollbackResult {
  migrationId: string;
  phase: 'rolled-back' | 'rolled-back-with-problems';
  counters: RollbackCounters;
  problems: { userId: string; key?: string; problem: string }[];
  /** The first erased objects, with why: reported apart from the problems (they do not make the rollback fail). */
  erased?: { userId: string; key: string; reason: string }[];
}
