import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { usersListKey } from '../src/domain/layout';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId } from '../src/workflows/definitions';
import { clients, get, listKeys, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { USER_LIST_PART_BYTES } from '../src/operator/migrations';

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

  it('a users file longer than one part is stored whole in parts, once: the same plan attaches, another is refused', async () => {
    const id = uniqueId('pin-long');
    const dir = tmpPlanDir();
    // About 1.5 parts of 8 MiB: a multipart upload of two parts.
    const n = Math.ceil((USER_LIST_PART_BYTES * 1.5) / 48);
    const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ userId: `${id}-${String(i).padStart(8, '0')}`, country: i % 2 ? 'DE' : 'NO' }) + '\n');
    const expected = lines.join('');
    writeFileSync(join(dir, 'users.jsonl'), expected);
    const planFile = writePlan(dir, { migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, usersFile: 'users.jsonl' });
    const first = await runCli(['start', '--plan', planFile]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`(${n} users)`);
    const stored = await get(c, 'eu-ie', usersListKey(id));
    expect(stored?.etag).toMatch(/-2$/);
    expect(createHash('sha256').update(stored!.body).digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
    const again = await runCli(['start', '--plan', planFile]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/is already running; attached/);
    // Another plan under the same id (one more user): refused, the stored list untouched.
    writeFileSync(join(dir, 'other.jsonl'), expected + `{"userId":"${id}-extra","country":"DE"}\n`);
    const other = await runCli(['start', '--plan', writePlan(dir, { migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, usersFile: 'other.jsonl' })]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(new RegExp(`migration id "${id}" is already used by a different plan`));
    expect((await get(c, 'eu-ie', usersListKey(id)))?.etag).toBe(stored!.etag);
  });
});
