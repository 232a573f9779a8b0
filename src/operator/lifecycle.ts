import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { InputError } from '../config/errors';
import {
  SA, cutoverSignal, pauseUpdate, resumeUpdate, rollbackWorkflowId, userPauseSignal, userWorkflowId,
  type MigrationStatus, type RollbackInput,
} from '../workflows/definitions';
import type { rollbackWorkflow } from '../workflows/rollback';
import { NoWorkerError, migrationInput, type MigrationHandle } from './migrations';

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
 * finish in time and the migration still runs, no worker answered: a NoWorkerError says so (with `note`,
 * what becomes of the request meanwhile). Anything else is rethrown.
 */
async function answeredByWorker<T>(client: Client, migrationId: string, handle: MigrationHandle, what: string, note: string, call: () => Promise<T>): Promise<T> {
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

/** Ends the grace period now (one user, or every user waiting) and approves deletions above maxDeletes. */
export async function cutover(client: Client, migrationId: string, userId?: string): Promise<number> {
  await migrationInput(client, migrationId);
  const ids = userId ? [userWorkflowId(migrationId, userId)] : await runningUsers(client, migrationId, ['grace', 'awaiting-operator']);
  if (userId) {
    const id = userWorkflowId(migrationId, userId);
    const d = await client.workflow.getHandle(id).describe().catch(() => undefined);
    if (!d || d.status.name !== 'RUNNING') throw new InputError(`user ${userId} of migration ${migrationId} is not waiting for a cutover (no running workflow ${id})`);
  }
  for (const id of ids) await client.workflow.getHandle(id).signal(cutoverSignal);
  return ids.length;
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

