import { setTimeout as sleep } from 'node:timers/promises';
import {
  WorkflowFailedError, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateStage,
  type Client, type WorkflowHandle,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { InputError } from '../config/errors';
import {
  SA, cutoverSignal, pauseUpdate, resumeUpdate, rollbackWorkflowId, syncUpdate, userPauseSignal, userWorkflowId,
  type MigrationStatus, type RollbackInput, type UserMigrationInput, type UserOutcome,
} from '../workflows/definitions';
import type { rollbackWorkflow } from '../workflows/rollback';
import { NoWorkerError, migrationInput } from './migrations';
import type { UserCutoverResult, UserSyncResult } from './pass-results';

/** Running user workflows of a migration (from visibility), optionally in the given phases. */
async function runningUsers(client: Client, migrationId: string, phases?: string[]): Promise<string[]> {
  let q = `${SA.migrationId.name} = "${migrationId}" AND ExecutionStatus = "Running" AND WorkflowType = "userMigrationWorkflow"`;
  if (phases) q += ` AND ${SA.phase.name} IN (${phases.map((p) => `"${p}"`).join(', ')})`;
  const ids: string[] = [];
  for await (const w of client.workflow.list({ query: q })) ids.push(w.workflowId);
  return ids;
}

async function requireRunning(client: Client, migrationId: string, what: string) {
  const m = await migrationInput(client, migrationId);
  if (m.status !== 'RUNNING') throw new InputError(`migration ${migrationId} is ${m.status.toLowerCase()}; only a running migration can be ${what}`);
  return m;
}

/** How long pause, resume and cancel wait for a worker to answer before saying that none did (exit 3). */
export const WORKER_ANSWER_TIMEOUT_MS = 15_000;

/**
 * Runs `call` (which only a worker can complete) within WORKER_ANSWER_TIMEOUT_MS. When it does not
 * finish in time and the workflow (the migration, or a user) still runs, no worker answered: a NoWorkerError says so (with `note`,
 * what becomes of the request meanwhile). Anything else is rethrown.
 */
async function answeredByWorker<T>(client: Client, migrationId: string, handle: WorkflowHandle, what: string, note: string, call: () => Promise<T>): Promise<T> {
  try {
    return await client.withDeadline(Date.now() + WORKER_ANSWER_TIMEOUT_MS, call);
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw err;
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') throw err;
    // The SDK's error here only says the call was cut short by the deadline: nothing to add.
    throw new NoWorkerError(migrationId, d.taskQueue, undefined, { what, timeoutMs: WORKER_ANSWER_TIMEOUT_MS, note });
  }
}

async function update(client: Client, migrationId: string, def: typeof pauseUpdate): Promise<MigrationStatus> {
  const what = def === pauseUpdate ? 'pause' : 'resume';
  const { handle } = await requireRunning(client, migrationId, def === pauseUpdate ? 'paused' : 'resumed');
  try {
    return await answeredByWorker(client, migrationId, handle, `the ${what} request`,
      `the server may still hand the ${what} to the next worker that starts (check with \`clover status ${migrationId}\`)`,
      () => handle.executeUpdate(def));
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new InputError((err.cause as Error)?.message ?? err.message);
    throw err;
  }
}

/**
 * Pause: the migration starts no new user, and every running user's activity stops at its next
 * checkpoint and holds (users in their grace period hold too). Resume undoes it.
 */
export async function pauseMigration(client: Client, migrationId: string, paused: boolean): Promise<MigrationStatus> {
  const status = await update(client, migrationId, paused ? pauseUpdate : resumeUpdate);
  // Users past their copy (grace period, deletion) are not in the migration's window: tell them directly.
  for (const id of await runningUsers(client, migrationId)) {
    await client.workflow.getHandle(id).signal(userPauseSignal, paused).catch(() => undefined);
  }
  return status;
}

/**
 * Cancels the migration and every running user (copies stop at a checkpoint, uploads are aborted), and
 * waits for the migration's report; a NoWorkerError when no worker gives it within WORKER_ANSWER_TIMEOUT_MS
 * (the cancellation request itself is recorded by the server and takes effect when a worker runs).
 */
export async function cancelMigration(client: Client, migrationId: string): Promise<MigrationStatus> {
  const { handle } = await requireRunning(client, migrationId, 'cancelled');
  await handle.cancel();
  for (const id of await runningUsers(client, migrationId)) await client.workflow.getHandle(id).cancel().catch(() => undefined);
  const result = await answeredByWorker(client, migrationId, handle, 'the cancellation',
    'the cancellation is recorded and the migration stops when a worker runs', () => handle.result());
  await waitForNoRunningUsers(client, migrationId);
  return result;
}

async function waitForNoRunningUsers(client: Client, migrationId: string): Promise<void> {
  for (let i = 0; i < 240; i++) {
    const left = await runningUsers(client, migrationId);
    if (left.length === 0) return;
    for (const id of left) await client.workflow.getHandle(id).cancel().catch(() => undefined);
    await sleep(500);
  }
}

/**
 * Starts (or attaches to) `rollback-<migrationId>`, after cancelling the migration if it still runs.
 * With `userIds`, only those users are rolled back. Each user's own workflow is stopped by the
 * rollback itself (fenceUser), found by its id, before anything of that user is touched.
 */
export async function startRollback(client: Client, migrationId: string, userIds?: string[]) {
  const m = await migrationInput(client, migrationId);
  if (m.status === 'RUNNING') {
    await m.handle.cancel();
    // A worker must carry the cancellation out; without one, say so (exit 3) instead of waiting forever.
    await answeredByWorker(client, migrationId, m.handle, "the cancellation (a rollback's first step)",
      'the cancellation is recorded; run the rollback again once a worker runs', () => m.handle.result().catch((err: unknown) => {
        if (err instanceof WorkflowFailedError) return undefined; // cancelled (or failed): over either way
        throw err;
      }));
  }
  const input: RollbackInput = { settings: m.input.settings, usersSite: m.input.usersSite, usersEtag: m.input.usersEtag, userIds };
  return client.workflow.start<typeof rollbackWorkflow>('rollbackWorkflow', {
    workflowId: rollbackWorkflowId(migrationId),
    taskQueue: m.taskQueue,
    args: [input],
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    typedSearchAttributes: [{ key: SA.migrationId, value: migrationId }, { key: SA.phase, value: 'rollback' }],
  });
}


/** Phases in which a user waits for its cut-over (a cutover signal ends the wait). */
const WAITING_PHASES = ['grace', 'awaiting-operator', 'in-sync'];

interface UserRef {
  userId: string;
  workflowId: string;
}

/**
 * The named users, or every user workflow of the migration visibility knows (any status: one entry per
 * workflow id, however many runs it had).
 */
async function migrationUsers(client: Client, migrationId: string, userIds?: string[]): Promise<UserRef[]> {
  if (userIds?.length) return [...new Set(userIds)].map((userId) => ({ userId, workflowId: userWorkflowId(migrationId, userId) }));
  const prefix = userWorkflowId(migrationId, '');
  const seen = new Set<string>();
  const q = `${SA.migrationId.name} = "${migrationId}" AND WorkflowType = "userMigrationWorkflow"`;
  for await (const w of client.workflow.list({ query: q })) if (w.workflowId.startsWith(prefix)) seen.add(w.workflowId);
  return [...seen].sort().map((workflowId) => ({ userId: workflowId.slice(prefix.length), workflowId }));
}

interface UserRun {
  handle: WorkflowHandle;
  status: string;
  taskQueue: string;
  /** A finished run's outcome (undefined while it runs, or when it did not complete normally). */
  outcome?: UserOutcome;
}

/** The newest run of a user's workflow, or undefined when it has none. */
async function userRun(client: Client, ref: UserRef): Promise<UserRun | undefined> {
  const handle = client.workflow.getHandle(ref.workflowId);
  let d;
  try {
    d = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  const status = d.status.name;
  const outcome = status === 'COMPLETED' ? await (client.workflow.getHandle(ref.workflowId, d.runId).result() as Promise<UserOutcome>) : undefined;
  return { handle, status, taskQueue: d.taskQueue, outcome };
}

/** A finished user whose cut-over is done, or who never committed a manifest: why no pass can run; else undefined. */
function noPassReason(o: UserOutcome | undefined): string | undefined {
  if (o?.sourceDeleted !== undefined) return `already cut over (${o.sourceDeleted} source object(s) deleted${o.residueCount !== undefined ? `; residue ${o.residueCount}` : ''}): no pass can run any more`;
  if (o && !o.manifestKey && !o.lastPass) {
    return `no committed manifest: its workflow ended ${o.cancelled ? 'cancelled' : `failed (${o.reason ?? 'unknown'})`} before its first pass committed; \`clover retry\` migrates it`;
  }
  return undefined;
}

/**
 * Starts a one-off run (sync-once, cutover-once) of a finished user's workflow: same workflow id, the
 * input of its newest run. Waits (bounded) until a worker has picked it up: NoWorkerError otherwise.
 */
async function startOneOff(client: Client, migrationId: string, ref: UserRef, run: UserRun, mode: 'sync-once' | 'cutover-once'): Promise<WorkflowHandle> {
  const history = await run.handle.fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`workflow ${ref.workflowId} has no recorded input in its first history event`);
  const prev = defaultPayloadConverter.fromPayload<UserMigrationInput>(payload);
  const input: UserMigrationInput = { ...prev, mode };
  const handle = await client.workflow.start('userMigrationWorkflow', {
    workflowId: ref.workflowId,
    taskQueue: run.taskQueue,
    args: [input],
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    typedSearchAttributes: [
      { key: SA.migrationId, value: migrationId }, { key: SA.userId, value: ref.userId },
      { key: SA.targetSite, value: prev.targetSite }, { key: SA.phase, value: 'copy' },
    ],
  });
  // Its first workflow task started (event 3) once a worker holds it.
  const deadline = Date.now() + WORKER_ANSWER_TIMEOUT_MS;
  for (;;) {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING' || d.historyLength >= 3) return handle;
    if (Date.now() >= deadline) {
      throw new NoWorkerError(migrationId, run.taskQueue, undefined, {
        what: `the ${mode} run of user ${ref.userId}`, timeoutMs: WORKER_ANSWER_TIMEOUT_MS, note: 'the run is started and goes on when a worker runs',
      });
    }
    await sleep(250);
  }
}

const updateMessage = (err: WorkflowUpdateFailedError) => (err.cause as Error | undefined)?.message ?? err.message;

/**
 * `clover sync`: a delta pass for each user (the named ones, else every user of the migration). A
 * running user gets the sync update (a worker must accept it within WORKER_ANSWER_TIMEOUT_MS, else
 * NoWorkerError); a finished one a sync-once run of its workflow. With `wait`, each result is the
 * pass's report. Users that cannot have a pass (no manifest, cut over) get a result saying why.
 */
export async function syncUsers(client: Client, migrationId: string, userIds: string[] | undefined, wait: boolean): Promise<UserSyncResult[]> {
  await migrationInput(client, migrationId);
  const refused = (userId: string, reason: string): UserSyncResult => ({ userId, kind: 'refused', reason });
  const waits: (() => Promise<UserSyncResult>)[] = [];
  for (const ref of await migrationUsers(client, migrationId, userIds)) {
    const { userId } = ref;
    const run = await userRun(client, ref);
    if (!run) {
      waits.push(async () => refused(userId, `no workflow ${ref.workflowId}: the user has not started in migration ${migrationId} (or is not in it)`));
      continue;
    }
    if (run.status === 'RUNNING') {
      let upd;
      try {
        upd = await answeredByWorker(client, migrationId, run.handle, `the sync request of user ${userId}`,
          'nothing was requested; run `clover sync` again once a worker runs',
          () => run.handle.startUpdate(syncUpdate, { waitForStage: WorkflowUpdateStage.ACCEPTED }));
      } catch (err) {
        if (!(err instanceof WorkflowUpdateFailedError)) throw err;
        const reason = updateMessage(err);
        waits.push(async () => refused(userId, reason));
        continue;
      }
      const accepted = upd;
      waits.push(wait
        ? async () => {
          try {
            return { userId, kind: 'pass', report: await accepted.result() };
          } catch (err) {
            if (err instanceof WorkflowUpdateFailedError) return refused(userId, updateMessage(err));
            throw err;
          }
        }
        : async () => ({ userId, kind: 'requested', how: 'update' }));
      continue;
    }
    const why = noPassReason(run.outcome);
    if (why) {
      waits.push(async () => refused(userId, why));
      continue;
    }
    const h = await startOneOff(client, migrationId, ref, run, 'sync-once');
    waits.push(wait
      ? async () => {
        const o = await (h.result() as Promise<UserOutcome>).catch((err: unknown) => ({ ok: false, reason: (err as Error).message } as Partial<UserOutcome>));
        return o.lastPass ? { userId, kind: 'pass', report: o.lastPass } : refused(userId, `the sync-once run ended without a pass: ${o.reason ?? 'unknown'}`);
      }
      : async () => ({ userId, kind: 'requested', how: 'sync-once' }));
  }
  return Promise.all(waits.map((w) => w()));
}

/**
 * `clover cutover`: ends the wait of each user (the named ones, else every running user waiting in
 * grace, awaiting-operator or in-sync). A running user gets the cutover signal; a finished user not yet
 * cut over (delete-after-verify) a cutover-once run. With `wait`, each result is the user's outcome
 * (final pass, deletion, residue).
 */
export async function cutoverUsers(client: Client, migrationId: string, userIds: string[] | undefined, wait: boolean): Promise<UserCutoverResult[]> {
  const m = await migrationInput(client, migrationId);
  const keep = m.input.settings.sourceDisposition === 'keep';
  const refused = (userId: string, reason: string): UserCutoverResult => ({ userId, kind: 'refused', reason });
  const refs = userIds?.length
    ? await migrationUsers(client, migrationId, userIds)
    : (await runningUsers(client, migrationId, WAITING_PHASES)).map((workflowId) => ({ workflowId, userId: workflowId.slice(userWorkflowId(migrationId, '').length) }));
  const outcomeOf = (userId: string, h: WorkflowHandle) => async (): Promise<UserCutoverResult> => {
    try {
      return { userId, kind: 'outcome', outcome: await (h.result() as Promise<UserOutcome>), keep };
    } catch (err) {
      return refused(userId, `its workflow did not complete: ${(err as Error).message}`);
    }
  };
  const waits: (() => Promise<UserCutoverResult>)[] = [];
  for (const ref of refs) {
    const { userId } = ref;
    const run = await userRun(client, ref);
    if (!run) {
      waits.push(async () => refused(userId, `no workflow ${ref.workflowId}: the user has not started in migration ${migrationId} (or is not in it)`));
    } else if (run.status === 'RUNNING') {
      await run.handle.signal(cutoverSignal);
      // The handle without a run id follows the workflow across continue-as-new to its last run.
      waits.push(wait ? outcomeOf(userId, client.workflow.getHandle(ref.workflowId)) : async () => ({ userId, kind: 'requested', how: 'signal' }));
    } else {
      const why = noPassReason(run.outcome) ?? (keep ? 'sourceDisposition is "keep": its sources are never deleted, so there is nothing to cut over' : undefined);
      if (why) {
        waits.push(async () => refused(userId, why));
        continue;
      }
      const h = await startOneOff(client, migrationId, ref, run, 'cutover-once');
      waits.push(wait ? outcomeOf(userId, h) : async () => ({ userId, kind: 'requested', how: 'cutover-once' }));
    }
  }
  return Promise.all(waits.map((w) => w()));
}
