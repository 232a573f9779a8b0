import {
  ParentClosePolicy, WorkflowIdReusePolicy, allHandlersFinished, condition, continueAsNew, proxyActivities,
  setHandler, startChild, upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { CloverActivities } from '../activities';
import { routeUser } from '../domain/routing';
import {
  MAX_FAILED_LISTED, PERMANENT_FAILURES, SA, addCounters, migrationWorkflowId, statusQuery, userFinishedSignal, userWorkflowId, zeroCounters,
  type MigrationInput, type MigrationResult, type MigrationState, type MigrationStatus,
} from './definitions';
import { userMigrationWorkflow } from './user-migration';

const { readUsersPage } = proxyActivities<CloverActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m', nonRetryableErrorTypes: [...PERMANENT_FAILURES] },
});

const USERS_PAGE = 100;
/** Continue-as-new well before Temporal's suggestion, so no run nears 10,000 events. */
const MAX_HISTORY = 4000;

/**
 * One migration: pages through the stored user list, routes each user, and keeps at most
 * `concurrency.users` userMigrationWorkflow children running (a sliding window; children signal back).
 * State is ids and counters only, carried across continue-as-new, so a migration can hold a million users.
 */
export async function migrationWorkflow(input: MigrationInput): Promise<MigrationResult> {
  const { settings } = input;
  const state: MigrationState = input.state ?? {
    startedAt: new Date().toISOString(), runs: 0, usersOffset: 0, usersExhausted: false, pending: [], inFlight: [],
    usersDone: 0, usersFailed: 0, usersAlreadyDone: 0, failed: [], counters: zeroCounters(),
  };
  state.runs++;
  const inFlight = new Set(state.inFlight);
  const self = migrationWorkflowId(settings.migrationId);

  const status = (phase: MigrationStatus['phase'], finishedAt?: string): MigrationStatus => ({
    migrationId: settings.migrationId, phase, startedAt: state.startedAt, finishedAt, usersTotal: input.usersTotal,
    usersDone: state.usersDone, usersFailed: state.usersFailed, usersAlreadyDone: state.usersAlreadyDone,
    usersInFlight: inFlight.size, inFlight: [...inFlight].slice(0, 50), failed: state.failed, counters: state.counters, runs: state.runs,
  });
  let phase: MigrationStatus['phase'] = 'running';
  let finishedAt: string | undefined = undefined; // set once the last user reports
  setHandler(statusQuery, () => status(phase, finishedAt));
  setHandler(userFinishedSignal, (o) => {
    if (!inFlight.delete(o.userId)) return; // a duplicate report
    state.counters = addCounters(state.counters, o.counters);
    if (o.ok) state.usersDone++;
    else {
      state.usersFailed++;
      if (state.failed.length < MAX_FAILED_LISTED) state.failed.push({ userId: o.userId, reason: o.reason ?? 'unknown' });
    }
  });
  upsertSearchAttributes([{ key: SA.migrationId, value: settings.migrationId }, { key: SA.phase, value: 'running' }]);

  const historyLarge = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? MAX_HISTORY);

  for (;;) {
    while (inFlight.size < settings.concurrency.users && !historyLarge()) {
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
    }
    if (state.usersExhausted && state.pending.length === 0 && inFlight.size === 0) break;
    if (historyLarge()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof migrationWorkflow>({ ...input, state: { ...state, inFlight: [...inFlight] } });
    }
    // Wake for room in the window while users remain, for the last report once the list is exhausted,
    // or for continue-as-new. (A condition already true here would spin the loop without yielding.)
    const listDone = () => state.usersExhausted && state.pending.length === 0;
    await condition(() => (listDone() ? inFlight.size === 0 : inFlight.size < settings.concurrency.users) || historyLarge());
  }
  phase = state.usersFailed > 0 ? 'completed-with-failures' : 'completed';
  finishedAt = new Date().toISOString();
  upsertSearchAttributes([{ key: SA.phase, value: phase }]);
  await condition(allHandlersFinished);
  return status(phase, finishedAt);
}
