import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { raiseRollbackFence } from '../storage/fence';
import { userWorkflowId } from '../workflows/definitions';
import { targetSite, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

export interface FenceUserInput {
  migrationId: string;
  userId: string;
  /** Every site that may hold the user's EU copy (and so its source deletion's fence check). */
  targetSites: string[];
  /** How long the user's workflow may take to stop after its cancellation (default 10 minutes). */
  maxWaitMs?: number;
}

export function createFenceActivities(deps: ActivityDeps) {
  /**
   * Makes a user safe to roll back: raises the user's rollback fence in every target site (a running
   * source deletion stops before its next delete), cancels the user's workflow if it still runs, and
   * returns only once that workflow is closed, looked up by its id (never by visibility, which lags).
   * A workflow that does not stop in time fails the user loudly (UserStillRunning). Idempotent.
   */
  function fenceUser(input: FenceUserInput): Promise<{ wasRunning: boolean }> {
    return runActivity(async ({ ctx, signal, beat }) => {
      for (const name of input.targetSites) await raiseRollbackFence(targetSite(deps, name), input.migrationId, input.userId, signal);
      const workflowId = userWorkflowId(input.migrationId, input.userId);
      const handle = ctx.client.workflow.getHandle(workflowId);
      const running = async () => {
        try {
          return (await handle.describe()).status.name === 'RUNNING';
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return false;
          throw err;
        }
      };
      if (!(await running())) return { wasRunning: false };
      await handle.cancel();
      const deadline = Date.now() + (input.maxWaitMs ?? 10 * 60_000);
      while (await running()) {
        if (Date.now() > deadline) {
          throw ApplicationFailure.create({
            type: 'UserStillRunning',
            nonRetryable: true,
            message: `user ${input.userId}: workflow ${workflowId} did not stop within ${Math.round((input.maxWaitMs ?? 600_000) / 1000)}s of its cancellation, so its source deletion may still run; nothing was rolled back for this user. Check that a worker runs, then run \`clover rollback\` again`,
          });
        }
        beat();
        await sleep(500, undefined, { signal });
      }
      return { wasRunning: true };
    });
  }
  return { fenceUser };
}
