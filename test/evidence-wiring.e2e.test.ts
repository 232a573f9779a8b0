import type { ChildProcess } from 'node:child_process';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { manifestGenerationKey, manifestKey } from '../src/domain/layout';
import { manifestDigest, manifestSignatureProblem, type Manifest } from '../src/domain/manifest';
import { ledgerProblems } from '../src/evidence/ledger';
import { readLedger } from '../src/evidence/storage';
import { destroySiteClients } from '../src/storage/clients';
import { clients, get, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { testSigningKey } from './support/signing-key';

/**
 * The evidence ledger wired into the real CLI and a worker, both given one signing key: a migration
 * started, paused and resumed, synced (a delta pass carrying one erasure over) and cut over leaves one unbroken signed chain
 * with the plan, every operator command (with the operator's identity), each committed generation
 * (digests equal to the stored generations'), the source deletion and a rollback; every manifest generation is signed.
 */
describe('evidence ledger wiring', () => {
  const c = clients();
  const { file, key } = testSigningKey();
  const env = { CLOVER_SIGNING_KEY_FILE: file, CLOVER_OPERATOR: 'alice@example' };
  let worker: ChildProcess;

  beforeAll(() => {
    worker = startWorkerProcess(uniqueId('evidence-worker'), [], { CLOVER_SIGNING_KEY_FILE: file });
  });
  afterAll(async () => {
    await stopProcess(worker, 'SIGKILL');
    destroySiteClients(c);
  });

  const generation = async (id: string, userId: string, g: number) =>
    JSON.parse((await get(c, 'eu-ie', manifestGenerationKey(id, userId, g)))!.body.toString()) as Manifest;

  it('start, pause, resume, sync, cutover, rollback: one signed chain naming the operator, the committed generations and the deletion', async () => {
    const id = uniqueId('evidence');
    const userId = `${id}-u`;
    const keys = [0, 1, 2].map((i) => `users/${userId}/f-${i}`);
    for (const k of keys) await put(c, 'sg', k, `object ${k}`);
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }],
      verify: 'checksum', sourceDisposition: 'delete-after-verify', gracePeriod: '1h',
    });
    const start = await runCli(['start', '--plan', plan, '--wait'], env);
    expect(start.stderr).not.toMatch(/no signing key/);
    expect(start.code).toBe(0);

    // The migration runs until its last cut-over: pause and resume it while the user waits out its grace period.
    for (const cmd of ['pause', 'resume']) expect((await runCli([cmd, id], env)).code).toBe(0);
    await c.get('sg')!.s3.send(new DeleteObjectCommand({ Bucket: c.get('sg')!.bucket, Key: keys[2]! })); // erased by the application: the delta pass carries it over
    const sync = await runCli(['sync', id, '--user', userId, '--wait'], env);
    expect(sync.code).toBe(0);
    const cut = await runCli(['cutover', id, '--user', userId, '--wait'], env);
    expect(cut.code).toBe(0);

    const ledger = await readLedger(c.get('eu-ie')!, id);
    expect(ledgerProblems(ledger, id, key.publicKey)).toEqual([]);
    expect(ledger.map((r) => r.seq)).toEqual(ledger.map((_, i) => i + 1));
    const types = ledger.map((r) => r.type);
    expect(types[0]).toBe('plan-accepted');
    for (const t of ['user-committed', 'delta-pass', 'erasure-carried-over', 'sources-deleted'] as const) {
      expect(types.filter((x) => x === t)).toHaveLength(t === 'delta-pass' ? 2 : 1); // the sync's pass and the cutover's final pass
    }

    const plain = ledger[0]!;
    expect(plain.data).toMatchObject({ usersTotal: 1, sources: ['sg', 'us'], routing: { default: 'eu-ie' } });
    expect(plain.data.userListDigest).toEqual(expect.any(String));

    const commands = ledger.filter((r) => r.type === 'operator-command');
    expect(commands.map((r) => r.data.command)).toEqual(['start', 'pause', 'resume', 'sync', 'cutover']);
    for (const r of commands) expect(r.actor).toMatchObject({ who: 'alice@example', via: 'cli' });
    expect(commands[3]!.data.args).toMatchObject({ users: [userId], wait: true });
    // Each command is recorded before its effects.
    expect(types.indexOf('operator-command')).toBeLessThan(types.indexOf('user-committed'));
    expect(ledger.indexOf(commands[4]!)).toBeLessThan(types.indexOf('sources-deleted'));

    const committed = ledger.find((r) => r.type === 'user-committed')!;
    expect(committed.actor.via).toBe('worker');
    const g1 = await generation(id, userId, 1);
    expect(committed.data).toMatchObject({ userId, generation: 1, digest: g1.digest, manifestKey: manifestGenerationKey(id, userId, 1), objects: 3, targetSite: 'eu-ie' });
    const erased = ledger.find((r) => r.type === 'erasure-carried-over')!;
    expect(erased.data).toMatchObject({ userId, generation: 2, erasures: [expect.objectContaining({ key: keys[2], sourceSite: 'sg' })] });
    const deleted = ledger.find((r) => r.type === 'sources-deleted')!;
    expect(deleted.data).toMatchObject({ userId, deleted: 2, keptChanged: [] });

    // Every generation is signed with the worker's key, and the newest copy is the last generation.
    const newest = JSON.parse((await get(c, 'eu-ie', manifestKey(id, userId)))!.body.toString()) as Manifest;
    expect(newest.generation).toBe(deleted.data.generation);
    for (let g = 1; g <= newest.generation; g++) {
      const m = await generation(id, userId, g);
      expect(manifestSignatureProblem(m, key.publicKey, key.keyId)).toBeUndefined();
      expect(manifestDigest(m)).toBe(m.digest);
    }

    // A rollback of the signed, amended manifest passes the guard and is recorded, command first.
    const rb = await runCli(['rollback', id, '--wait'], env);
    expect(rb.code).toBe(0);
    const after = await readLedger(c.get('eu-ie')!, id);
    expect(ledgerProblems(after, id, key.publicKey)).toEqual([]);
    expect(after.slice(ledger.length).map((r) => [r.type, r.data.command])).toEqual([['operator-command', 'rollback'], ['rollback', undefined], ['operator-result', 'rollback']]);
    expect(after.at(-1)!.data).toMatchObject({ outcome: 'accepted', exitCode: 0, intentSeq: ledger.length + 1 });
    expect(after.at(-2)!.data).toMatchObject({ userId, generation: newest.generation + 1, restored: 2, targetDeleted: 2 });
  });
});
