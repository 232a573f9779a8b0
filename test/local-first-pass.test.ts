import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import type { FirstPassInput, FirstPassResult } from '../src/activities/small-user';
import type { ReadUsersPageResult } from '../src/activities/users';
import {
  migrationWorkflowId, userWorkflowId, type MigrationInput, type MigrationSettings, type UserMigrationInput, type UserOutcome,
} from '../src/workflows/definitions';
import { uniqueId } from './helpers';
import { ownDevServer } from './support/test-env';

/**
 * Where a small user's first pass runs (the user workflow's choice, with stand-in activities): as a local
 * activity; as the regular activity when the local one hands the user back (deferred) or has run out of
 * its three attempts; and a permanent failure of the local one fails the user without a regular attempt.
 * The migration each user reports to is a real migrationWorkflow held on its first user-list read.
 */
describe('a small user\'s local first pass', () => {
  const devServer = ownDevServer();

  const done = (i: FirstPassInput): FirstPassResult => ({
    copy: { done: true, page: 1, objects: 2, bytes: 20, conflicts: 0, transferred: { objects: 2, bytes: 20 }, blocked: [], blockedCount: 0 },
    verify: { verified: 2, verifiedBytes: 20, recopied: 0, transferredObjects: 0, transferredBytes: 0 },
    commit: {
      manifestKey: `m/${i.commit.userId}.json`, digest: 'd1', generation: 1, objects: 2, bytes: 20, copied: 2, skipped: 0, conflicts: 0,
      pass: { kind: 'first', copied: 2, overwritten: 0, erased: 0, unchanged: 0, conflicts: 0 }, conflictKeys: [],
    },
  });
  const deferred: FirstPassResult = { copy: { done: false, page: 0, objects: 0, bytes: 0, conflicts: 0, transferred: { objects: 0, bytes: 0 }, blocked: [], blockedCount: 0, deferred: true } };

  /** Runs one user whose local run does `local` (the regular run always commits); returns its outcome and the calls of each kind. */
  async function runUser(local: (attempt: number, i: FirstPassInput) => FirstPassResult): Promise<{ outcome?: UserOutcome; error?: Error; calls: { local: number; regular: number } }> {
    const migrationId = uniqueId('local-pass');
    const userId = `${migrationId}-u`;
    const calls = { local: 0, regular: 0 };
    let releaseUsers!: (r: ReadUsersPageResult) => void;
    const usersPage = new Promise<ReadUsersPageResult>((ok) => (releaseUsers = ok));
    const activities = {
      readUsersPage: () => usersPage,
      cleanupUser: async () => ({ uploadsAborted: 0 }),
      recordUserFailed: async () => undefined,
      firstPassSmallUser: async (i: FirstPassInput): Promise<FirstPassResult> => {
        const info = Context.current().info;
        if (!info.isLocal) {
          calls.regular++;
          return done(i);
        }
        calls.local++;
        return local(info.attempt, i);
      },
    };
    const settings: MigrationSettings = {
      migrationId, sources: ['sg'], routing: { default: 'eu-ie', byCountry: {} }, userPrefix: 'users/{userId}/', verify: 'checksum',
      conflictPolicy: 'newest-wins', concurrency: { users: 1, objectsPerUser: 1 }, sourceDisposition: 'keep', gracePeriod: '1s', cutover: 'auto',
    };
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({
      connection: devServer().nativeConnection, taskQueue, workflowBundle: { codePath: process.env.CLOVER_WORKFLOW_BUNDLE! }, activities,
    });
    const parentId = migrationWorkflowId(migrationId);
    const userInput: UserMigrationInput = { settings, parentWorkflowId: parentId, userId, country: 'DE', targetSite: 'eu-ie', firstPassOneActivity: true, firstPassLocal: true };
    const migrationInput: MigrationInput = { settings, usersSite: 'eu-ie', usersTotal: 0, mode: 'start' };
    let result: { outcome?: UserOutcome; error?: Error } = {};
    await worker.runUntil(async () => {
      try {
        await devServer().client.workflow.start('migrationWorkflow', { taskQueue, workflowId: parentId, args: [migrationInput] });
        const handle = await devServer().client.workflow.start('userMigrationWorkflow', { taskQueue, workflowId: userWorkflowId(migrationId, userId), args: [userInput] });
        result = await handle.result().then((outcome: UserOutcome) => ({ outcome }), (error: Error) => ({ error }));
      } finally {
        releaseUsers({ users: [], nextOffset: 0, done: true });
      }
    });
    return { ...result, calls };
  }

  it('runs the whole pass locally when the worker keeps it', async () => {
    const r = await runUser((_, i) => done(i));
    expect(r.outcome).toMatchObject({ ok: true, counters: { objects: 2, verified: 2, transferredObjects: 2 } });
    expect(r.calls).toEqual({ local: 1, regular: 0 });
  });

  it('hands a user it does not keep (deferred) to the regular activity', async () => {
    const r = await runUser(() => deferred);
    expect(r.outcome).toMatchObject({ ok: true, counters: { objects: 2, verified: 2 } });
    expect(r.calls).toEqual({ local: 1, regular: 1 });
  });

  it('gives the pass to the regular activity after three failed local attempts', async () => {
    const r = await runUser(() => {
      throw ApplicationFailure.create({ type: 'Unreachable', message: 'stand-in: site sg unreachable' });
    });
    expect(r.outcome).toMatchObject({ ok: true, counters: { objects: 2, verified: 2 } });
    expect(r.calls).toEqual({ local: 3, regular: 1 });
  });

  it('fails the user on a permanent failure of the local pass, without a regular attempt', async () => {
    const r = await runUser(() => {
      throw ApplicationFailure.create({ type: 'AccessDenied', nonRetryable: true, message: 'stand-in: access denied at site sg' });
    });
    expect(r.outcome).toMatchObject({ ok: false });
    expect(r.outcome?.reason ?? '').toMatch(/access denied at site sg/);
    expect(r.calls).toEqual({ local: 1, regular: 0 });
  });
});
