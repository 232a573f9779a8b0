import {
  CancellationScope, ParentClosePolicy, WorkflowIdReusePolicy, allHandlersFinished, condition, continueAsNew,
  getExternalWorkflowHandle, isCancellation, patched, proxyActivities, startChild, upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { CloverActivities } from '../activities';
import { routeUser } from '../domain/routing';
import { ACTIVITY_RETRY, SA, migrationWorkflowId, userWorkflowId, type MigrationInput, type MigrationResult } from './definitions';
import { MigrationRun } from './migration-handlers';
import { userMigrationWorkflow } from './user-migration';

const { readUsersPage } = proxyActivities<CloverActivities>({
  startToCloseTimeout: '5m',
  retry: ACTIVITY_RETRY,
});

const USERS_PAGE = 100;
/** Continue-as-new well before Temporal's suggestion, so no run nears 10,000 events. */
const MAX_HISTORY = 4000;

/**
 * One migration: pages through the stored user list, routes each user, and keeps at most
 * `concurrency.users` userMigrationWorkflow children running (a sliding window; children signal back).
 * State is ids and counters only, carried across continue-as-new, so a migration can hold a million users.
 * Pause/resume are updates (rejected in the wrong state); cancel is Temporal's workflow cancellation.
 */
export async function migrationWorkflow(input: MigrationInput): Promise<MigrationResult> {
  const { settings } = input;
  const run = new MigrationRun(input);
  const { state, inFlight, started } = run;
  const self = migrationWorkflowId(settings.migrationId);
  run.installHandlers();
  upsertSearchAttributes([{ key: SA.migrationId, value: settings.migrationId }, { key: SA.phase, value: 'running' }]);

  const historyLarge = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? MAX_HISTORY);
  const listDone = () => state.usersExhausted && state.pending.length === 0;
  const allDone = () => listDone() && inFlight.size === 0 && state.usersAwaitingDisposal === 0;

  /**
   * Starts in flight (see `launchUser`). A start settles when the server has created the child, a full
   * workflow-task round trip; awaiting each in turn held the window to one new user per round trip (about
   * 10 users/s however wide the window).
   */
  const starting = new Set<Promise<void>>();
  let startFailure: unknown;
  // patched: a history from before overlapping starts replays with each start awaited in turn.
  const overlapStarts = patched('overlapping-user-starts');

  /** Starts one user's child workflow (or finds it running from an earlier run of this migration). */
  const startUser = async (row: { userId: string; country: string }) => {
    const targetSite = routeUser(settings.routing, row);
    // Counted in flight before the start: its report may arrive in the same activation.
    inFlight.add(row.userId);
    try {
      await startChild(userMigrationWorkflow, {
        workflowId: userWorkflowId(settings.migrationId, row.userId),
        args: [{ settings, parentWorkflowId: self, userId: row.userId, country: row.country, targetSite, historyLimit: input.historyLimit, firstPassOneActivity: true, firstPassLocal: true }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        typedSearchAttributes: [
          { key: SA.migrationId, value: settings.migrationId },
          { key: SA.userId, value: row.userId },
          { key: SA.targetSite, value: targetSite },
          { key: SA.phase, value: 'copy' },
        ],
      });
    } catch (err) {
      // Already running (started by an earlier run of this migration): it will report here too.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    if (inFlight.has(row.userId)) started.add(row.userId);
    // Paused while this child was starting: it missed the signal.
    if (state.paused) await run.tellChildren(true);
  };

  /**
   * Starts a user without waiting for the start to complete, so a window's free slots fill in one workflow
   * task. Non-cancellable: a cancel of the migration waits for the starts in flight, then cancels those
   * children with the rest. An unexpected failure fails the migration from its main loop.
   */
  const launchUser = (row: { userId: string; country: string }) => {
    const p: Promise<void> = CancellationScope.nonCancellable(() => startUser(row))
      .catch((err: unknown) => { startFailure ??= err; })
      .finally(() => starting.delete(p));
    starting.add(p);
  };
  // Only the main loop launches, so nothing joins the set while it is awaited here.
  const startsSettled = () => Promise.all(starting);

  try {
    for (;;) {
      // Checked before the window fills again: no more users start after one start failed.
      if (startFailure !== undefined) throw startFailure;
      while (!state.paused && inFlight.size < settings.concurrency.users && !historyLarge()) {
        const row = state.pending.shift();
        if (row === undefined) {
          if (state.usersExhausted) break;
          const page = await readUsersPage({
            migrationId: settings.migrationId, usersSite: input.usersSite, usersEtag: input.usersEtag, offset: state.usersOffset, limit: USERS_PAGE,
            checkCommitted: input.mode === 'retry' ? settings.routing : undefined,
          });
          state.pending = page.users;
          state.usersOffset = page.nextOffset;
          state.usersExhausted = page.done;
        } else if (row.committed) state.usersAlreadyDone++;
        else if (overlapStarts) launchUser(row);
        else await startUser(row);
      }
      if (allDone()) break;
      if (historyLarge()) {
        await startsSettled();
        await condition(allHandlersFinished);
        await continueAsNew<typeof migrationWorkflow>({ ...input, state: run.carried() });
      }
      // Wake for room in the window while users remain, for the last report once the list is exhausted,
      // for resume, or for continue-as-new. (A condition already true here would spin without yielding.)
      const pausedNow = state.paused;
      await condition(() =>
        state.paused !== pausedNow || historyLarge() || startFailure !== undefined ||
        (listDone() || state.paused ? allDone() : inFlight.size < settings.concurrency.users));
    }
    await startsSettled();
    run.finalPhase = state.usersFailed > 0 ? 'completed-with-failures' : 'completed';
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled: stop every running user cleanly (they abort their uploads) and record who finished.
    await CancellationScope.nonCancellable(async () => {
      state.cancelled = true;
      await startsSettled();
      await Promise.all(run.runningChildren().map((id) =>
        getExternalWorkflowHandle(userWorkflowId(settings.migrationId, id)).cancel().catch(() => undefined)));
      await condition(() => inFlight.size === 0, '5m');
    });
    run.finalPhase = 'cancelled';
  }
  run.finishedAt = new Date().toISOString();
  upsertSearchAttributes([{ key: SA.phase, value: run.finalPhase }]);
  // Non-cancellable: after a cancel, the root scope would reject any wait.
  await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  return run.status();
}
