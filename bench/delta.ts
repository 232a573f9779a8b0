import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import pLimit from 'p-limit';
import { CloverError, ExitCode, InputError } from '../src/config/errors';
import type { PlanSettings } from '../src/config/plan';
import { loadSitesFile, type Sites } from '../src/config/sites';
import { startMigration } from '../src/operator/migrations';
import { accessLogPath, freePorts, startStack, stopStack } from '../src/stack/local-stack';
import { ensureTools } from '../src/stack/tools';
import { createSiteClients, destroySiteClients, type Site, type SiteClients } from '../src/storage/clients';
import { SA, migrationWorkflowId, syncUpdate, userWorkflowId, type PassReport } from '../src/workflows/definitions';
import { out } from '../scripts/common';
import { ROOT, benchSite, benchWorkerEnv, ensurePackage, objectStream, procStats, rcloneEnv, startBenchWorker, timed, workerPolling } from './bench';

/**
 * `clover bench-delta`: what a delta pass costs a user with many objects of which a few changed, side by side
 * with `rclone sync --checksum` on an identical copy, in the same run, on a private local stack whose S3
 * sites write access logs (requests are counted from them, by operation and site).
 */

const SIZE = 4096;
const SOURCE = 'sg';
const TARGET = 'eu-ie';
const CLOVER_USER = 'bench-delta-clover';
const RCLONE_USER = 'bench-delta-rclone';
const OBJECTS_PER_USER = 16;

/** Requests by site, then by S3 operation (versitygw's name without its `s3_` prefix). */
type Requests = Record<string, Record<string, number>>;

interface Pass {
  tool: 'clover' | 'rclone';
  /** What the pass is: the first copy of everything, or a delta pass after `changed` changes. */
  pass: 'first' | 'delta';
  changed: number;
  wallS?: number;
  requests?: Requests;
  /** The Clover worker's CPU seconds during the pass, or rclone's own. */
  cpuS?: number;
  /** Clover's pass report, as `clover sync --wait` shows it. */
  report?: PassReport;
  /** Why the pass was not measured. */
  skipped?: string;
}

const key = (user: string, j: number) => `users/${user}/o-${String(j).padStart(6, '0')}`;

/** Byte offsets of each site's access log: the start of a measured window. */
type Mark = Record<string, number>;

function markLogs(dir: string, sites: string[]): Mark {
  return Object.fromEntries(sites.map((s) => [s, existsSync(accessLogPath(dir, s)) ? statSync(accessLogPath(dir, s)).size : 0]));
}

function readFrom(path: string, offset: number): string {
  if (!existsSync(path)) return '';
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Requests each site logged since `mark`, by operation. Waits until the logs stop growing first: a line is
 * written when its request completes, which may be just after the client saw the answer.
 */
async function requestsSince(dir: string, mark: Mark): Promise<Requests> {
  let sizes = '';
  for (let i = 0; i < 50; i++) {
    const now = JSON.stringify(markLogs(dir, Object.keys(mark)));
    if (now === sizes) break;
    sizes = now;
    await sleep(300);
  }
  const result: Requests = {};
  for (const [site, offset] of Object.entries(mark)) {
    const ops: Record<string, number> = {};
    for (const line of readFrom(accessLogPath(dir, site), offset).split('\n')) {
      if (line.trim() === '') continue;
      // A line without an operation is counted too, so a change of the log's format shows in the table.
      const op = line.split(' ').find((t) => t.startsWith('s3_'))?.slice(3) ?? 'unparsed';
      ops[op] = (ops[op] ?? 0) + 1;
    }
    result[site] = ops;
  }
  return result;
}

const total = (ops: Record<string, number> | undefined) => Object.values(ops ?? {}).reduce((a, b) => a + b, 0);
const fmtOps = (ops: Record<string, number> | undefined) => {
  const e = Object.entries(ops ?? {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return e.length === 0 ? 'none' : e.map(([op, n]) => `${op} ${n}`).join(', ');
};

async function seedUser(site: Site, user: string, n: number): Promise<void> {
  const limit = pLimit(32);
  await Promise.all(Array.from({ length: n }, (_, j) => limit(() =>
    site.s3.send(new PutObjectCommand({ Bucket: site.bucket, Key: key(user, j), Body: objectStream(j + 1, SIZE), ContentLength: SIZE })))));
}

const OVERWRITTEN = 5;
const ADDED = 3;
const ERASED = 2;
const CHANGES = OVERWRITTEN + ADDED + ERASED;

/** The same changes to a user's objects: existing keys overwritten and erased spread over the key space, new keys after the last. */
async function changeUser(site: Site, user: string, n: number): Promise<void> {
  const at = (k: number) => Math.floor((k * n) / (OVERWRITTEN + ERASED));
  for (let k = 0; k < OVERWRITTEN; k++) {
    await site.s3.send(new PutObjectCommand({ Bucket: site.bucket, Key: key(user, at(k)), Body: objectStream(1_000_000 + at(k), SIZE), ContentLength: SIZE }));
  }
  for (let k = 0; k < ADDED; k++) {
    await site.s3.send(new PutObjectCommand({ Bucket: site.bucket, Key: key(user, n + k), Body: objectStream(2_000_000 + k, SIZE), ContentLength: SIZE }));
  }
  for (let k = OVERWRITTEN; k < OVERWRITTEN + ERASED; k++) await site.s3.send(new DeleteObjectCommand({ Bucket: site.bucket, Key: key(user, at(k)) }));
}

/** Key → ETag and size under a prefix. */
async function listing(site: Site, prefix: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  let token: string | undefined;
  do {
    const r = await site.s3.send(new ListObjectsV2Command({ Bucket: site.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) m.set(o.Key!.slice(prefix.length), `${o.ETag} ${o.Size}`);
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return m;
}

/** Throws unless the target holds exactly the source's objects under the user's prefix (same keys, ETags, sizes). */
async function checkInStep(clients: SiteClients, user: string, after: string): Promise<void> {
  const prefix = `users/${user}/`;
  const [src, dst] = await Promise.all([listing(clients.get(SOURCE)!, prefix), listing(clients.get(TARGET)!, prefix)]);
  const bad = [...new Set([...src.keys(), ...dst.keys()])].filter((k) => src.get(k) !== dst.get(k));
  if (bad.length > 0) {
    throw new CloverError(`after ${after}, ${TARGET} differs from ${SOURCE} under ${prefix} at ${bad.length} key(s), first ${bad.slice(0, 3).join(', ')}`, ExitCode.failures);
  }
}

function requireRclone(): string {
  try {
    ensurePackage('rclone', 'rclone');
    return execFileSync('rclone', ['version']).toString().split('\n')[0] ?? 'rclone';
  } catch (err) {
    throw new CloverError(
      `the peer tool rclone is not installed and installing it with apt-get failed (${(err as Error).message.split('\n')[0]}); ` +
        'install rclone (https://rclone.org/install/) and run again',
      ExitCode.unreachable,
    );
  }
}

class OperatorModeMissing extends Error {}

/**
 * Waits until the user's workflow reports phase `in-sync` (its first pass committed, operator cut-over). A
 * user that ends instead (a workflow without operator cut-over) or fails throws.
 */
async function waitInSync(client: Client, migrationId: string, userId: string, timeoutMs: number): Promise<void> {
  const handle = client.workflow.getHandle(userWorkflowId(migrationId, userId));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const d = await handle.describe();
      const phase = d.typedSearchAttributes.get(SA.phase);
      if (phase === 'in-sync') return;
      if (phase === 'failed' || phase === 'cancelled' || (d.status.name !== 'RUNNING' && phase !== 'done')) {
        throw new CloverError(`the bench user's first pass ended in phase ${phase ?? 'unknown'} (workflow ${d.status.name}); see the worker log`, ExitCode.failures);
      }
      if (phase === 'done' || d.status.name !== 'RUNNING') {
        throw new OperatorModeMissing(
          `the user's workflow finished its first pass in phase "${phase}" instead of waiting in "in-sync": this build's workflows ignore "cutover": "operator", so no delta pass can be sent`,
        );
      }
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      const m = await client.workflow.getHandle(migrationWorkflowId(migrationId)).describe();
      if (m.status.name !== 'RUNNING') throw new CloverError(`migration ${migrationId} ended (${m.status.name}) before its user started`, ExitCode.failures);
    }
    await sleep(200);
  }
  throw new CloverError(`the bench user did not reach phase in-sync within ${Math.round(timeoutMs / 1000)} s`, ExitCode.failures);
}

export function registerBenchDelta(program: Command): void {
  program
    .command('bench-delta')
    .description('benchmark a delta pass (a user with many objects, 10 changed) against rclone sync --checksum; writes BENCHMARKS-delta.md')
    .option('--objects <n>', 'objects of the user (4 KiB each); BENCHMARKS-delta.md is only written for the default', (v) => Number(v), 10_000)
    .action(async (o: { objects: number }) => {
      const n = o.objects;
      if (!Number.isInteger(n) || n < 10) throw new InputError(`--objects must be a whole number of at least 10, not ${JSON.stringify(o.objects)}`);
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
      const rcloneVersion = requireRclone();
      ensurePackage('/usr/bin/time', 'time');
      out(`peer tool: ${rcloneVersion}`);
      const dir = mkdtempSync(join(tmpdir(), 'clover-bench-delta-'));
      out(`bench stack and logs: ${dir}`);
      const passes: Pass[] = [];
      let ok = false;
      const logSites = [SOURCE, TARGET];
      let openClients: SiteClients | undefined;
      let connection: Connection | undefined;
      let stopWorker = async () => undefined as unknown;
      // Ends what this run started, once: on the way out, and on Ctrl-C (the stack's servers run detached).
      let cleaned: Promise<void> | undefined;
      const cleanup = () => (cleaned ??= (async () => {
        await stopWorker().catch(() => undefined);
        await connection?.close().catch(() => undefined);
        if (openClients) destroySiteClients(openClients);
        await stopStack(dir, { wipe: true });
        if (ok) rmSync(dir, { recursive: true, force: true });
        else out(`kept the bench's logs (worker, access logs) in ${dir}/logs`);
      })());
      // Kept installed while the cleanup runs: a second signal must not kill the bench half-way through it.
      const onSignal = () => void cleanup().finally(() => process.exit(130));
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const state = await startStack({ dir, tools: await ensureTools(), ports: await freePorts(), say: out, accessLogs: true });
        const sites: Sites = loadSitesFile(state.sitesFile);
        const clients = createSiteClients(sites, { maxSockets: 64 });
        openClients = clients;
        connection = await Connection.connect({ address: state.temporalAddress });
        const client = new Client({ connection });
        const env = await benchWorkerEnv(state.temporalAddress);
        const workerLog = join(dir, 'logs', 'bench-worker.log');
        const taskQueue = `bench-delta-${Date.now()}`;
        const { worker, exited } = startBenchWorker({ sitesFile: state.sitesFile, env, workerLog }, taskQueue);
        stopWorker = async () => {
          if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGTERM');
          await Promise.race([exited, sleep(15_000).then(() => worker.kill('SIGKILL'))]);
        };
        const workerCpu = () => procStats(worker.pid!).cpuS;
        const alive = <T>(p: Promise<T>) => Promise.race([p, exited.then(() => Promise.reject(new Error(`the bench worker exited early; see ${workerLog}`)))]);

        out(`seeding ${n} objects of ${SIZE / 1024} KiB for each of ${CLOVER_USER} and ${RCLONE_USER} in ${SOURCE}...`);
        await seedUser(clients.get(SOURCE)!, CLOVER_USER, n);
        await seedUser(clients.get(SOURCE)!, RCLONE_USER, n);
        await workerPolling(client, taskQueue, exited, workerLog); // rejects if the worker exits first

        // Clover's first pass, up to the user waiting in `in-sync`.
        const migrationId = `bench-delta-${Date.now().toString(36)}`;
        const settings = {
          migrationId, sources: [SOURCE], routing: { default: TARGET, byCountry: {} }, userPrefix: 'users/{userId}/', verify: 'checksum',
          conflictPolicy: 'newest-wins', concurrency: { users: 1, objectsPerUser: OBJECTS_PER_USER }, sourceDisposition: 'keep', gracePeriod: '7d',
          // Not in this build's plan schema until operator cut-over lands; a workflow without it completes the user instead.
          cutover: 'operator',
        } as PlanSettings;
        out(`clover: first pass of ${n} objects...`);
        let mark = markLogs(dir, logSites);
        let cpu0 = workerCpu();
        let t0 = Date.now();
        await startMigration(client, sites, { settings, usersSource: 'bench-delta', users: [{ userId: CLOVER_USER, country: 'DE' }] }, taskQueue);
        let operatorMode = true;
        try {
          await alive(waitInSync(client, migrationId, CLOVER_USER, Math.max(600_000, n * 100)));
        } catch (err) {
          if (!(err instanceof OperatorModeMissing)) throw err;
          operatorMode = false;
          out(`clover: ${err.message}`);
        }
        passes.push({ tool: 'clover', pass: 'first', changed: n, wallS: (Date.now() - t0) / 1000, cpuS: workerCpu() - cpu0, requests: await requestsSince(dir, mark) });
        await checkInStep(clients, CLOVER_USER, "Clover's first pass");

        const rcloneArgs = [
          'sync', '--checksum', `SG:${benchSite(sites, SOURCE).bucket}/users/${RCLONE_USER}`, `EUIE:${benchSite(sites, TARGET).bucket}/users/${RCLONE_USER}`,
          '--transfers', String(OBJECTS_PER_USER), '--checkers', String(OBJECTS_PER_USER * 2), '--retries', '1',
        ];
        const rclone = async (pass: 'first' | 'delta', changed: number) => {
          const m0 = markLogs(dir, logSites);
          const m = await timed('rclone', rcloneArgs, rcloneEnv(sites, [SOURCE, TARGET]));
          if (m.code !== 0) throw new CloverError(`rclone exited ${m.code} (its output is above)`, ExitCode.failures);
          passes.push({ tool: 'rclone', pass, changed, wallS: m.wallS, cpuS: m.cpuS, requests: await requestsSince(dir, m0) });
          await checkInStep(clients, RCLONE_USER, `rclone's ${pass} pass`);
        };
        out(`rclone: first sync of ${n} objects...`);
        await rclone('first', n);

        out(`changing ${CHANGES} objects of each user in ${SOURCE}: ${OVERWRITTEN} overwritten, ${ADDED} new, ${ERASED} erased...`);
        await changeUser(clients.get(SOURCE)!, CLOVER_USER, n);
        await changeUser(clients.get(SOURCE)!, RCLONE_USER, n);

        const clover = async (changed: number) => {
          if (!operatorMode) {
            passes.push({ tool: 'clover', pass: 'delta', changed, skipped: 'no operator cut-over in this build' });
            return;
          }
          mark = markLogs(dir, logSites);
          cpu0 = workerCpu();
          t0 = Date.now();
          const report = await alive(client.workflow.getHandle(userWorkflowId(migrationId, CLOVER_USER)).executeUpdate(syncUpdate));
          const wallS = (Date.now() - t0) / 1000;
          const cpuS = workerCpu() - cpu0;
          passes.push({ tool: 'clover', pass: 'delta', changed, wallS, cpuS, report, requests: await requestsSince(dir, mark) });
          if (report.error || !report.inStep) throw new CloverError(`Clover's delta pass did not end in step: ${JSON.stringify(report)}`, ExitCode.failures);
          await checkInStep(clients, CLOVER_USER, "Clover's delta pass");
        };
        for (const changed of [CHANGES, 0]) {
          out(`clover: delta pass (${changed} changed)...`);
          await clover(changed);
          out(`rclone: sync --checksum (${changed} changed)...`);
          await rclone('delta', changed);
        }
        ok = true;
      } catch (err) {
        if (passes.length > 0) out(`\nmeasured before the failure:\n${table(passes).join('\n')}\n`);
        throw err;
      } finally {
        await cleanup();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }

      const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, ${Math.round(totalmem() / 1024 ** 3)} GiB RAM, Node ${process.version}; ${rcloneVersion}`;
      const command = `npm run bench:delta${n === 10_000 ? '' : ` -- --objects ${n}`}`;
      const md = report({ date: new Date().toISOString(), command, machine, objects: n, passes });
      out('');
      out(md);
      const complete = passes.every((p) => !p.skipped);
      if (complete && n === 10_000) {
        writeFileSync(join(ROOT, 'BENCHMARKS-delta.md'), md);
        writeFileSync(join(ROOT, 'bench', 'results-delta.json'), JSON.stringify({ command, machine, objects: n, passes }, null, 2) + '\n');
        out('wrote BENCHMARKS-delta.md and bench/results-delta.json');
      } else if (!complete) {
        throw new CloverError(`Clover's delta passes were not measured (${passes.find((p) => p.skipped)?.skipped}); BENCHMARKS-delta.md not written`, ExitCode.failures);
      } else {
        out(`BENCHMARKS-delta.md is only written by a run of 10,000 objects (\`npm run bench:delta\`)`);
      }
    });
}

const f = (x: number | undefined, d = 2) => (x === undefined ? 'n/a' : x.toFixed(d));

function table(passes: Pass[]): string[] {
  const row = (p: Pass) => p.skipped
    ? `| ${p.tool} | ${p.pass} | ${p.changed} | not measured: ${p.skipped} | | | |`
    : `| ${p.tool} | ${p.pass === 'first' ? 'first (copy all)' : 'delta'} | ${p.changed} | ${f(p.wallS)} | ${total(p.requests?.[SOURCE])}: ${fmtOps(p.requests?.[SOURCE])} | ${total(p.requests?.[TARGET])}: ${fmtOps(p.requests?.[TARGET])} | ${f(p.cpuS)} |`;
  return [
    `| tool | pass | changed objects | wall s | requests at ${SOURCE} | requests at ${TARGET} | CPU s |`,
    '|---|---|---:|---:|---|---|---:|',
    ...passes.map(row),
  ];
}

function report(r: { date: string; command: string; machine: string; objects: number; passes: Pass[] }): string {
  const pages = Math.ceil(r.objects / 1000);
  const lines = [
    '# Delta pass benchmark',
    '',
    `Generated by \`${r.command}\` on ${r.date}. Machine: ${r.machine}.`,
    '',
    `Data set: one user of ${r.objects} objects of ${SIZE / 1024} KiB in site \`${SOURCE}\`, copied to \`${TARGET}\` (two versitygw servers on loopback, one disk).`,
    `Clover migrates it with \`"cutover": "operator"\` (verify checksum, ${OBJECTS_PER_USER} objects in flight): after its first pass the user waits in \`in-sync\`,`,
    'and each delta pass is one `sync` update of the user\'s workflow (what `clover sync --wait` sends), timed from the update to its report;',
    'its first pass is timed from the migration\'s start to the user reaching `in-sync` (polled every 0.2 s).',
    `The peer is \`rclone sync --checksum\` (--transfers ${OBJECTS_PER_USER}) of an identical copy under another prefix, in the same run.`,
    `Then the same ${CHANGES} changes are made to both in \`${SOURCE}\` (${OVERWRITTEN} objects overwritten, ${ADDED} new, ${ERASED} erased), and each tool syncs; then each syncs again with nothing changed.`,
    'Requests are counted from the sites\' S3 access logs (one line per request), by operation; "CPU s" is the Clover worker\'s CPU during the pass, or rclone\'s own.',
    'After every pass the bench checks that the target holds exactly the source\'s objects (keys, ETags, sizes).',
    '',
    ...table(r.passes),
    '',
  ];
  const get = (tool: string, changed: number) => r.passes.find((p) => p.tool === tool && p.pass === 'delta' && p.changed === changed && !p.skipped);
  const op = (p: Pass | undefined, site: string, name: string) => p?.requests?.[site]?.[name] ?? 0;
  const c = get('clover', CHANGES);
  const c0 = get('clover', 0);
  const rc = get('rclone', CHANGES);
  const r0 = get('rclone', 0);
  const lists = (p: Pass | undefined, site: string) => Object.entries(p?.requests?.[site] ?? {}).filter(([k]) => k.startsWith('List')).reduce((a, [, v]) => a + v, 0);
  lines.push('What it means:', '');
  if (c) {
    lines.push(
      `- Clover, ${CHANGES} of ${r.objects} changed: ${f(c.wallS)} s; at ${SOURCE} ${lists(c, SOURCE)} list requests (${pages} page(s) of 1,000 for the user) and ${op(c, SOURCE, 'GetObject')} GETs for the ${OVERWRITTEN + ADDED} new or overwritten objects; ` +
        `at ${TARGET} ${lists(c, TARGET)} list requests, ${op(c, TARGET, 'PutObject')} PUTs, ${op(c, TARGET, 'DeleteObject')} DELETEs, ${total(c.requests?.[TARGET])} requests in all (manifest and staging included). ` +
        (op(c, SOURCE, 'GetObject') <= OVERWRITTEN + ADDED ? `The ${r.objects - OVERWRITTEN - ERASED} unchanged objects were not read.` : `More GETs than changed objects: some unchanged objects were read.`) + (c.report ? ` Its report: ${c.report.copied} copied, ${c.report.overwritten} overwritten, ${c.report.erased} erased, ${c.report.unchanged} unchanged, generation ${c.report.generation}.` : ''),
    );
  }
  if (rc) lines.push(`- rclone sync --checksum, same change: ${f(rc.wallS)} s, ${total(rc.requests?.[SOURCE])} requests at ${SOURCE} and ${total(rc.requests?.[TARGET])} at ${TARGET}.`);
  if (c && rc) lines.push(`- Side by side: Clover ${total(c.requests?.[SOURCE]) + total(c.requests?.[TARGET])} requests in ${f(c.wallS)} s, rclone ${total(rc.requests?.[SOURCE]) + total(rc.requests?.[TARGET])} in ${f(rc.wallS)} s (${f((c.wallS ?? NaN) / (rc.wallS ?? NaN))}× rclone's wall time).`);
  if (c0 || r0) lines.push(`- Nothing changed: Clover ${c0 ? `${total(c0.requests?.[SOURCE]) + total(c0.requests?.[TARGET])} requests in ${f(c0.wallS)} s` : 'not measured'}, rclone ${r0 ? `${total(r0.requests?.[SOURCE]) + total(r0.requests?.[TARGET])} requests in ${f(r0.wallS)} s` : 'not measured'}.`);
  lines.push('', `Exact command: \`${r.command}\`.`, '');
  return lines.join('\n');
}
