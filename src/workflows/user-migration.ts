import {
  ApplicationFailure, CancellationScope, ActivityCancellationType, ContinueAsNew, continueAsNew, getExternalWorkflowHandle,
  isCancellation, log, proxyActivities, upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import type { CloverActivities } from '../activities';
import type { Transferred } from '../activities/copy';
import { userPrefixFor } from '../domain/layout';
import {
  ACTIVITY_RETRY, SA, addCounters, cutReason, rootMessage, userDisposedSignal, userFinishedSignal, zeroCounters, type UserMigrationInput, type UserOutcome,
} from './definitions';
import { UserControls } from './user-controls';


const { copyUserObjects, verifyUserObjects, disposeSources } = proxyActivities<CloverActivities>({
  // Liveness comes from heartbeats (a dead worker is noticed in 20 s); a copy of a large user may take long.
  startToCloseTimeout: '7d',
  heartbeatTimeout: '20s',
  // On pause or cancel, wait until the activity has really stopped: no copy runs while paused.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: ACTIVITY_RETRY,
});
const { commitManifest, cleanupUser } = proxyActivities<CloverActivities>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '20s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: ACTIVITY_RETRY,
});

/** Resume point carried across continue-as-new (a user with very many pages). */
interface UserCursor {
  page: number;
  cursor?: string;
  transferred: Transferred;
  /** A pause in force when the run continued as new: the new run starts paused. */
  paused?: boolean;
}

type Phase = 'copy' | 'verify' | 'commit' | 'grace' | 'awaiting-operator' | 'delete' | 'done' | 'failed' | 'cancelled';
const setPhase = (p: Phase) => upsertSearchAttributes([{ key: SA.phase, value: p }]);

/**
 * Moves one user's shard: copy (all sources, a batch of listing pages per activity call), verify, commit
 * the manifest; then, with sourceDisposition `delete-after-verify`, wait out the grace period (a durable
 * timer) and delete the source objects that still match. Reports to the migration by signal (by workflow
 * id, so it reaches the newest run) and completes normally: a failed user never fails the migration.
 * Pause stops the running activity at its next checkpoint and holds; cancel aborts uploads and reports.
 */
export async function userMigrationWorkflow(input: UserMigrationInput, resume?: UserCursor): Promise<UserOutcome> {
  const { settings, userId, targetSite } = input;
  const migrationId = settings.migrationId;
  const prefix = userPrefixFor(settings.userPrefix, userId);
  const parent = getExternalWorkflowHandle(input.parentWorkflowId);

  const controls = new UserControls(resume?.paused === true);
  controls.installHandlers();
  const pausable = <T>(fn: () => Promise<T>) => controls.pausable(fn);

  let outcome: UserOutcome | undefined;
  try {
    setPhase('copy');
    const transferred = await copyAll();
    setPhase('verify');
    const v = await pausable(() => verifyUserObjects({ migrationId, userId, targetSite, prefix, mode: settings.verify, objectsPerUser: settings.concurrency.objectsPerUser, generation: 1 }));
    setPhase('commit');
    const c = await pausable(() => commitManifest({ migrationId, userId, targetSite, userPrefix: prefix, sources: settings.sources, generation: 1, kind: 'first', committedAt: new Date().toISOString() }));
    const counters = addCounters(zeroCounters(), {
      objects: c.objects, bytes: c.bytes, copied: c.copied, skipped: c.skipped, verified: v.verified, conflicts: c.conflicts,
      transferredObjects: transferred.objects + v.transferredObjects, transferredBytes: transferred.bytes + v.transferredBytes, recopied: v.recopied,
      partsSent: transferred.parts ?? 0, partsReused: transferred.partsReused ?? 0,
    });
    const disposing = settings.sourceDisposition === 'delete-after-verify';
    outcome = { userId, ok: true, counters, manifestKey: c.manifestKey, awaitingDisposal: disposing };
    setPhase(disposing ? 'grace' : 'done');
    // Reported now, so the user's slot in the migration's window is free during the grace period.
    await parent.signal(userFinishedSignal, outcome);
    if (!disposing) return outcome;
    await disposeAfterGrace(outcome.counters.objects);
    return outcome;
  } catch (err) {
    // Continue-as-new is thrown as an error: it is the run handing over, not a failure of the user.
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      return await CancellationScope.nonCancellable(async () => {
        setPhase('cancelled');
        await cleanupUser({ targetSite, prefix });
        const cancelled: UserOutcome = { userId, ok: false, cancelled: true, reason: 'cancelled', counters: zeroCounters() };
        // A user already reported as migrated is only waiting for its grace period: nothing to report again.
        if (!outcome) await parent.signal(userFinishedSignal, cancelled);
        else await parent.signal(userDisposedSignal, { userId, deleted: 0, keptChanged: 0, error: 'cancelled before the source was deleted' });
        return outcome ?? cancelled;
      });
    }
    const full = rootMessage(err);
    log.warn('user migration failed', { userId, reason: full });
    const reason = cutReason(full);
    setPhase('failed');
    if (outcome) {
      await parent.signal(userDisposedSignal, { userId, deleted: 0, keptChanged: 0, error: reason });
      return outcome;
    }
    const failed: UserOutcome = { userId, ok: false, reason, counters: zeroCounters() };
    await parent.signal(userFinishedSignal, failed);
    return failed;
  }

  /** Copies every page of the user (a batch of pages per activity call), continuing-as-new when history grows. */
  async function copyAll(): Promise<Transferred> {
    let page = resume?.page ?? 0;
    let cursor = resume?.cursor;
    let transferred: Transferred = resume?.transferred ?? { objects: 0, bytes: 0 };
    for (;;) {
      const r = await pausable(() => copyUserObjects({
        migrationId, userId, sources: settings.sources, targetSite, prefix, conflictPolicy: settings.conflictPolicy,
        objectsPerUser: settings.concurrency.objectsPerUser, generation: 1, page, cursor, transferred,
      }));
      page = r.page;
      cursor = r.cursor;
      transferred = r.transferred;
      if (r.blockedCount > 0) {
        throw ApplicationFailure.create({
          type: 'SourcesConflict',
          nonRetryable: true,
          message: `${r.blockedCount} key(s) could not be migrated; first ${JSON.stringify(r.blocked[0]?.key)}: ${r.blocked[0]?.reason}`,
        });
      }
      if (r.done) return transferred;
      if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? Infinity)) {
        await continueAsNew<typeof userMigrationWorkflow>(input, { page, cursor, transferred, paused: controls.isPaused() });
      }
    }
  }

  async function disposeAfterGrace(objects: number): Promise<void> {
    // A durable timer: it survives worker and server restarts. `clover cutover` ends it early.
    await controls.cutoverRequested(settings.gracePeriod);
    if (settings.maxDeletes !== undefined && objects > settings.maxDeletes) {
      setPhase('awaiting-operator');
      log.warn('deletion above maxDeletes: waiting for `clover cutover --user`', { userId, objects, maxDeletes: settings.maxDeletes });
      controls.consumeCutover();
      await controls.cutoverRequested();
    }
    setPhase('delete');
    const d = await pausable(() => disposeSources({
      migrationId, userId, targetSite, objectsPerUser: settings.concurrency.objectsPerUser, sources: settings.sources, userPrefix: prefix,
    }));
    setPhase('done');
    await parent.signal(userDisposedSignal, { userId, deleted: d.deleted, keptChanged: d.keptChanged });
  }
}
