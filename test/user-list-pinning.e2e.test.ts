import type { ChildProcess } from 'node:child_process';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { usersListKey } from '../src/domain/layout';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId } from '../src/workflows/definitions';
import { clients, get, listKeys, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * The user list is written once and pinned: a start never replaces another plan's list, and a list
 * replaced under a running migration is never read (the migration fails, naming what happened).
 */
describe('the stored user list is pinned', () => {
  const c = clients();
  let worker: ChildProcess | undefined;
  let connection: Connection;
  beforeAll(async () => {
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
  });
  afterAll(async () => {
    if (worker) await stopProcess(worker, 'SIGKILL');
    await connection?.close();
    destroySiteClients(c);
  });
  const plan = (migrationId: string, users: string[]) => writePlan(tmpPlanDir(), {
    migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
  });
  const usersList = (id: string, body: string, digest: string) => {
    const s = c.get('eu-ie')!;
    return s.s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: usersListKey(id), Body: body, Metadata: { 'clover-plan-digest': digest } }));
  };

  it('a start whose id already has another plan\'s user list exits 2 and leaves that list alone', async () => {
    const id = uniqueId('pin-taken');
    await usersList(id, '{"userId":"someone-else","country":"FR"}\n', 'digest-of-another-plan');
    const r = await runCli(['start', '--plan', plan(id, [`${id}-u`])]);
    expect(r.stderr).toMatch(new RegExp(`^clover: migration id "${id}" already has a user list from a different plan \\(site eu-ie`));
    expect(r.code).toBe(2);
    expect((await get(c, 'eu-ie', usersListKey(id)))?.body.toString()).toBe('{"userId":"someone-else","country":"FR"}\n');
  });

  it('a list replaced after the start is never read: the migration fails naming it, nothing is copied', async () => {
    const id = uniqueId('pin-swap');
    const user = `${id}-u`;
    await put(c, 'sg', `users/${user}/a.txt`, 'a');
    expect((await runCli(['start', '--plan', plan(id, [user])])).code).toBe(0); // no worker yet: nothing read so far
    await usersList(id, `{"userId":"${id}-intruder","country":"DE"}\n`, 'whatever');
    worker = startWorkerProcess(`${id}-w`);
    const failure = await new Client({ connection }).workflow.getHandle(migrationWorkflowId(id)).result().then(() => undefined, (e: unknown) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const root = (() => { let e = failure as { message?: string; cause?: unknown }; while (e.cause) e = e.cause as typeof e; return e.message ?? ''; })();
    expect(root).toMatch(new RegExp(`the user list of migration ${id} \\(site eu-ie, key [^)]+\\) was replaced after the migration started`));
    expect(await listKeys(c, 'eu-ie', `users/${user}/`)).toEqual([]);
    expect(await listKeys(c, 'eu-ie', `users/${id}-intruder/`)).toEqual([]);
  });
});
