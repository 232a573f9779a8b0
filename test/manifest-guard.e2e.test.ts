import type { ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { manifestKey } from '../src/domain/layout';
import { manifestDigest, signManifest, type Manifest } from '../src/domain/manifest';
import { destroySiteClients } from '../src/storage/clients';
import { putJson } from '../src/storage/json-records';
import { migrationWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { testSigningKey } from './support/signing-key';
import { clients, exists, get, listKeys, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * The manifest guard on the real stack: a committed manifest edited in storage so that one entry points
 * into another user's prefix makes the source deletion and the rollback of that user touch nothing, and
 * the user is reported failed. The worker signs manifests with its evidence key: an edit with the plain
 * digest recomputed is caught by the signature (cutover test); an edit re-signed with the key (a faulty
 * writer that holds it) is caught by the prefix check (rollback test).
 * The other user's object is made as deletable as possible: its source ETag and an EU copy with the
 * recorded ETag exist, so without the guard the conditional deletes would succeed.
 */
describe('manifest guard before destructive steps', () => {
  const c = clients();
  let worker: ChildProcess;
  let connection: Connection;
  let client: Client;
  const { file, key } = testSigningKey();

  beforeAll(async () => {
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    client = new Client({ connection });
    worker = startWorkerProcess(uniqueId('guard-worker'), [], { CLOVER_SIGNING_KEY_FILE: file });
  });
  afterAll(async () => {
    await stopProcess(worker, 'SIGKILL');
    await connection?.close();
    destroySiteClients(c);
  });

  const seed = async (userId: string, n: number) => {
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < n; i++) {
      const key = `users/${userId}/f-${i}`;
      bodies.set(key, Buffer.from(`${userId} object ${i}`));
      await put(c, 'sg', key, bodies.get(key)!);
    }
    return bodies;
  };
  const plan = (migrationId: string, userId: string, gracePeriod: string) => writePlan(tmpPlanDir(), {
    migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }],
    verify: 'checksum', sourceDisposition: 'delete-after-verify', gracePeriod,
  });
  const readManifest = async (id: string, userId: string) => JSON.parse((await get(c, 'eu-ie', manifestKey(id, userId)))!.body.toString()) as Manifest;

  /** Points the user's first manifest entry at the victim's object (source and EU copy), digest recomputed (and re-signed with the worker's key when `resign`). */
  const redirectFirstEntry = async (id: string, userId: string, victimKey: string, resign = false) => {
    const body = (await get(c, 'sg', victimKey))!.body;
    await put(c, 'eu-ie', victimKey, body);
    const m = await readManifest(id, userId);
    const e = m.entries[0]!;
    Object.assign(e, { key: victimKey, sourceSite: 'sg', sourceEtag: (await get(c, 'sg', victimKey))!.etag, targetEtag: (await get(c, 'eu-ie', victimKey))!.etag, sha256: sha256(body), size: body.length });
    // Tampered in place at the newest copy (manifestKey), as an attacker or a faulty tool would: no new generation.
    const tampered = { ...m, digest: manifestDigest(m) };
    await putJson(c.get('eu-ie')!, manifestKey(id, userId), resign ? signManifest(tampered, key) : tampered, 'a tampered manifest', { pretty: true });
  };

  it('cutover with an edited manifest deletes nothing and reports the user failed', async () => {
    const id = uniqueId('guard-cut');
    const userId = `${id}-u`;
    const victim = `${id}-victim`;
    const mine = await seed(userId, 4);
    const theirs = await seed(victim, 2);
    expect((await runCli(['start', '--plan', plan(id, userId, '1h'), '--wait'])).code).toBe(0);
    const victimKey = [...theirs.keys()][0]!;
    await redirectFirstEntry(id, userId, victimKey);

    expect((await runCli(['cutover', id])).code).toBe(0);
    const r = (await client.workflow.getHandle(migrationWorkflowId(id)).result()) as MigrationResult;
    // Its signature no longer holds: the plain digest recomputed does not make the edit pass.
    expect(r.failed).toEqual([expect.objectContaining({ userId, reason: expect.stringMatching(new RegExp(`the final pass failed, so nothing was deleted: user ${userId}: manifest .*${userId}\\.json is not valid: its signature does not verify`)) })]);
    expect(r.counters).toMatchObject({ sourceDeleted: 0 });
    for (const [key, body] of [...mine, ...theirs]) expect(sha256((await get(c, 'sg', key))!.body)).toBe(sha256(body));
    expect(await exists(c, 'eu-ie', victimKey)).toBe(true);
    expect((await readManifest(id, userId)).sourceDisposition).toBeUndefined();
  });

  it('rollback with an edited manifest restores and deletes nothing of that user; exit 1 naming the user', async () => {
    const id = uniqueId('guard-rb');
    const userId = `${id}-u`;
    const victim = `${id}-victim`;
    const mine = await seed(userId, 4);
    const theirs = await seed(victim, 2);
    expect((await runCli(['start', '--plan', plan(id, userId, '500ms'), '--wait'])).code).toBe(0);
    await client.workflow.getHandle(migrationWorkflowId(id)).result();
    expect(await listKeys(c, 'sg', `users/${userId}/`)).toEqual([]);
    const victimKey = [...theirs.keys()][1]!;
    await redirectFirstEntry(id, userId, victimKey, true);
    const euBefore = await listKeys(c, 'eu-ie', `users/${userId}/`);
    expect(euBefore).toHaveLength(mine.size);

    const rb = await runCli(['rollback', id, '--wait']);
    expect(rb.code).toBe(1);
    expect(rb.stdout).toMatch(new RegExp(`user ${userId}: user ${userId}: manifest .* is not valid: entry 0 \\(key "${victimKey}"\\) lies outside`));
    expect(await listKeys(c, 'sg', `users/${userId}/`)).toEqual([]); // nothing restored
    expect(await listKeys(c, 'eu-ie', `users/${userId}/`)).toEqual(euBefore); // no EU copy deleted
    for (const [key, body] of theirs) expect(sha256((await get(c, 'sg', key))!.body)).toBe(sha256(body));
    expect(await exists(c, 'eu-ie', victimKey)).toBe(true);
    expect((await readManifest(id, userId)).rolledBack).toBeUndefined();
  });
});
