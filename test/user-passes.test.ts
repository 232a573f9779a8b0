import { ApplicationFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import type { CommitManifestInput, CommitManifestResult, ManifestHead } from '../src/activities/commit';
import type { FirstPassInput, FirstPassResult } from '../src/activities/small-user';
import type { CopyUserInput, CopyUserResult } from '../src/activities/copy';
import type { DisposeSourcesResult } from '../src/activities/lifecycle';
import type { ReadUsersPageResult } from '../src/activities/users';
import type { VerifyUserInput, VerifyUserResult } from '../src/activities/verify';
import {
  SA, cutoverSignal, migrationWorkflowId, syncUpdate, userWorkflowId, type MigrationInput, type MigrationSettings, type UserMigrationInput, type UserOutcome,
} from '../src/workflows/definitions';
import { uniqueId } from './helpers';
import { ownDevServer } from './support/test-env';
import { waitUntil } from './support/wait';

/**
 * The operator-mode user workflow with stand-in activities (no S3): first pass, two `clover sync`
 * updates (one with a conflict), a pass that fails (the user keeps waiting), a pass on the syncInterval
 * timer, continue-as-new between passes (history limit 30), then the cut-over: final pass, deletion,
 * residue in the outcome. The migration it reports to is a real migrationWorkflow held on its first
 * user-list read; its history shows one userFinished and one userDisposed signal.
 */
describe('user workflow in passes (cutover operator)', () => {
  const devServer = ownDevServer();

  it('syncs on request and on a timer, continues as new, and cuts over once', async () => {
    const migrationId = uniqueId('passes');
    const userId = `${migrationId}-u`;
    let committed = 0; // the newest committed generation
    let cutOver = false;
    const copies: number[] = [];
    const commits: CommitManifestInput[] = [];
    let releaseFirstCopy!: () => void;
    const firstCopyReleased = new Promise<void>((ok) => (releaseFirstCopy = ok));
    let releaseUsers!: (r: ReadUsersPageResult) => void;
    const usersPage = new Promise<ReadUsersPageResult>((ok) => (releaseUsers = ok));
    let failNextCopy = false;
    const conflictAt = 3;

    const activities = {
      readUsersPage: () => usersPage,
      readManifestHead: async (): Promise<ManifestHead | null> =>
        committed === 0 ? null : { generation: committed, digest: `d${committed}`, committedAt: '2020-01-01T00:00:00.000Z', cutOver, rolledBack: false },
      copyUserObjects: async (i: CopyUserInput): Promise<CopyUserResult> => {
        copies.push(i.generation);
        if (i.generation === 1) await firstCopyReleased;
        if (failNextCopy) {
          failNextCopy = false;
          throw ApplicationFailure.create({ type: 'AccessDenied', nonRetryable: true, message: 'stand-in: access denied at site sg' });
        }
        return { done: true, page: 1, objects: 2, bytes: 20, conflicts: 0, transferred: { objects: 1, bytes: 10 }, blocked: [], blockedCount: 0 };
      },
      verifyUserObjects: async (i: VerifyUserInput): Promise<VerifyUserResult> =>
        ({ verified: i.generation === 1 ? 2 : 1, verifiedBytes: 10, recopied: 0, transferredObjects: 0, transferredBytes: 0 }),
      commitManifest: async (i: CommitManifestInput): Promise<CommitManifestResult> => {
        expect(i.generation).toBe(committed + 1);
        committed = i.generation;
        commits.push(i);
        const conflicts = i.generation === conflictAt ? 1 : 0;
        return {
          manifestKey: `m/${userId}.json`, digest: `d${committed}`, generation: committed, objects: 2, bytes: 20, copied: 1, skipped: 1, conflicts,
          pass: { kind: i.kind, copied: 1, overwritten: i.kind === 'delta' ? 1 : 0, erased: 0, unchanged: 1, conflicts },
          conflictKeys: conflicts ? [{ key: `users/${userId}/x`, reason: 'the EU copy was changed by someone else' }] : [],
        };
      },
      disposeSources: async (): Promise<DisposeSourcesResult> => {
        cutOver = true;
        return { deleted: 2, keptChanged: 0, residue: [{ key: `users/${userId}/late`, site: 'sg', reason: 'written after the final pass' }], residueCount: 1 };
      },
      cleanupUser: async () => ({ uploadsAborted: 0 }),
    };
    // A small user's first pass is one activity: the same three stand-ins in turn.
    const allActivities = {
      ...activities,
      firstPassSmallUser: async (i: FirstPassInput): Promise<FirstPassResult> => {
        const copy = await activities.copyUserObjects(i.copy);
        if (!copy.done || copy.blockedCount > 0) return { copy };
        return { copy, verify: await activities.verifyUserObjects(i.verify), commit: await activities.commitManifest(i.commit) };
      },
    };

    const settings: MigrationSettings = {
      migrationId, sources: ['sg'], routing: { default: 'eu-ie', byCountry: {} }, userPrefix: 'users/{userId}/', verify: 'checksum',
      conflictPolicy: 'newest-wins', concurrency: { users: 1, objectsPerUser: 1 }, sourceDisposition: 'delete-after-verify', gracePeriod: '1s',
      cutover: 'operator', syncInterval: '3s',
    };
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({
      connection: devServer().nativeConnection, taskQueue, workflowBundle: { codePath: process.env.CLOVER_WORKFLOW_BUNDLE! }, activities: allActivities,
    });
    const parentId = migrationWorkflowId(migrationId);
    const userInput: UserMigrationInput = { settings, parentWorkflowId: parentId, userId, country: 'DE', targetSite: 'eu-ie', historyLimit: 30, firstPassOneActivity: true };
    const migrationInput: MigrationInput = { settings, usersSite: 'eu-ie', usersTotal: 0, mode: 'start' };

    // Whatever happens, the stand-ins held open are let go, so the worker can drain.
    const letGo = () => {
      releaseFirstCopy();
      releaseUsers({ users: [], nextOffset: 0, done: true });
    };
    await worker.runUntil(async () => {
      try {
        await scenario();
      } finally {
        letGo();
      }
    });

    async function scenario() {
      const parent = await devServer().client.workflow.start('migrationWorkflow', { taskQueue, workflowId: parentId, args: [migrationInput] });
      const handle = await devServer().client.workflow.start('userMigrationWorkflow', { taskQueue, workflowId: userWorkflowId(migrationId, userId), args: [userInput] });
      const firstRun = handle.firstExecutionRunId;
      const phase = async () => (await handle.describe()).typedSearchAttributes.get(SA.phase);

      // Before the first pass committed, a sync is refused by the validator.
      await waitUntil('the first copy runs', () => copies.length, (n) => n >= 1);
      const early = await handle.executeUpdate(syncUpdate).then(() => undefined, (e: unknown) => e);
      expect(early).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(((early as Error).cause as Error).message).toMatch(/has not committed its first pass yet/);
      releaseFirstCopy();

      await waitUntil('the user waits in phase in-sync', phase, (p) => p === 'in-sync');
      expect(commits.map((c) => [c.generation, c.kind])).toEqual([[1, 'first']]);
      expect(commits[0]!.sources).toEqual(['sg']);

      const second = await handle.executeUpdate(syncUpdate);
      expect(second).toMatchObject({ userId, kind: 'delta', generation: 2, copied: 1, overwritten: 1, unchanged: 1, verified: 1, conflicts: 0, inStep: true });

      const third = await handle.executeUpdate(syncUpdate);
      expect(third).toMatchObject({ generation: 3, conflicts: 1, inStep: false, conflictKeys: [{ key: `users/${userId}/x` }] });

      // A pass that fails answers with its error; the user keeps waiting, and the next pass works.
      failNextCopy = true;
      const failed = await handle.executeUpdate(syncUpdate);
      expect(failed).toMatchObject({ kind: 'delta', inStep: false, error: expect.stringMatching(/access denied at site sg/) });
      expect(failed.generation).toBeUndefined();
      expect(await phase()).toBe('in-sync');

      // The syncInterval timer runs a pass on its own.
      const before = committed;
      await waitUntil('a pass on the syncInterval timer', () => committed, (g) => g > before, { timeoutMs: 20_000 });
      // The history limit of 30 made the user continue as new between passes, never redoing the first pass.
      expect((await handle.describe()).runId).not.toBe(firstRun);
      expect(copies.filter((g) => g === 1)).toHaveLength(1);

      const fourthOn = await handle.executeUpdate(syncUpdate);
      expect(fourthOn.inStep).toBe(true);
      expect(fourthOn.generation).toBe(committed);

      await handle.signal(cutoverSignal);
      const outcome: UserOutcome = await handle.result();
      expect(outcome).toMatchObject({
        userId, ok: true, sourceDeleted: 2, residueCount: 1, awaitingDisposal: false,
        residue: [{ key: `users/${userId}/late`, site: 'sg', reason: 'written after the final pass' }],
        lastPass: { kind: 'delta', generation: committed, inStep: true },
      });
      expect(outcome.counters).toMatchObject({ objects: 2, sourceDeleted: 2, sourceResidue: 1 });
      expect(commits.map((c) => c.generation)).toEqual(Array.from({ length: committed }, (_, i) => i + 1));
      expect(commits.slice(1).every((c) => c.kind === 'delta')).toBe(true);

      // The migration heard of the user twice: migrated (first pass), then cut over.
      const signals = ((await parent.fetchHistory()).events ?? [])
        .map((e) => e.workflowExecutionSignaledEventAttributes?.signalName).filter((n): n is string => !!n);
      expect(signals).toEqual(['userFinished', 'userDisposed']);

      // A finished, cut-over user: a sync-once run refuses (reports to no parent).
      const once = await devServer().client.workflow.execute('userMigrationWorkflow', {
        taskQueue, workflowId: userWorkflowId(migrationId, userId), args: [{ ...userInput, mode: 'sync-once' }],
      });
      expect(once).toMatchObject({ ok: false, lastPass: { inStep: false, error: expect.stringMatching(/already cut over/) } });

      releaseUsers({ users: [], nextOffset: 0, done: true });
      await parent.terminate('test over').catch(() => undefined);
    }
  });
});
