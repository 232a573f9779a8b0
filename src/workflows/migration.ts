import {
  CancellationScope, ParentClosePolicy, WorkflowIdReusePolicy, allHandlersFinished, condition, continueAsNew,
  getExternalWorkflowHandle, isCancellation, proxyActivities, setHandler, startChild, upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { CloverActivities } from '../activities';
import { routeUser } from '../domain/routing';
import {
  ACTIVITY_RETRY, MAX_FAILED_LISTED, SA, addCounters, migrationWorkflowId, pauseUpdate, resumeUpdate, statusQuery,
  userDisposedSignal, userFinishedSignal, userPauseSignal, userWorkflowId, zeroCounters,
  type MigrationInput, type MigrationResult, type MigrationState, type MigrationStatus,
} from './definitions';
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
  const state: MigrationState = input.state ?? {
    startedAt: new Date().toISOString(), runs: 0, usersOffset: 0, usersExhausted: false, pending: [], inFlight: [],
    usersDone: 0, usersFailed: 0, usersAlreadyDone: 0, usersCancelled: 0, usersAwaitingDisposal: 0, failed: [],
    counters: zeroCounters(), paused: false, cancelled: false,
  };
  state.runs++;
  const inFlight = new Set(state.inFlight);
  /** Children whose start has completed (only those can be signalled). */
  const started = new Set(state.inFlight);
  const self = migrationWorkflowId(settings.migrationId);

  let finalPhase: MigrationStatus['phase'] | undefined;
  let finishedAt: string | undefined = undefined; // set once the last user reports
  const status = (): MigrationStatus => ({
    migrationId: settings.migrationId,
    phase: finalPhase ?? (state.paused ? 'paused' : 'running'),
    startedAt: state.startedAt, finishedAt, usersTotal: input.usersTotal,
    usersDone: state.usersDone, usersFailed: state.usersFailed, usersAlreadyDone: state.usersAlreadyDone,
    usersCancelled: state.usersCancelled, usersAwaitingDisposal: state.usersAwaitingDisposal, pausedAt: state.pausedAt,
    usersInFlight: inFlight.size, inFlight: [...inFlight].slice(0, 50), failed: state.failed, counters: state.counters, runs: state.runs,
  });
  const tellChildren = async (paused: boolean) => {
    await Promise.all([...started].filter((id) => inFlight.has(id)).map((id) =>
      getExternalWorkflowHandle(userWorkflowId(settings.migrationId, id)).signal(userPauseSignal, paused).catch(() => undefined)));
  };

  setHandler(statusQuery, status);
  setHandler(userFinishedSignal, (o) => {
    if (!inFlight.delete(o.userId)) return; // a duplicate report
    started.delete(o.userId);
    state.counters = addCounters(state.counters, o.counters);
    if (o.ok) {
      state.usersDone++;
      if (o.awaitingDisposal) state.usersAwaitingDisposal++;
    } else if (o.cancelled) state.usersCancelled++;
    else {
      state.usersFailed++;
      if (state.failed.length < MAX_FAILED_LISTED) state.failed.push({ userId: o.userId, reason: o.reason ?? 'unknown' });
    }
  });
  setHandler(userDisposedSignal, (d) => {
    state.usersAwaitingDisposal = Math.max(0, state.usersAwaitingDisposal - 1);
    state.counters = addCounters(state.counters, { sourceDeleted: d.deleted, sourceKeptChanged: d.keptChanged });
    if (d.error && state.failed.length < MAX_FAILED_LISTED) state.failed.push({ userId: d.userId, reason: `source deletion: ${d.error}` });
  });
  setHandler(pauseUpdate, async () => {
    state.paused = true;
    state.pausedAt = new Date().toISOString();
    await tellChildren(true);
    return status();
  }, {
    validator: () => {
      if (state.cancelled || finalPhase) throw new Error(`migration ${settings.migrationId} is not running`);
      if (state.paused) throw new Error(`migration ${settings.migrationId} is already paused (since ${state.pausedAt})`);
    },
  });
  setHandler(resumeUpdate, async () => {
    state.paused = false;
    state.pausedAt = undefined;
    await tellChildren(false);
    return status();
  }, {
    validator: () => {
      if (!state.paused) throw new Error(`migration ${settings.migrationId} is not paused`);
    },
  });
  upsertSearchAttributes([{ key: SA.migrationId, value: settings.migrationId }, { key: SA.phase, value: 'running' }]);

  const historyLarge = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? MAX_HISTORY);
  const listDone = () => state.usersExhausted && state.pending.length === 0;
  const allDone = () => listDone() && inFlight.size === 0 && state.usersAwaitingDisposal === 0;

  try {
    for (;;) {
      while (!state.paused && inFlight.size < settings.concurrency.users && !historyLarge()) {
        if (state.pending.length === 0) {
          if (state.usersExhausted) break;
          const page = await readUsersPage({
            migrationId: settings.migrationId, usersSite: input.usersSite, offset: state.usersOffset, limit: USERS_PAGE,
            checkCommitted: input.mode === 'retry' ? settings.routing : undefined,
          });
          state.pending = page.users;
          state.usersOffset = page.nextOffset;
          state.usersExhausted = page.done;
          continue;
        }
        const row = state.pending.shift()!;
        if (row.committed) {
          state.usersAlreadyDone++;
          continue;
        }
        const targetSite = routeUser(settings.routing, row);
        // Counted in flight before the start: its report may arrive in the same activation.
        inFlight.add(row.userId);
        try {
          await startChild(userMigrationWorkflow, {
            workflowId: userWorkflowId(settings.migrationId, row.userId),
            args: [{ settings, parentWorkflowId: self, userId: row.userId, country: row.country, targetSite }],
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
        if (state.paused) await tellChildren(true);
      }
      if (allDone()) break;
      if (historyLarge()) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof migrationWorkflow>({ ...input, state: { ...state, inFlight: [...inFlight] } });
      }
      // Wake for room in the window while users remain, for the last report once the list is exhausted,
      // for resume, or for continue-as-new. (A condition already true here would spin without yielding.)
      const pausedNow = state.paused;
      await condition(() =>
        state.paused !== pausedNow || historyLarge() ||
        (listDone() || state.paused ? allDone() : inFlight.size < settings.concurrency.users));
    }
    finalPhase = state.usersFailed > 0 ? 'completed-with-failures' : 'completed';
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled: stop every running user cleanly (they abort their uploads) and record who finished.
    await CancellationScope.nonCancellable(async () => {
      state.cancelled = true;
      await Promise.all([...started].filter((id) => inFlight.has(id)).map((id) =>
        getExternalWorkflowHandle(userWorkflowId(settings.migrationId, id)).cancel().catch(() => undefined)));
      await condition(() => inFlight.size === 0, '5m');
    });
    finalPhase = 'cancelled';
  }
  finishedAt = new Date().toISOString();
  upsertSearchAttributes([{ key: SA.phase, value: finalPhase }]);
  // Non-cancellable: after a cancel, the root scope would reject any wait.
  await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  return status();
}
