import { condition, continueAsNew, proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { CloverActivities } from '../activities';
import { userPrefixFor } from '../domain/layout';
import { routeUser } from '../domain/routing';
import { ACTIVITY_RETRY, SA, cutReason, rootMessage, type RollbackCounters, type RollbackInput, type RollbackResult, type RollbackState } from './definitions';

const { readUsersPage } = proxyActivities<CloverActivities>({ startToCloseTimeout: '5m', retry: ACTIVITY_RETRY });
const { rollbackUser, fenceUser } = proxyActivities<CloverActivities>({ startToCloseTimeout: '7d', heartbeatTimeout: '20s', retry: ACTIVITY_RETRY });

const MAX_HISTORY = 4000;
const MAX_PROBLEMS = 100;
const MAX_ERASED = 20;

/**
 * Rolls a migration back, user by user (rollbackUser: restore deleted sources, remove EU copies that
 * still match, remove partial copies, abort uploads, mark the manifest). Runs `concurrency.users` users
 * at once, pages the user list like the migration, continues-as-new; idempotent and resumable.
 */
export async function rollbackWorkflow(input: RollbackInput): Promise<RollbackResult> {
  const { settings } = input;
  const state: RollbackState = input.state ?? {
    startedAt: new Date().toISOString(), usersOffset: 0, usersExhausted: false, userIndex: 0,
    counters: { users: 0, restored: 0, targetDeleted: 0, partialDeleted: 0, kept: 0, uploadsAborted: 0, erased: 0 }, problems: [], erased: [],
  };
  upsertSearchAttributes([{ key: SA.migrationId, value: settings.migrationId }, { key: SA.phase, value: 'rollback' }]);

  const nextPage = async (): Promise<{ userId: string; country?: string }[]> => {
    if (input.userIds) {
      const page = input.userIds.slice(state.userIndex, state.userIndex + 100);
      state.userIndex += page.length;
      state.usersExhausted = state.userIndex >= input.userIds.length;
      return page.map((userId) => ({ userId }));
    }
    const page = await readUsersPage({ migrationId: settings.migrationId, usersSite: input.usersSite, usersEtag: input.usersEtag, offset: state.usersOffset, limit: 100 });
    state.usersOffset = page.nextOffset;
    state.usersExhausted = page.done;
    return page.users;
  };
  // A user given by id alone: its target is found from the stored list's routing, so look it up by country when known.
  const targetsFor = (u: { userId: string; country?: string }) =>
    u.country ? [routeUser(settings.routing, { userId: u.userId, country: u.country })] : [...new Set([settings.routing.default, ...Object.values(settings.routing.byCountry)])];

  let running = 0;
  const add = (c: Partial<RollbackCounters>) => {
    for (const k of Object.keys(state.counters) as (keyof RollbackCounters)[]) state.counters[k] += c[k] ?? 0;
  };
  while (!state.usersExhausted) {
    const page = await nextPage();
    for (const u of page) {
      await condition(() => running < settings.concurrency.users);
      running++;
      void (async () => {
        try {
          // One writer per user: the user's own workflow (a source deletion, say) is stopped and closed first.
          await fenceUser({ migrationId: settings.migrationId, userId: u.userId, targetSites: targetsFor(u) });
          for (const targetSite of targetsFor(u)) {
            const r = await rollbackUser({
              migrationId: settings.migrationId, userId: u.userId, targetSite,
              prefix: userPrefixFor(settings.userPrefix, u.userId), objectsPerUser: settings.concurrency.objectsPerUser, sources: settings.sources,
              ledgerSite: settings.routing.default, evidenceRetention: settings.evidenceRetention,
            });
            add({ restored: r.restored, targetDeleted: r.targetDeleted, partialDeleted: r.partialDeleted, kept: r.kept, uploadsAborted: r.uploadsAborted, erased: r.erased });
            for (const x of r.erasedKeys ?? []) if ((state.erased ??= []).length < MAX_ERASED) state.erased.push({ userId: u.userId, ...x });
            for (const p of r.problems) if (state.problems.length < MAX_PROBLEMS) state.problems.push({ userId: u.userId, key: p.key, problem: p.problem });
          }
          add({ users: 1 });
        } catch (err) {
          if (state.problems.length < MAX_PROBLEMS) state.problems.push({ userId: u.userId, problem: cutReason(rootMessage(err)) });
        } finally {
          running--;
        }
      })();
    }
    if (workflowInfo().historyLength > (input.historyLimit ?? MAX_HISTORY) || workflowInfo().continueAsNewSuggested) {
      await condition(() => running === 0);
      if (!state.usersExhausted) await continueAsNew<typeof rollbackWorkflow>({ ...input, state });
    }
  }
  await condition(() => running === 0);
  upsertSearchAttributes([{ key: SA.phase, value: 'rolled-back' }]);
  return {
    migrationId: settings.migrationId,
    phase: state.problems.length === 0 ? 'rolled-back' : 'rolled-back-with-problems',
    counters: state.counters,
    problems: state.problems,
    erased: state.erased ?? [],
  };
}
