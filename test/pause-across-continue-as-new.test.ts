import { Context } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import type { CopyUserResult } from '../src/activities/copy';
import { userPauseSignal, userWorkflowId, type UserMigrationInput } from '../src/workflows/definitions';
import { at, uniqueId } from './helpers';
import { ownDevServer } from './support/test-env';
import { waitUntil } from './support/wait';

/**
 * A user continues as new without failing (continue-as-new is thrown as an error the workflow must let
 * through), and a pause that reaches it in the very workflow task in which it continues as new is
 * carried into the new run: the new run holds until resume. The copy activity here is a stand-in that pauses its
 * own workflow before it returns, and the user continues as new after every call (history limit 1).
 */
describe('a pause survives continue-as-new', () => {
  const devServer = ownDevServer();

  it('the run after continue-as-new starts paused and copies nothing until resume', async () => {
    const migrationId = uniqueId('pause-can');
    const userId = `${migrationId}-u`;
    const calls: { runId: string }[] = [];
    const copyUserObjects = async (): Promise<CopyUserResult> => {
      const run = Context.current().info.workflowExecution;
      calls.push({ runId: run?.runId ?? '' });
      if (calls.length === 2) {
        // The pause is in the workflow's history before this call's completion is.
        await Context.current().client.workflow.getHandle(run?.workflowId ?? '').signal(userPauseSignal, true);
      }
      const page = calls.length;
      return { done: false, page, cursor: `k-${page}`, objects: 0, bytes: 0, conflicts: 0, transferred: { objects: 0, bytes: 0 }, blocked: [], blockedCount: 0 };
    };
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({
      connection: devServer().nativeConnection, taskQueue, workflowBundle: { codePath: process.env.CLOVER_WORKFLOW_BUNDLE! },
      // The first pass's first call (one activity for a small user) copies as the stand-in does, not done.
      activities: { copyUserObjects, firstPassSmallUser: async () => ({ copy: await copyUserObjects() }), cleanupUser: async () => ({ uploadsAborted: 0 }) },
    });
    const input: UserMigrationInput = {
      settings: {
        migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie', byCountry: {} }, userPrefix: 'users/{userId}/', verify: 'checksum',
        conflictPolicy: 'newest-wins', concurrency: { users: 1, objectsPerUser: 1 }, sourceDisposition: 'keep', gracePeriod: '7d',
      },
      parentWorkflowId: `migration-${migrationId}`, userId, country: 'DE', targetSite: 'eu-ie', historyLimit: 1, firstPassOneActivity: true,
    };
    const workflowId = userWorkflowId(migrationId, userId);
    await worker.runUntil(async () => {
      const handle = await devServer().client.workflow.start('userMigrationWorkflow', { taskQueue, workflowId, args: [input] });
      await waitUntil('the copy has been called twice', () => calls.length, (n) => n >= 2);
      const pausedRun = at(calls, 1).runId;
      // The run that made the second call continued as new (history limit 1): a new run exists...
      await waitUntil('the user continued as new after the call that paused it', async () => (await handle.describe()).runId, (r) => r !== pausedRun);
      // ...and it holds: no copy call while paused.
      await new Promise((ok) => setTimeout(ok, 2000)); // nothing may happen: a quiet window is the only way to see it
      expect(calls).toHaveLength(2);
      await handle.signal(userPauseSignal, false);
      await waitUntil('the copy goes on after resume', () => calls.length, (n) => n >= 3);
      await handle.terminate('test over');
    });
  });
});
