import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../src/activities';
import { destroySiteClients } from '../src/storage/clients';
import { SA, migrationWorkflowId, type MigrationInput } from '../src/workflows/definitions';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { usersListKey } from '../src/domain/layout';
import { testDeps } from './deps';
import { get, put, sha256, uniqueId } from './helpers';

/**
 * The workflows on a Temporal server that TestWorkflowEnvironment.createLocal starts from the project's
 * own `temporal` binary (no download), run by a real in-process worker against the real S3 sites.
 */
describe('migrationWorkflow on TestWorkflowEnvironment.createLocal', () => {
  let env: TestWorkflowEnvironment;
  const deps = testDeps();
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: process.env.CLOVER_TEMPORAL_BIN! },
        searchAttributes: Object.values(SA),
      },
    });
  });
  afterAll(async () => {
    await env?.teardown();
    destroySiteClients(deps.clients);
  });

  it('moves two users into their EU sites and reports the counts', async () => {
    const migrationId = uniqueId('local-env');
    const a = `${migrationId}-a`;
    const b = `${migrationId}-b`;
    await put(deps.clients, 'sg', `users/${a}/one.txt`, 'one');
    await put(deps.clients, 'us', `users/${b}/two.bin`, Buffer.alloc(6 * 1024 * 1024, 9)); // multipart with 5 MiB parts
    const usersSite = deps.clients.get('eu-ie')!;
    await usersSite.s3.send(new PutObjectCommand({
      Bucket: usersSite.bucket, Key: usersListKey(migrationId),
      Body: `${JSON.stringify({ userId: a, country: 'DE' })}\n${JSON.stringify({ userId: b, country: 'NO' })}\n`,
    }));
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: { codePath: process.env.CLOVER_WORKFLOW_BUNDLE! },
      activities: createActivities(deps),
    });
    const input: MigrationInput = {
      settings: {
        migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie', byCountry: { NO: 'eu-no' } }, userPrefix: 'users/{userId}/',
        verify: 'checksum', conflictPolicy: 'newest-wins', concurrency: { users: 2, objectsPerUser: 4 },
        sourceDisposition: 'keep', gracePeriod: '7d',
      },
      usersSite: 'eu-ie', usersTotal: 2, mode: 'start',
    };
    const result = await worker.runUntil(
      env.client.workflow.execute('migrationWorkflow', { taskQueue, workflowId: migrationWorkflowId(migrationId), args: [input] }),
    );
    expect(result).toMatchObject({ phase: 'completed', usersDone: 2, usersFailed: 0 });
    expect(result.counters).toMatchObject({ objects: 2, copied: 2, verified: 2, bytes: 3 + 6 * 1024 * 1024 });
    expect((await get(deps.clients, 'eu-ie', `users/${a}/one.txt`))!.body.toString()).toBe('one');
    const big = await get(deps.clients, 'eu-no', `users/${b}/two.bin`);
    expect(sha256(big!.body)).toBe(sha256(Buffer.alloc(6 * 1024 * 1024, 9)));
    expect(big!.metadata['clover-sha256']).toBe(sha256(Buffer.alloc(6 * 1024 * 1024, 9)));
  });

  it('continues-as-new long before history grows, carrying the window and the counters', async () => {
    const migrationId = uniqueId('can');
    const users = Array.from({ length: 24 }, (_, i) => ({ userId: `${migrationId}-${i}`, country: i % 3 === 0 ? 'NO' : 'DE' }));
    for (const [i, u] of users.entries()) if (i % 4 === 0) await put(deps.clients, 'sg', `users/${u.userId}/f.txt`, `file of ${u.userId}`);
    const usersSite = deps.clients.get('eu-ie')!;
    await usersSite.s3.send(new PutObjectCommand({ Bucket: usersSite.bucket, Key: usersListKey(migrationId), Body: users.map((u) => JSON.stringify(u)).join('\n') + '\n' }));
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({
      connection: env.nativeConnection, taskQueue, workflowBundle: { codePath: process.env.CLOVER_WORKFLOW_BUNDLE! }, activities: createActivities(deps),
    });
    const input: MigrationInput = {
      settings: {
        migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie', byCountry: { NO: 'eu-no' } }, userPrefix: 'users/{userId}/',
        verify: 'full', conflictPolicy: 'newest-wins', concurrency: { users: 3, objectsPerUser: 2 },
        sourceDisposition: 'keep', gracePeriod: '7d',
      },
      usersSite: 'eu-ie', usersTotal: users.length, mode: 'start', historyLimit: 40,
    };
    const result = await worker.runUntil(
      env.client.workflow.execute('migrationWorkflow', { taskQueue, workflowId: migrationWorkflowId(migrationId), args: [input] }),
    );
    expect(result.runs).toBeGreaterThan(2);
    expect(result).toMatchObject({ phase: 'completed', usersDone: 24, usersFailed: 0, usersInFlight: 0 });
    expect(result.counters).toMatchObject({ objects: 6, copied: 6, verified: 6 });
    for (const [i, u] of users.entries()) {
      if (i % 4 !== 0) continue;
      const target = u.country === 'NO' ? 'eu-no' : 'eu-ie';
      expect((await get(deps.clients, target, `users/${u.userId}/f.txt`))!.body.toString()).toBe(`file of ${u.userId}`);
    }
  });
});
