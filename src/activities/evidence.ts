import type { Retention } from '../storage/json-records';
import { workerActor } from '../evidence/keys';
import { appendLedger, readLedger } from '../evidence/storage';
import { ledgerOf, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

/** A failure reason as recorded in the ledger, at most (the workflow's own reason is already cut). */
export const FAILURE_REASON_MAX = 1000;

export interface RecordUserFailedInput {
  migrationId: string;
  userId: string;
  /** Why the user failed (cut to FAILURE_REASON_MAX characters). */
  reason: string;
  /** The phase the user was in when it failed (copy, verify, commit, …). */
  phase: string;
  /** When it failed, by the workflow's clock: a retried attempt finds its own record by it. */
  failedAt: string;
  ledgerSite?: string;
  evidenceRetention?: Retention;
}

export function createEvidenceActivities(deps: ActivityDeps) {
  return {
    /**
     * Appends a `user-failed` record (userId, reason, phase) to the migration's ledger: the user's data did
     * not move, and the evidence says so (verify then reports it FAILED, not INCOMPLETE). Idempotent: a
     * retried attempt first looks for a record of this very failure (same user and failedAt). Nothing is
     * recorded without a key or a ledger site (a history from before the ledger).
     */
    async recordUserFailed(input: RecordUserFailedInput): Promise<{ recorded: boolean }> {
      return runActivity(async ({ ctx, signal }) => {
        const ledger = ledgerOf(deps, input);
        if (!ledger || !deps.signingKey) return { recorded: false };
        if (ctx.info.attempt > 1) {
          const there = await readLedger(ledger.site, input.migrationId, signal);
          if (there.some((r) => r.type === 'user-failed' && r.data.userId === input.userId && r.data.failedAt === input.failedAt)) return { recorded: true };
        }
        await appendLedger(ledger.site, input.migrationId, deps.signingKey, {
          type: 'user-failed', actor: workerActor(), retention: ledger.retention,
          data: { userId: input.userId, phase: input.phase, reason: input.reason.slice(0, FAILURE_REASON_MAX), failedAt: input.failedAt },
        }, signal);
        return { recorded: true };
      });
    },
  };
}
