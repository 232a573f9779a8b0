import {
  ApplicationFailure, getExternalWorkflowHandle, log, proxyActivities, upsertSearchAttributes, workflowInfo, continueAsNew,
} from '@temporalio/workflow';
import type { RetryPolicy } from '@temporalio/common';
import type { CloverActivities } from '../activities';
import { userPrefixFor } from '../domain/layout';
import {
  PERMANENT_FAILURES, SA, addCounters, userFinishedSignal, zeroCounters, type ObjectCounters, type UserMigrationInput, type UserOutcome,
} from './definitions';


// Transient faults (throttling, 5xx, network, a killed worker) retry without limit; permanent ones fail the user.
const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m', nonRetryableErrorTypes: [...PERMANENT_FAILURES] };

const { copyUserObjects, verifyUserObjects } = proxyActivities<CloverActivities>({
  // Liveness comes from heartbeats (a dead worker is noticed in 20 s); a copy of a large user may take long.
  startToCloseTimeout: '7d',
  heartbeatTimeout: '20s',
  retry,
});
const { commitManifest } = proxyActivities<CloverActivities>({ startToCloseTimeout: '30m', heartbeatTimeout: '2m', retry });

/** Resume point carried across continue-as-new (a user with very many pages). */
interface UserCursor {
  page: number;
  cursor?: string;
  transferred: { objects: number; bytes: number };
}

type Phase = 'copy' | 'verify' | 'commit' | 'done' | 'failed';
const setPhase = (p: Phase) => upsertSearchAttributes([{ key: SA.phase, value: p }]);

/**
 * Moves one user's shard: copy (all sources, a batch of listing pages per activity call), verify, commit
 * the manifest. Reports its outcome to the migration by signal (by workflow id, so it reaches the newest
 * run) and completes normally either way: a failed user never fails the migration.
 */
export async function userMigrationWorkflow(input: UserMigrationInput, resume?: UserCursor): Promise<UserOutcome> {
  const { settings, userId, targetSite } = input;
  const migrationId = settings.migrationId;
  const prefix = userPrefixFor(settings.userPrefix, userId);
  let counters: ObjectCounters = zeroCounters();
  let outcome: UserOutcome;
  try {
    setPhase('copy');
    let page = resume?.page ?? 0;
    let cursor = resume?.cursor;
    let transferred = resume?.transferred ?? { objects: 0, bytes: 0 };
    for (;;) {
      const r = await copyUserObjects({
        migrationId, userId, sources: settings.sources, targetSite, prefix, conflictPolicy: settings.conflictPolicy,
        objectsPerUser: settings.concurrency.objectsPerUser, page, cursor, transferred,
      });
      page = r.page;
      cursor = r.cursor;
      transferred = r.transferred;
      if (r.blockedCount > 0) {
        throw ApplicationFailure.create({
          type: 'SourcesConflict',
          nonRetryable: true,
          message: `${r.blockedCount} key(s) could not be migrated; first ${JSON.stringify(r.blocked[0].key)}: ${r.blocked[0].reason}`,
        });
      }
      if (r.done) break;
      if (workflowInfo().continueAsNewSuggested) {
        await continueAsNew<typeof userMigrationWorkflow>(input, { page, cursor, transferred });
      }
    }
    setPhase('verify');
    const v = await verifyUserObjects({ migrationId, userId, targetSite, mode: settings.verify, objectsPerUser: settings.concurrency.objectsPerUser });
    setPhase('commit');
    const c = await commitManifest({ migrationId, userId, targetSite, userPrefix: prefix });
    counters = addCounters(counters, {
      objects: c.objects, bytes: c.bytes, copied: c.copied, skipped: c.skipped, verified: v.verified, conflicts: c.conflicts,
      transferredObjects: transferred.objects + v.transferredObjects, transferredBytes: transferred.bytes + v.transferredBytes, recopied: v.recopied,
    });
    setPhase('done');
    outcome = { userId, ok: true, counters, manifestKey: c.manifestKey };
  } catch (err) {
    const reason = failureMessage(err);
    log.warn('user migration failed', { userId, reason });
    setPhase('failed');
    outcome = { userId, ok: false, reason, counters };
  }
  await getExternalWorkflowHandle(input.parentWorkflowId).signal(userFinishedSignal, outcome);
  return outcome;
}

function failureMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  // Activity failures wrap the activity's own error as `cause`: that message names site, bucket and key.
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}
