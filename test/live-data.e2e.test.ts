import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { manifestGenerationKey, manifestKey } from '../src/domain/layout';
import { entrySites, type Manifest } from '../src/domain/manifest';
import { destroySiteClients } from '../src/storage/clients';
import { userWorkflowId } from '../src/workflows/definitions';
import {
  at, clients, get, hasPendingActivity, hasWorkInFlight, listKeys, put, runCli, sha256, startCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan,
  type CliResult,
} from './helpers';
import { Application, asObject, endMigration, euState, siteState, sourceState, userPrefix } from './support/app';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { startWithHistoryLimit } from './support/start';
import { waitUntil } from './support/wait';
import { expectExit, expectInStep as expectInStepOf, readManifest, userPhase, waitForInSync } from './support/live';

/** The worker runs with `--part-mib 5`: objects above 5 MiB are copied as multipart uploads. */
const PART_MIB = 5;
const BIG = PART_MIB * 1024 * 1024 + 300 * 1024;
/** Per test: a few passes of small objects; the syncInterval test waits for a dozen passes. */
const TEST_MS = 180_000;
const SOURCES = ['sg', 'us'];

/**
 * Live data (issue #10), as an operator runs it on the real stack: the application keeps writing,
 * overwriting and erasing a user's objects in both sources between passes, during a pass and right before
 * the cut-over; `clover sync`, `clover cutover`, `clover rollback` and `clover verify` keep the EU copy in
 * step, leave nothing behind in the sources and bring nothing erased back. Every assertion is about
 * storage: SHA-256 of every key in the EU copy against every key in the sources (both ways), the
 * manifest generations, exit codes and the keys the CLI names.
 *
 * One worker for the file, reaching the sources through this file's own proxies: the test that needs a
 * pass to be still running while the application writes holds a source there (never racing the copy's
 * speed); every other test leaves the proxies clear. Small objects and one multipart object per user
 * keep the file to a couple of minutes.
 */
describe('live data: delta passes until cut-over', () => {
  const c = clients();
  const app = new Application(c);
  let worker: ChildProcess;
  let connection: Connection;
  let client: Client;
  let proxy: ProxiedSites;
  /** Migrations this test started: ended (terminated) after it, whatever happened. */
  let started: { id: string; users: string[] }[] = [];

  beforeAll(async () => {
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    client = new Client({ connection });
    proxy = await proxiedSites(SOURCES);
    worker = startWorkerProcess(uniqueId('live-worker'), ['--part-mib', String(PART_MIB)], { CLOVER_SITES: proxy.sitesFile });
  });
  afterEach(async () => {
    for (const m of started) await endMigration(client, m.id, m.users);
    started = [];
    await proxy.clear().catch(() => undefined); // a failed test may have left a source held
  });
  afterAll(async () => {
    if (worker) await stopProcess(worker, 'SIGKILL');
    await proxy?.close().catch(() => undefined);
    await connection?.close();
    destroySiteClients(c);
  });

  /** A new migration id and its users, ended after the test. */
  const migration = (prefix: string, names: string[]) => {
    const id = uniqueId(prefix);
    const users = names.map((n) => `${id}-${n}`);
    started.push({ id, users });
    return { id, users };
  };
  const plan = (migrationId: string, users: string[], more: Record<string, unknown> = {}) =>
    writePlan(tmpPlanDir(), {
      migrationId, sources: SOURCES, routing: { default: 'eu-ie' }, users: users.map((userId) => ({ userId, country: 'DE' })),
      verify: 'full', cutover: 'operator', ...more,
    });
  const manifest = (id: string, userId: string) => readManifest(c, id, userId);
  const generation = async (id: string, userId: string): Promise<number> => {
    const m = await get(c, 'eu-ie', manifestKey(id, userId));
    return m ? (JSON.parse(m.body.toString()) as Manifest).generation : 0;
  };
  const phase = (id: string, userId: string) => userPhase(client, id, userId);
  const waitInSync = (id: string, userId: string) => waitForInSync(client, id, userId);
  const lines = (r: CliResult) => r.stdout.split('\n');
  const expectInStep = (userId: string) => expectInStepOf(c, app, userId, SOURCES);

  it('sync: writes, overwrites (small and multipart) and erases in both sources between passes; the EU copy equals the sources both ways', async () => {
    const { id, users } = migration('sync', ['a', 'b']);
    for (const [i, u] of users.entries()) {
      await app.write('sg', u, 'keep.txt', `kept, ${u}`);
      await app.write('sg', u, 'edit.txt', `first version, ${u}`);
      await app.write('sg', u, 'gone-sg.txt', `erased by the application later, ${u}`);
      await app.write('us', u, 'us/keep.txt', `kept in the US, ${u}`);
      await app.write('us', u, 'gone-us.txt', `erased in the US later, ${u}`);
      await app.write(i === 0 ? 'sg' : 'us', u, 'big.bin', randomBytes(BIG)); // multipart
    }
    expectExit(await runCli(['start', '--plan', plan(id, users), '--wait']), 0);
    const before = new Map<string, Manifest>();
    for (const u of users) {
      await expectInStep(u);
      const m = await manifest(id, u);
      expect(m.generation).toBe(1);
      before.set(u, m);
      await waitInSync(id, u); // operator mode: waits for a sync or a cut-over
    }

    // The application, between passes, in both sources.
    const erased = new Map<string, { key: string; sha256: string; sourceSite: string }[]>();
    const dups = new Map<string, string>();
    for (const [i, u] of users.entries()) {
      await app.write('sg', u, 'new-sg.txt', `new in Singapore, ${u}`);
      await app.write('us', u, 'us/new-us.txt', `new in the US, ${u}`);
      await app.write('sg', u, 'edit.txt', `second version, longer than the first, ${u}`);
      await app.write(i === 0 ? 'sg' : 'us', u, 'big.bin', randomBytes(BIG)); // a multipart object overwritten
      const eraseRecorded = async (site: string, name: string) => {
        const key = app.key(u, name);
        const h = app.recorded(site, u).get(key)!; // the bytes the application wrote there, before it erases them
        await app.erase(site, u, name);
        return { key, sha256: h, sourceSite: site };
      };
      erased.set(u, [await eraseRecorded('sg', 'gone-sg.txt'), await eraseRecorded('us', 'gone-us.txt')]);
      dups.set(u, await app.writeEverywhere(SOURCES, u, 'dup.txt', `the same bytes in both sources, ${u}`));
    }

    const s = await runCli(['sync', id, '--wait']);
    expectExit(s, 0);
    for (const u of users) {
      await expectInStep(u);
      const eu = await euState(c, u);
      const m = await manifest(id, u);
      expect(m.generation).toBe(2);
      expect(m.entries.map((e) => [e.key, e.sha256])).toEqual([...eu]);
      expect(m.conflicts).toEqual([]);
      // Two new keys and the duplicate copied; the small and the multipart object copied over; two erasures
      // carried over; the two untouched objects cost no request.
      expect(m.pass).toMatchObject({ kind: 'delta', copied: 3, overwritten: 2, erased: 2, unchanged: 2, conflicts: 0 });
      expect(m.erasures.map(({ key, sha256: h, sourceSite }) => ({ key, sha256: h, sourceSite })).sort((a, b) => a.key.localeCompare(b.key)))
        .toEqual([...erased.get(u)!].sort((a, b) => a.key.localeCompare(b.key)));
      for (const e of m.erasures) expect(e.generation).toBe(2);
      const dup = m.entries.find((e) => e.key === dups.get(u));
      expect(dup?.alsoAt).toHaveLength(1);
      expect(entrySites(dup!).map((x) => x.site).sort()).toEqual(SOURCES);
      // Every generation is kept; the newest copy is the newest generation.
      const g1 = JSON.parse((await get(c, 'eu-ie', manifestGenerationKey(id, u, 1)))!.body.toString()) as Manifest;
      const g2 = JSON.parse((await get(c, 'eu-ie', manifestGenerationKey(id, u, 2)))!.body.toString()) as Manifest;
      expect(g1.digest).toBe(before.get(u)!.digest);
      expect(g2.digest).toBe(m.digest);
    }
    expectExit(await runCli(['verify', id]), 0);
  }, TEST_MS);

  it('a change made while a pass runs (a source held mid-pass) is in step after the next sync', async () => {
    const { id, users } = migration('during', ['u']);
    const u = at(users, 0);
    await app.write('sg', u, 'a.txt', 'a, first version');
    await app.write('sg', u, 'b.txt', 'b, erased while a pass runs');
    // Enough keys in us that its listing (a few KB) crawls for seconds through a held proxy.
    for (let i = 0; i < 12; i++) await app.write('us', u, `us-${String(i).padStart(2, '0')}.txt`, `us object ${i}`);
    expectExit(await runCli(['start', '--plan', plan(id, [u]), '--wait']), 0);
    await expectInStep(u);

    const wid = userWorkflowId(id, u);
    await waitUntil('the first pass has no activity left', () => hasWorkInFlight(client, wid), (p) => !p);
    await proxy.hold('us');
    const sync = startCli(['sync', id, '--wait']);
    let ended = false;
    void sync.done.then(() => (ended = true));
    try {
      await waitUntil('the delta pass is running', () => hasPendingActivity(client, wid), Boolean, { timeoutMs: 30_000 });
      // The application, while the pass cannot finish listing us.
      await app.write('sg', u, 'during-sg.txt', 'written in Singapore during the pass');
      await app.write('us', u, 'during-us.txt', 'written in the US during the pass');
      await app.write('sg', u, 'a.txt', 'a, changed during the pass');
      await app.erase('sg', u, 'b.txt');
      await app.erase('us', u, 'us-03.txt');
      expect(ended).toBe(false); // the changes landed while the pass was running
    } finally {
      await proxy.release('us');
    }
    // That pass may or may not have seen each change (it listed sg before or after them): it ends, in step or not.
    const during = await sync.done;
    expect({ endedAs: [0, 1].includes(during.code) ? 'sync result' : `exit ${during.code}`, stderr: during.stderr }).toMatchObject({ endedAs: 'sync result' });

    expectExit(await runCli(['sync', id, '--wait']), 0);
    await expectInStep(u);
    const m = await manifest(id, u);
    // Generation 2: the first sync (when it committed), 3: the second; the erasures are carried over either way.
    expect(m.generation).toBeGreaterThanOrEqual(during.code === 0 ? 3 : 2);
    expect(m.erasures.map((e) => e.key).sort()).toEqual([app.key(u, 'b.txt'), app.key(u, 'us-03.txt')]);
  }, TEST_MS);

  it('cutover: the final pass catches changes made right before it; every source is empty afterwards (duplicates too); a late write makes verify exit 1', async () => {
    const { id, users } = migration('cut', ['cut', 'stays']);
    const [u, other] = [at(users, 0), at(users, 1)];
    await app.write('sg', u, 'a.txt', 'a, first version');
    await app.write('sg', u, 'b.txt', 'b, erased right before the cutover');
    await app.write('us', u, 'c.txt', 'c, in the US');
    await app.writeEverywhere(SOURCES, u, 'dup.txt', 'the same bytes in both sources');
    await app.write('sg', other, 'o.txt', 'a user not cut over');
    expectExit(await runCli(['start', '--plan', plan(id, [u, other], { sourceDisposition: 'delete-after-verify', gracePeriod: '0s' }), '--wait']), 0);
    await expectInStep(u);
    for (const x of users) await waitInSync(id, x);
    // Operator mode: nothing is deleted before the cutover.
    expect(asObject(await sourceState(c, u))).toEqual(asObject(app.expected(u)));

    // Right before the cutover (the application stopped writing for this user just after).
    const late = await app.write('us', u, 'late.txt', 'written right before the cutover');
    await app.write('sg', u, 'a.txt', 'a, edited right before the cutover');
    const erased = await app.erase('sg', u, 'b.txt');
    const final = asObject(app.expected(u));
    expect(Object.keys(final)).toContain(late);

    const cut = await runCli(['cutover', id, '--user', u, '--wait']);
    expectExit(cut, 0);
    expect(asObject(await euState(c, u))).toEqual(final); // the final pass caught every change
    for (const site of SOURCES) expect({ site, left: await listKeys(c, site, userPrefix(u)) }).toEqual({ site, left: [] });
    // Only the named user was cut over.
    expect(asObject(await sourceState(c, other))).toEqual(asObject(app.expected(other)));
    expect(await phase(id, other)).toBe('in-sync');
    const m = await waitUntil('the manifest records the sources\' deletion', () => manifest(id, u), (x) => x.sourceDisposition?.state === 'deleted', { timeoutMs: 30_000 });
    expect(m.sourceDisposition?.residueCount ?? 0).toBe(0);
    expect(m.erasures.map((e) => e.key)).toEqual([erased]);
    expect(m.entries.find((e) => e.key === app.key(u, 'dup.txt'))?.alsoAt).toHaveLength(1);
    expectExit(await runCli(['verify', id]), 0);

    // The application writes for the user after its cut-over: data outside the EEA again, and verify says so.
    const stray = await app.write('sg', u, 'after-cutover.txt', 'written after the cutover');
    const v = await runCli(['verify', id]);
    expectExit(v, 1);
    expect(lines(v).filter((l) => l.startsWith('OUTSIDE-EEA'))).toEqual([expect.stringContaining(stray)]);
  }, TEST_MS);

  it('rollback after erasures: the sources get back their final state, byte for byte, and nothing the application erased', async () => {
    const { id, users } = migration('rberase', ['u']);
    const u = at(users, 0);
    for (const n of ['k1', 'k2', 'k3', 'k4']) await app.write('sg', u, `${n}.txt`, `${n} in Singapore, first version`);
    for (const n of ['k5', 'k6']) await app.write('us', u, `${n}.txt`, `${n} in the US`);
    await app.writeEverywhere(SOURCES, u, 'dup.txt', 'the same bytes in both sources');
    expectExit(await runCli(['start', '--plan', plan(id, [u], { sourceDisposition: 'delete-after-verify', gracePeriod: '0s' }), '--wait']), 0);

    // Between passes: two erasures and an edit, carried over by a sync.
    const erased = [await app.erase('sg', u, 'k2.txt'), await app.erase('us', u, 'k5.txt')];
    await app.write('sg', u, 'k3.txt', 'k3, edited: the version a rollback must bring back');
    expectExit(await runCli(['sync', id, '--wait']), 0);
    await expectInStep(u);
    // Right before the cut-over: one more erasure, carried by the final pass.
    erased.push(await app.erase('sg', u, 'k4.txt'));
    const finalBySite = new Map(SOURCES.map((s) => [s, asObject(app.recorded(s, u))]));

    expectExit(await runCli(['cutover', id, '--user', u, '--wait']), 0);
    for (const site of SOURCES) expect(await listKeys(c, site, userPrefix(u))).toEqual([]);
    expect((await manifest(id, u)).erasures.map((e) => e.key).sort()).toEqual([...erased].sort());

    const rb = await runCli(['rollback', id, '--user', u, '--wait']);
    expectExit(rb, 0);
    // Each source holds exactly what it held at the cut-over: what Clover deleted there (the duplicate in both), nothing erased.
    for (const site of SOURCES) expect({ site, state: asObject(await siteState(c, site, u)) }).toEqual({ site, state: finalBySite.get(site) });
    for (const key of erased) {
      expect(lines(rb).some((l) => l.includes('ERASED') && l.includes(key))).toBe(true); // reported, not a failure
      expect(await get(c, 'eu-ie', key)).toBeUndefined();
    }
    expect(await listKeys(c, 'eu-ie', userPrefix(u))).toEqual([]); // the EU copies are removed
  }, TEST_MS);

  it('an EU object changed by someone else between passes is neither overwritten nor deleted by a sync, and is reported', async () => {
    const { id, users } = migration('foreign', ['u']);
    const u = at(users, 0);
    const changed = await app.write('sg', u, 'changed.txt', 'changed, first version');
    const gone = await app.write('sg', u, 'gone.txt', 'gone, erased at the source later');
    await app.write('sg', u, 'same.txt', 'untouched');
    expectExit(await runCli(['start', '--plan', plan(id, [u]), '--wait']), 0);
    await expectInStep(u);

    // Someone else rewrites two EU copies; the application changes one source and erases the other, and adds one.
    const foreign = new Map([[changed, 'someone else wrote this over the EU copy'], [gone, 'someone else wrote this one too']]);
    for (const [key, body] of foreign) await put(c, 'eu-ie', key, body);
    await app.write('sg', u, 'changed.txt', 'changed at the source as well');
    await app.erase('sg', u, 'gone.txt');
    const added = await app.write('sg', u, 'added.txt', 'new at the source');

    const s = await runCli(['sync', id, '--wait']);
    expectExit(s, 1);
    for (const key of foreign.keys()) expect({ key, named: s.stdout.includes(key) }).toEqual({ key, named: true });
    const untouched = async () => {
      for (const [key, body] of foreign) expect({ key, body: (await get(c, 'eu-ie', key))?.body.toString() }).toEqual({ key, body });
    };
    await untouched();
    // The rest of the pass was done.
    expect(sha256((await get(c, 'eu-ie', added))!.body)).toBe(app.expected(u).get(added));
    expect(sha256((await get(c, 'eu-ie', app.key(u, 'same.txt')))!.body)).toBe(app.expected(u).get(app.key(u, 'same.txt')));
    const m = await manifest(id, u);
    expect(m.generation).toBe(2);
    expect(m.conflicts.filter((x) => x.kind === 'target-changed').map((x) => x.key).sort()).toEqual([...foreign.keys()].sort());

    // A later pass still leaves them alone; the EU copy at \`changed\` still differs from its source, so still not in step.
    const again = await runCli(['sync', id, '--wait']);
    expectExit(again, 1);
    expect(again.stdout).toContain(changed);
    await untouched();
  }, TEST_MS);

  it('syncInterval: passes happen on their own, and the user workflow\'s history stays bounded over many passes', async () => {
    const { id, users } = migration('interval', ['u']);
    const u = at(users, 0);
    await app.write('sg', u, 'a.txt', 'present from the start');
    // The migration and the users it starts continue as new past 60 events (MigrationInput.historyLimit,
    // which the migration hands on to each user's UserMigrationInput.historyLimit): a few passes per run.
    const historyLimit = 60;
    const p = plan(id, [u], { syncInterval: '1s' });
    await startWithHistoryLimit(client, p, historyLimit);
    expectExit(await runCli(['start', '--plan', p, '--wait']), 0); // attaches: returns once the first pass is committed
    const wid = userWorkflowId(id, u);
    const firstRun = (await client.workflow.getHandle(wid).describe()).runId;

    // No sync command from here on.
    const key = await app.write('us', u, 'b.txt', 'written while the user waits in sync');
    const afterWrite = await generation(id, u); // any pass committing afterWrite + 2 or later started after the write
    await waitUntil(
      'a pass of its own copied the new object',
      async () => ({ generation: await generation(id, u), eu: (await get(c, 'eu-ie', key))?.body.toString() }),
      (v) => v.generation >= Math.max(3, afterWrite + 2) && v.eu === 'written while the user waits in sync',
      { timeoutMs: 60_000, everyMs: 250 },
    );

    // Many passes: the workflow continues as new, its history never grows past the limit by more than a pass.
    const from = await generation(id, u);
    const runs = new Set([firstRun]);
    let longest = 0;
    const seen = await waitUntil(
      'ten more passes, over more than one run of the user workflow',
      async () => {
        const d = await client.workflow.getHandle(wid).describe();
        runs.add(d.runId);
        longest = Math.max(longest, d.historyLength);
        return { generation: await generation(id, u), runs: runs.size, longest };
      },
      (v) => v.generation >= from + 10 && v.runs >= 2,
      { timeoutMs: 120_000, everyMs: 200 },
    );
    expect(seen.runs).toBeGreaterThanOrEqual(2);
    expect(longest).toBeLessThanOrEqual(historyLimit + 100);
    await expectInStep(u);
    const m = await manifest(id, u);
    expect(m.conflicts).toEqual([]);
    expect(m.pass).toMatchObject({ kind: 'delta', copied: 0, overwritten: 0, erased: 0, conflicts: 0 });
  }, 240_000);
});
