import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createWriteStream, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import type { Command } from 'commander';
import pLimit from 'p-limit';
import { loadSitesFile, type Sites } from '../src/config/sites';
import { prng } from '../src/demo/seed';
import { startMigration } from '../src/operator/migrations';
import { InputError } from '../src/config/errors';
import { freePorts, startStack, stopStack, type ServiceRecord } from '../src/stack/local-stack';
import { ensureTools } from '../src/stack/tools';
import { createSiteClients, destroySiteClients, type Site, type SiteClients } from '../src/storage/clients';
import { SEARCH_ATTRIBUTE_NAMES } from '../src/domain/names';
import { migrationWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { out } from '../scripts/common';
import { historyCost, sumCosts, type HistoryCost } from './actions';
import { ensureWorkflowBundle } from '../src/worker/workflow-bundle';

export const ROOT = resolve(__dirname, '..');
export const MiB = 1024 * 1024;

interface DataSet {
  name: string;
  users: number;
  perUser: number;
  size: number;
  /** Tools not run on this set (to keep the whole bench within about 40 minutes). */
  skip?: string[];
}

interface Measure {
  wallS: number;
  cpuS: number;
  rssMiB: number;
  /** CPU seconds the stack's servers (both versitygw sites, Temporal) used during the run. */
  serversCpuS?: number;
  /** Clover only: Temporal events and billable actions per user, from the run's histories. */
  cost?: UsersCost;
  /** Clover only: the worker's CPU seconds from its start until it polled its task queue (not in `cpuS`). */
  startupCpuS?: number;
}

interface Row {
  dataset: string;
  tool: string;
  runs: Measure[];
  objects: number;
  bytes: number;
  median: { wallS: number; objectsPerS: number; mibPerS: number; cpuSPerGiB: number; rssMiB: number; serversCpuSPerGiB?: number };
  spreadPct: number;
  ratioToRclone?: number;
  /** Clover only: events and actions per user (of the first run). */
  cost?: UsersCost;
}

const FULL: DataSet[] = [
  { name: 'small', users: 100, perUser: 200, size: 16 * 1024 },
  { name: 'medium', users: 20, perUser: 100, size: MiB },
  { name: 'large', users: 4, perUser: 1, size: 1024 * MiB },
  // The plain SDK loop is not run on it: the small set already compares it on the same objects.
  { name: 'heavy', users: 1, perUser: 20_000, size: 16 * 1024, skip: ['sdk loop'] },
];
const QUICK: DataSet[] = [
  { name: 'small', users: 20, perUser: 100, size: 16 * 1024 },
  { name: 'medium', users: 4, perUser: 50, size: MiB },
  { name: 'large', users: 1, perUser: 1, size: 256 * MiB },
  { name: 'heavy', users: 1, perUser: 2_000, size: 16 * 1024, skip: ['sdk loop'] },
];

/** Workflow runs whose histories are read to measure a migration's events and actions, at most (a sample beyond). */
const HISTORIES_READ = 400;

/** Events and billable actions of a migration, per user: every run of the migration plus (a sample of) its users' runs. */
export interface UsersCost {
  users: number;
  runs: number;
  sampled: number;
  eventsPerUser: number;
  actionsPerUser: number;
  byKindPerUser: Record<string, number>;
  maxHistory: number;
}

async function migrationCost(client: Client, migrationId: string, users: number): Promise<UsersCost> {
  const parents: { workflowId: string; runId: string }[] = [];
  const children: { workflowId: string; runId: string }[] = [];
  let maxHistory = 0;
  const self = migrationWorkflowId(migrationId);
  for await (const e of client.workflow.list({ query: `${SEARCH_ATTRIBUTE_NAMES.migrationId} = "${migrationId}"` })) {
    maxHistory = Math.max(maxHistory, e.historyLength);
    (e.workflowId === self ? parents : children).push({ workflowId: e.workflowId, runId: e.runId });
  }
  const step = Math.max(1, Math.ceil(children.length / HISTORIES_READ));
  const sample = children.filter((_, i) => i % step === 0);
  const limit = pLimit(8);
  const cost = (r: { workflowId: string; runId: string }) => limit(async () => historyCost((await client.workflow.getHandle(r.workflowId, r.runId).fetchHistory()).events ?? []));
  const parentCost = sumCosts(await Promise.all(parents.map(cost)));
  const childCost = sumCosts(await Promise.all(sample.map(cost)));
  const scale = sample.length ? children.length / sample.length : 0;
  const per = (p: number, c: number) => (p + c * scale) / users;
  const kinds = new Set([...Object.keys(parentCost.byKind), ...Object.keys(childCost.byKind)]);
  return {
    users, runs: parents.length + children.length, sampled: parents.length + sample.length, maxHistory,
    eventsPerUser: per(parentCost.events, childCost.events), actionsPerUser: per(parentCost.actions, childCost.actions),
    byKindPerUser: Object.fromEntries([...kinds].map((k) => [k, per(parentCost.byKind[k] ?? 0, childCost.byKind[k] ?? 0)])),
  };
}
export type { HistoryCost };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Deterministic bytes from the seed: a 1 MiB block per object, varied per chunk, streamed. */
export function objectStream(seed: number, size: number): Readable {
  const rnd = prng(seed);
  const block = Buffer.alloc(Math.min(size, MiB));
  for (let i = 0; i + 4 <= block.length; i += 4) block.writeUInt32LE((rnd() * 2 ** 32) >>> 0, i);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return this.push(null);
      const n = Math.min(block.length, size - sent);
      const b = Buffer.from(block.subarray(0, n));
      b.writeUInt32LE(sent / MiB, 0);
      sent += n;
      this.push(b);
    },
  });
}

export function ensurePackage(cmd: string, pkg: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  } catch {
    out(`installing ${pkg} (apt-get)...`);
    execFileSync('sh', ['-c', `apt-get update -qq && apt-get install -y -qq ${pkg}`], { stdio: 'inherit' });
  }
}

/** Runs a command under GNU time: wall seconds, CPU seconds (user+sys), peak RSS. */
export function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Measure & { code: number }> {
  const statsFile = join(tmpdir(), `clover-bench-${process.pid}-${Math.random().toString(36).slice(2)}.time`);
  const fullEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  const child = spawn('/usr/bin/time', ['-o', statsFile, '-f', '%e %U %S %M', cmd, ...args], { env: fullEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise<Measure & { code: number }>((ok, fail) => {
    child.on('close', (code) => {
      try {
        const last = readFileSync(statsFile, 'utf8').trim().split('\n').at(-1) ?? '';
        const [e = NaN, u = NaN, s = NaN, m = NaN] = last.split(' ').map(Number);
        rmSync(statsFile, { force: true });
        if (code !== 0) process.stderr.write(stderr.slice(-2000));
        ok({ wallS: e, cpuS: u + s, rssMiB: m / 1024, code: code ?? -1 });
      } catch (err) {
        fail(new Error(`${cmd} failed (${code}): ${stderr.slice(-2000)} ${(err as Error).message}`));
      }
    });
  });
}

let clockTicks: number | undefined;

/** CPU seconds (user + system, all threads) and peak RSS of a live process, from /proc. */
export function procStats(pid: number): { cpuS: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const cpuS = (Number(fields[11]) + Number(fields[12])) / clockTicks;
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuS, rssMiB: hwm ? Number(hwm[1]) / 1024 : NaN };
}

/** CPU seconds used so far by each of the stack's server processes. */
function serversCpu(services: ServiceRecord[]): Record<string, number> {
  return Object.fromEntries(services.map((s) => [s.name, procStats(s.pid).cpuS]));
}

/** Ends a partial run (--sets / --tools) before the largest-object and many-users measurements. */
class Done extends Error {}

export async function clearPrefix(site: Site, prefix: string): Promise<void> {
  for (;;) {
    const r = await site.s3.send(new ListObjectsV2Command({ Bucket: site.bucket, Prefix: prefix, MaxKeys: 1000 }));
    const keys = (r.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length === 0) return;
    await site.s3.send(new DeleteObjectsCommand({ Bucket: site.bucket, Delete: { Objects: keys, Quiet: true } }));
  }
}

async function seed(clients: SiteClients, ds: DataSet): Promise<void> {
  const sg = clients.get('sg')!;
  const limit = pLimit(ds.size >= 64 * MiB ? 2 : 32);
  const jobs: Promise<unknown>[] = [];
  for (let u = 0; u < ds.users; u++) {
    for (let j = 0; j < ds.perUser; j++) {
      const key = `users/bench-${ds.name}-${String(u).padStart(5, '0')}/o-${String(j).padStart(5, '0')}`;
      jobs.push(limit(() => sg.s3.send(new PutObjectCommand({ Bucket: sg.bucket, Key: key, Body: objectStream(u * 100_000 + j + 1, ds.size), ContentLength: ds.size }))));
    }
  }
  await Promise.all(jobs);
}

interface Ctx {
  sites: Sites;
  sitesFile: string;
  clients: SiteClients;
  client: Client;
  env: NodeJS.ProcessEnv;
  concurrency: number;
  workerLog: string;
}

/**
 * Clover's concurrency for `objects` in flight in all, as rclone's --transfers: the worker moves at most
 * `objects` at once (`--max-objects-in-flight`, startBenchWorker), and each user may take all of them, so
 * while one user lists, stages, verifies or commits, the others' copies fill its share. A user of many
 * objects holds one of the worker's 8 activity slots while it copies, so at most 8 such users run at once;
 * a user of one object holds a slot only for its one short first-pass activity, so one-object users run
 * `objects` at once.
 */
function clover(ds: DataSet, objects: number): { users: number; objectsPerUser: number } {
  return { users: Math.max(1, Math.min(ds.users, ds.perUser === 1 ? objects : 8, objects)), objectsPerUser: objects };
}

/**
 * The environment of the bench's workers: the bench stack's Temporal, and no ready bundle named, so each
 * worker finds the workflow bundle on disk as an operator's worker finds it after its first start (built
 * here, before any worker is timed).
 */
export async function benchWorkerEnv(temporalAddress: string): Promise<NodeJS.ProcessEnv> {
  await ensureWorkflowBundle();
  return { TEMPORAL_ADDRESS: temporalAddress, CLOVER_WORKFLOW_BUNDLE: undefined, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
}

/**
 * Starts a worker on `taskQueue` as operators start it (`npx clover worker` runs bin/clover.js with the node
 * flags of its first line), its output appended to `workerLog`; `exited` settles when it exits.
 */
export function startBenchWorker(ctx: { sitesFile: string; env: NodeJS.ProcessEnv; workerLog: string; concurrency?: number }, taskQueue: string): { worker: ChildProcess; exited: Promise<unknown> } {
  const log = openSync(ctx.workerLog, 'a');
  // CLOVER_BENCH_CPU_PROF=<dir>: write a V8 CPU profile of each worker there (for "Where the time goes").
  const bin = join(ROOT, 'bin', 'clover.js');
  const prof = process.env.CLOVER_BENCH_CPU_PROF;
  // Profiled, node runs bin/clover.js with the flags and environment of its first line (`env -S VAR=… node --flag…`).
  const shebang = (readFileSync(bin, 'utf8').split('\n')[0] ?? '').split(' ');
  const [cmd, pre, shebangEnv] = prof
    ? [process.execPath, [...shebang.filter((a) => a.startsWith('--')), '--cpu-prof', '--cpu-prof-dir', prof, bin],
      Object.fromEntries(shebang.filter((a) => /^[A-Z_]+=/.test(a)).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]))]
    : [bin, [], {}];
  const limit = ctx.concurrency === undefined ? [] : ['--max-objects-in-flight', String(ctx.concurrency)];
  const worker = spawn(cmd, [...pre, 'worker', '--task-queue', taskQueue, '--sites', ctx.sitesFile, ...limit], {
    env: { ...process.env, ...ctx.env, ...shebangEnv, CLOVER_LOG_LEVEL: 'warn' }, stdio: ['ignore', log, log],
  });
  closeSync(log);
  return { worker, exited: new Promise((ok) => worker.once('exit', ok)) };
}

/**
 * Resolves once a worker polls `taskQueue` (it starts its workflow and activity pollers together), as an
 * operator's worker is already running when a migration starts; rejects if the worker exits first.
 */
export async function workerPolling(client: Client, taskQueue: string, exited: Promise<unknown>, workerLog: string): Promise<void> {
  let gone = false;
  void exited.then(() => { gone = true; });
  for (const deadline = Date.now() + 120_000; ;) {
    const r = await client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: taskQueue } });
    if ((r.pollers ?? []).length > 0) return;
    if (gone) throw new Error(`the bench worker exited before it polled its task queue; see ${workerLog}`);
    if (Date.now() > deadline) throw new Error(`the bench worker did not poll its task queue within 120 s; see ${workerLog}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function runClover(ctx: Ctx, ds: DataSet, verify: 'checksum' | 'full', runNo: number): Promise<Measure & { maxHistory?: number; cost?: UsersCost }> {
  const taskQueue = `bench-${Date.now()}`;
  const { worker, exited } = startBenchWorker(ctx, taskQueue);
  await workerPolling(ctx.client, taskQueue, exited, ctx.workerLog);
  // The worker's CPU from the migration's start to its result: a worker's start-up (about 1.5 CPU-s:
  // loading modules and the workflow bundle) is paid once per worker, not per GiB, and is reported apart.
  const startupCpuS = procStats(worker.pid!).cpuS;
  const migrationId = `bench-${ds.name}-${verify}-${runNo}-${Date.now().toString(36)}`;
  const users = Array.from({ length: ds.users }, (_, u) => ({ userId: `bench-${ds.name}-${String(u).padStart(5, '0')}`, country: 'DE' }));
  const t0 = Date.now();
  await startMigration(ctx.client, ctx.sites, {
    settings: {
      migrationId, sources: ['sg'], routing: { default: 'eu-ie', byCountry: {} }, userPrefix: 'users/{userId}/', verify,
      conflictPolicy: 'newest-wins', concurrency: clover(ds, ctx.concurrency),
      sourceDisposition: 'keep', gracePeriod: '7d', cutover: 'auto',
    },
    usersSource: 'bench', users,
  }, taskQueue);
  const r = (await Promise.race([
    ctx.client.workflow.getHandle(migrationWorkflowId(migrationId)).result(),
    exited.then(() => Promise.reject(new Error(`the bench worker exited early; see ${ctx.workerLog}`))),
  ])) as MigrationResult;
  const wallS = (Date.now() - t0) / 1000;
  if (r.phase !== 'completed' || r.counters.objects !== ds.users * ds.perUser) throw new Error(`bench migration ${migrationId} ended ${r.phase} with ${r.counters.objects} objects`);
  const m = procStats(worker.pid!);
  worker.kill('SIGTERM');
  await exited;
  const cost = await migrationCost(ctx.client, migrationId, ds.users);
  return { wallS, cpuS: m.cpuS - startupCpuS, rssMiB: m.rssMiB, maxHistory: cost.maxHistory, cost, startupCpuS };
}

/**
 * rclone's configuration for the named sites as environment variables: remote `SG` for site sg, `EUIE` for
 * eu-ie (the name upper-cased without dashes).
 */
export function rcloneEnv(sites: Sites, names: string[]): NodeJS.ProcessEnv {
  // A CA bundle named in the environment makes rclone's S3 client refuse its own transport; these endpoints are plain HTTP.
  const env: NodeJS.ProcessEnv = { AWS_CA_BUNDLE: undefined };
  for (const name of names) {
    const s = benchSite(sites, name);
    const v = name.replace('-', '').toUpperCase();
    Object.assign(env, {
      [`RCLONE_CONFIG_${v}_TYPE`]: 's3', [`RCLONE_CONFIG_${v}_PROVIDER`]: 'Other', [`RCLONE_CONFIG_${v}_ENDPOINT`]: s.endpoint,
      [`RCLONE_CONFIG_${v}_ACCESS_KEY_ID`]: s.credentials!.accessKeyId, [`RCLONE_CONFIG_${v}_SECRET_ACCESS_KEY`]: s.credentials!.secretAccessKey,
      [`RCLONE_CONFIG_${v}_REGION`]: s.region, [`RCLONE_CONFIG_${v}_FORCE_PATH_STYLE`]: 'true',
    });
  }
  return env;
}

export function benchSite(sites: Sites, name: string): Sites[string] {
  const s = sites[name];
  if (!s) throw new InputError(`the bench's sites file has no site ${name}`);
  return s;
}

async function runRclone(ctx: Ctx, ds: DataSet): Promise<Measure> {
  const env = rcloneEnv(ctx.sites, ['sg', 'eu-ie']);
  const site = (name: string) => benchSite(ctx.sites, name);
  const args = [
    'copy', `SG:${site('sg').bucket}/users`, `EUIE:${site('eu-ie').bucket}/users`, '--include', `/bench-${ds.name}-*/**`,
    '--transfers', String(ctx.concurrency), '--checkers', String(ctx.concurrency * 2), '--s3-chunk-size', '16M', '--s3-upload-concurrency', '4',
    '--no-check-dest', '--retries', '1',
  ];
  const m = await timed('rclone', args, env);
  if (m.code !== 0) throw new Error(`rclone exited ${m.code}`);
  return m;
}

async function runSdkLoop(ctx: Ctx, ds: DataSet): Promise<Measure> {
  const prof = process.env.CLOVER_BENCH_CPU_PROF; // the plain SDK loop's profile too, beside the workers'
  const m = await timed(process.execPath, [...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), '--import', 'tsx', join(ROOT, 'bench', 'sdk-copy.ts'), ctx.sitesFile, 'sg', 'eu-ie', `users/bench-${ds.name}-`, String(ctx.concurrency)], ctx.env);
  if (m.code !== 0) throw new Error(`sdk copy loop exited ${m.code}`);
  return m;
}

function row(ds: DataSet, tool: string, runs: Measure[]): Row {
  const objects = ds.users * ds.perUser;
  const bytes = objects * ds.size;
  const wall = median(runs.map((r) => r.wallS)) ?? NaN;
  const walls = runs.map((r) => r.wallS);
  return {
    dataset: ds.name, tool, runs, objects, bytes,
    median: {
      wallS: wall, objectsPerS: objects / wall, mibPerS: bytes / MiB / wall,
      cpuSPerGiB: (median(runs.map((r) => r.cpuS)) ?? NaN) / (bytes / 1024 / MiB), rssMiB: median(runs.map((r) => r.rssMiB)) ?? NaN,
      serversCpuSPerGiB: runs.every((r) => r.serversCpuS !== undefined) ? (median(runs.map((r) => r.serversCpuS ?? NaN)) ?? NaN) / (bytes / 1024 / MiB) : undefined,
    },
    spreadPct: runs.length > 1 ? ((Math.max(...walls) - Math.min(...walls)) / wall) * 100 : 0,
    cost: runs.find((r) => r.cost)?.cost,
  };
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('benchmark Clover against rclone and a plain SDK loop on the local stack; writes BENCHMARKS.md')
    .option('--quick', 'smaller data sets, one run each (a few minutes)')
    .option('--runs <n>', 'runs per data set and tool', (v) => Number(v))
    .option('--concurrency <n>', 'objects in flight per tool', (v) => Number(v), 16)
    .option('--largest-only', 'only measure the worker copying one large object (2 GiB; --quick 512 MiB), merged into the existing results')
    .option('--sets <names>', 'only these data sets (comma-separated: small,medium,large,heavy); results go to bench/results-partial.json, not BENCHMARKS.md')
    .option('--user-list <n>', 'only the user-list measurement: generate N users, stage them as `clover start` does and read them back as the worker does (peak RSS and time of each), merged into the existing results', (v) => Number(v))
    .option('--many-users-only', 'only the many-users measurement (10,000 users; --quick 500); partial results as with --sets')
    .option('--tools <names>', 'only these tools (comma-separated: clover-checksum,clover-full,rclone,sdk); partial results as with --sets')
    .action(async (o: { quick?: boolean; runs?: number; concurrency: number; largestOnly?: boolean; manyUsersOnly?: boolean; userList?: number; sets?: string; tools?: string }) => {
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
      ensurePackage('rclone', 'rclone');
      ensurePackage('/usr/bin/time', 'time');
      const rcloneVersion = execFileSync('rclone', ['version']).toString().split('\n')[0];
      out(`peer tool: ${rcloneVersion}`);
      const partial = !!(o.sets || o.tools || o.manyUsersOnly);
      const wantSets = o.sets?.split(',').map((x) => x.trim());
      const sets = (o.quick ? QUICK : FULL).filter((d) => !wantSets || wantSets.includes(d.name));
      const TOOL_NAMES: Record<string, string> = { 'clover-checksum': 'clover (checksum)', 'clover-full': 'clover (full)', rclone: 'rclone', sdk: 'sdk loop' };
      const wantTools = (o.tools?.split(',').map((x) => x.trim()) ?? Object.keys(TOOL_NAMES)).map((t) => {
        if (!TOOL_NAMES[t]) throw new InputError(`unknown tool ${JSON.stringify(t)} in --tools; use ${Object.keys(TOOL_NAMES).join(', ')}`);
        return TOOL_NAMES[t];
      });
      if (wantSets && sets.length !== wantSets.length) throw new InputError(`unknown data set in --sets ${JSON.stringify(o.sets)}; use small, medium, large, heavy`);
      const runs = o.runs ?? (o.quick ? 1 : 3);
      const manyUsers = o.quick ? 500 : 10_000;
      const largestSize = (o.quick ? 512 : 2048) * MiB;
      if (o.userList !== undefined && !(Number.isInteger(o.userList) && o.userList > 0)) throw new InputError('--user-list takes a positive whole number of users, e.g. 10000000');
      const resultsFile = join(ROOT, 'bench', partial ? 'results-partial.json' : o.quick ? 'results-quick.json' : 'results.json');
      const dir = mkdtempSync(join(tmpdir(), 'clover-bench-'));
      out(`bench stack and logs: ${dir}`);
      const tools = await ensureTools();
      const state = await startStack({ dir, tools, ports: await freePorts(), say: out });
      const env = await benchWorkerEnv(state.temporalAddress);
      const sites = loadSitesFile(state.sitesFile);
      const clients = createSiteClients(sites, { maxSockets: 64 });
      const connection = await Connection.connect({ address: state.temporalAddress });
      const ctx: Ctx = { sites, sitesFile: state.sitesFile, clients, client: new Client({ connection }), env, concurrency: o.concurrency, workerLog: join(dir, 'logs', 'bench-worker.log') };
      const rows: Row[] = [];
      let manyUsersResult: Results['manyUsers'];
      let largest: Largest | undefined;
      let userList: UserListResult | undefined;
      try {
        if (o.userList) {
          userList = await measureUserList(ctx, dir, o.userList);
          throw new Done();
        }
        for (const ds of o.largestOnly || o.manyUsersOnly ? [] : sets) {
          out(`seeding ${ds.name}: ${ds.users * ds.perUser} objects of ${ds.size / 1024} KiB...`);
          await seed(clients, ds);
          const measured: Record<string, Measure[]> = Object.fromEntries(wantTools.filter((t) => !ds.skip?.includes(t)).map((t) => [t, []]));
          for (let run = 1; run <= runs; run++) {
            for (const tool of Object.keys(measured)) {
              await clearPrefix(clients.get('eu-ie')!, `users/bench-${ds.name}-`);
              const before = serversCpu(state.services);
              const m = tool === 'rclone' ? await runRclone(ctx, ds)
                : tool === 'sdk loop' ? await runSdkLoop(ctx, ds)
                : await runClover(ctx, ds, tool.includes('full') ? 'full' : 'checksum', run);
              const after = serversCpu(state.services);
              const used = Object.entries(after).map(([name, cpu]) => [name, cpu - (before[name] ?? 0)] as const);
              m.serversCpuS = used.reduce((n, [, c]) => n + c, 0);
              measured[tool]?.push(m);
              out(`  ${ds.name} run ${run} ${tool}: ${m.wallS.toFixed(1)} s, CPU ${m.cpuS.toFixed(1)} s${m.startupCpuS === undefined ? '' : ` (+ ${m.startupCpuS.toFixed(1)} s start-up)`}, peak RSS ${m.rssMiB.toFixed(0)} MiB; servers' CPU ${m.serversCpuS.toFixed(1)} s (${used.map(([n, c]) => `${n} ${c.toFixed(1)}`).join(', ')})`);
            }
          }
          const dsRows = Object.entries(measured).map(([tool, ms]) => row(ds, tool, ms));
          const rc = dsRows.find((r) => r.tool === 'rclone');
          if (rc) for (const r of dsRows) r.ratioToRclone = ds.size < MiB ? r.median.objectsPerS / rc.median.objectsPerS : r.median.mibPerS / rc.median.mibPerS;
          rows.push(...dsRows);
          await clearPrefix(clients.get('sg')!, `users/bench-${ds.name}-`);
          await clearPrefix(clients.get('eu-ie')!, `users/bench-${ds.name}-`);
        }
        if (partial && !o.manyUsersOnly) throw new Done();
        if (!o.manyUsersOnly) {
          out(`largest object: one of ${largestSize / MiB} MiB (verify full)...`);
          const big: DataSet = { name: 'largest', users: 1, perUser: 1, size: largestSize };
          await seed(clients, big);
          const lm = await runClover(ctx, big, 'full', 1);
          largest = { sizeMiB: largestSize / MiB, wallS: lm.wallS, cpuS: lm.cpuS, rssMiB: lm.rssMiB };
          out(`  ${largestSize / MiB} MiB in ${lm.wallS.toFixed(1)} s, worker peak RSS ${lm.rssMiB.toFixed(0)} MiB`);
          await clearPrefix(clients.get('sg')!, 'users/bench-largest-');
        }
        if (!o.largestOnly) {
          out(`many users: ${manyUsers} users of one 4 KiB object each...`);
          const many: DataSet = { name: 'users', users: manyUsers, perUser: 1, size: 4096 };
          await seed(clients, many);
          const m = await runClover(ctx, many, 'checksum', 1);
          manyUsersResult = { users: manyUsers, usersPerS: manyUsers / m.wallS, maxHistory: m.maxHistory ?? 0, cost: m.cost };
          out(`  ${manyUsers} users in ${m.wallS.toFixed(1)} s; largest workflow history: ${m.maxHistory} events; per user ${m.cost?.eventsPerUser.toFixed(1)} events, ${m.cost?.actionsPerUser.toFixed(1)} actions`);
        }
      } catch (err) {
        if (!(err instanceof Done)) throw err;
      } finally {
        await connection.close();
        destroySiteClients(clients);
        await stopStack(dir, { wipe: true });
        rmSync(dir, { recursive: true, force: true });
      }
      const machine = { cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version, rclone: rcloneVersion };
      const flags = [o.quick && '--quick', o.manyUsersOnly && '--many-users-only', o.sets && `--sets ${o.sets}`, o.tools && `--tools ${o.tools}`, o.runs && `--runs ${o.runs}`].filter(Boolean);
      const command = `npm run bench${flags.length ? ` -- ${flags.join(' ')}` : ''}`;
      let results: Results = { date: new Date().toISOString(), command, quick: !!o.quick, runs, concurrency: o.concurrency, machine, rows, manyUsers: manyUsersResult, largest };
      if (o.largestOnly) {
        const prev = JSON.parse(readFileSync(resultsFile, 'utf8')) as Results;
        results = { ...prev, largest, largestCommand: `npm run bench -- ${[...flags, '--largest-only'].join(' ')}` };
      }
      if (o.userList) {
        const prev = JSON.parse(readFileSync(resultsFile, 'utf8')) as Results;
        results = { ...prev, userList, userListCommand: `npm run bench -- ${[...flags, `--user-list ${o.userList}`].join(' ')}` };
      }
      writeFileSync(resultsFile, JSON.stringify(results, null, 2) + '\n');
      if (partial) {
        out(report(results, sets));
        out(`wrote bench/results-partial.json (BENCHMARKS.md is only written by a run of every data set and tool)`);
        return;
      }
      writeFileSync(join(ROOT, o.quick ? 'BENCHMARKS-quick.md' : 'BENCHMARKS.md'), report(results, sets));
      out(`wrote ${o.quick ? 'BENCHMARKS-quick.md' : 'BENCHMARKS.md'} and bench/${o.quick ? 'results-quick.json' : 'results.json'}`);
    });
}

interface Largest {
  sizeMiB: number;
  wallS: number;
  cpuS: number;
  rssMiB: number;
}

interface Results {
  date: string;
  command: string;
  quick: boolean;
  runs: number;
  concurrency: number;
  machine: Record<string, unknown>;
  rows: Row[];
  manyUsers?: { users: number; usersPerS: number; maxHistory: number; cost?: UsersCost };
  largest?: Largest;
  largestCommand?: string;
  userList?: UserListResult;
  userListCommand?: string;
}

interface UserListResult {
  users: number;
  fileMiB: number;
  /** `clover start`'s part: validate, digest and store the list (a process of its own). */
  stage: Measure;
  /** The worker's part: every page through readUsersPage (a process of its own). */
  read: Measure;
}

/** Generates `n` users into a file, stages them as `clover start` does, reads them back as the worker does. */
async function measureUserList(ctx: Ctx, dir: string, n: number): Promise<UserListResult> {
  const file = join(dir, 'users.jsonl');
  out(`user list: generating ${n} users...`);
  const w = createWriteStream(file);
  for (let i = 0; i < n; i++) {
    if (!w.write(`{"userId":"user-${String(i).padStart(9, '0')}","country":"${i % 5 ? 'DE' : 'NO'}"}\n`)) await once(w, 'drain');
  }
  w.end();
  await once(w, 'finish');
  const fileMiB = statSync(file).size / MiB;
  const migrationId = `bench-list-${Date.now().toString(36)}`;
  const planFile = join(dir, 'users-plan.json');
  writeFileSync(planFile, JSON.stringify({ migrationId, sources: ['sg'], routing: { default: 'eu-ie' }, usersFile: file }));
  const script = join(ROOT, 'bench', 'user-list.ts');
  const etagFile = join(dir, 'users.etag');
  out(`  staging ${fileMiB.toFixed(0)} MiB as clover start does...`);
  const stage = await timed(process.execPath, ['--import', 'tsx', script, 'stage', ctx.sitesFile, planFile, etagFile], ctx.env);
  if (stage.code !== 0) throw new Error(`staging the user list exited ${stage.code}`);
  out(`  staged in ${stage.wallS.toFixed(1)} s, peak RSS ${stage.rssMiB.toFixed(0)} MiB; reading it back as the worker does...`);
  const countFile = join(dir, 'users.count');
  const read = await timed(process.execPath, ['--import', 'tsx', script, 'read', ctx.sitesFile, 'eu-ie', migrationId, readFileSync(etagFile, 'utf8'), countFile], ctx.env);
  if (read.code !== 0) throw new Error(`reading the user list exited ${read.code}`);
  const got = Number(readFileSync(countFile, 'utf8'));
  if (got !== n) throw new Error(`the worker read ${got} users of ${n}`);
  out(`  read in ${read.wallS.toFixed(1)} s, peak RSS ${read.rssMiB.toFixed(0)} MiB`);
  rmSync(file, { force: true });
  return { users: n, fileMiB, stage, read };
}

/** The median CPU of a Clover worker's start-up over every run, for the report. */
function startupText(r: Results): string {
  const s = median(r.rows.flatMap((x) => x.runs.map((m) => m.startupCpuS)).filter((c): c is number => c !== undefined));
  return s === undefined ? 'not measured' : `median ${s.toFixed(1)} CPU-s: loading its modules and the workflow bundle, connecting`;
}

function report(r: Results, sets: DataSet[]): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const lines = [
    '# Benchmarks',
    '',
    `Generated by \`${r.command}\` on ${r.date}. Each figure is the median of ${r.runs} run(s); spread is (max - min) / median of the wall time.`,
    `Machine: ${r.machine.cpus}, ${r.machine.memoryGiB} GiB RAM, Node ${r.machine.node}; ${r.machine.rclone}.`,
    `Every tool copies the same objects from the \`sg\` site to the \`eu-ie\` site of a local stack (two versitygw servers on loopback,`,
    `one disk), with ${r.concurrency} objects in flight (Clover: a worker started with \`--max-objects-in-flight ${r.concurrency}\`, up to 8 users of many objects at once, each allowed all of them). Clover's wall time is from \`start\` to the migration's result (the worker`,
    'is started beforehand and polls its task queue); its CPU is the worker process\'s from `start` to the result, its peak RSS over',
    `its whole life. The worker's start-up (${startupText(r)}) is paid once per worker, not per GiB, and is not in its CPU s/GiB;`,
    'rclone\'s and the SDK loop\'s CPU is their whole process, start-up included. "Servers\' CPU" is what the',
    'stack\'s servers (both versitygw sites and Temporal) used during the run, on the same cores.',
    '',
    `Data sets: ${sets.filter((s) => r.rows.some((x) => x.dataset === s.name)).map((s) => `${s.name} = ${s.users * s.perUser} × ${s.size >= MiB ? `${s.size / MiB} MiB` : `${s.size / 1024} KiB`}`).join('; ')}.`,
    '',
    '| data set | tool | wall s | objects/s | MiB/s | CPU s/GiB | servers\' CPU s/GiB | peak RSS MiB | vs rclone | spread |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.rows.map((x) => `| ${x.dataset} | ${x.tool} | ${f(x.median.wallS)} | ${f(x.median.objectsPerS)} | ${f(x.median.mibPerS)} | ${f(x.median.cpuSPerGiB)} | ${x.median.serversCpuSPerGiB === undefined ? 'n/a' : f(x.median.serversCpuSPerGiB)} | ${f(x.median.rssMiB, 0)} | ${x.ratioToRclone === undefined ? 'n/a' : f(x.ratioToRclone, 2)} | ${f(x.spreadPct, 0)}% |`),
    '',
    '"vs rclone" compares objects/s for the sets of small objects (small, heavy) and MiB/s for the others.',
  ];
  const costRows = [
    ...r.rows.filter((x) => x.cost && x.tool === 'clover (checksum)').map((x) => [x.dataset, x.cost!] as const),
    ...(r.manyUsers?.cost ? [[`${r.manyUsers.users} users × 1 object`, r.manyUsers.cost] as const] : []),
  ];
  if (costRows.length) {
    const kinds = [...new Set(costRows.flatMap(([, c]) => Object.keys(c.byKindPerUser)))].sort();
    lines.push(
      '', '### Temporal events and billable actions per user', '',
      'From the histories of every run of the migration and of its users\' workflows (at most ' + HISTORIES_READ + ' of those read, evenly',
      'sampled, and scaled), per user migrated, verify `checksum`. Actions are counted as Temporal Cloud bills them',
      '(https://docs.temporal.io/cloud/actions): one per workflow run started (client start, child start, continue-as-new), per',
      'activity schedule and retry, per signal received, per update accepted, per timer, per search-attribute upsert, per',
      'non-patch marker. Heartbeats and queries leave no history event and are not counted (activities under a second send none).',
      '',
      `| data set | events/user | actions/user | ${kinds.join(' | ')} | largest history |`,
      `|---|---:|---:|${kinds.map(() => '---:').join('|')}|---:|`,
      ...costRows.map(([name, c]) => `| ${name} | ${f(c.eventsPerUser)} | ${f(c.actionsPerUser)} | ${kinds.map((k) => f(c.byKindPerUser[k] ?? 0, 2)).join(' | ')} | ${c.maxHistory} |`),
    );
  }
  if (r.largest) {
    lines.push('', `Largest single object copied: ${r.largest.sizeMiB} MiB in ${f(r.largest.wallS)} s (verify full), worker peak RSS ${f(r.largest.rssMiB, 0)} MiB${r.largestCommand ? ` (measured by \`${r.largestCommand}\`)` : ''}.`);
  }
  if (r.userList) {
    const u = r.userList;
    lines.push('', `User list: ${u.users} generated users (${f(u.fileMiB, 0)} MiB of JSON lines). \`clover start\`'s part (validate every line and check for duplicates, digest, store in ${f(u.fileMiB / 8, 0)} parts of 8 MiB): ${f(u.stage.wallS)} s, peak RSS ${f(u.stage.rssMiB, 0)} MiB. The worker's part (every page through the readUsersPage activity): ${f(u.read.wallS)} s, peak RSS ${f(u.read.rssMiB, 0)} MiB${r.userListCommand ? ` (measured by \`${r.userListCommand}\`)` : ''}.`);
  }
  if (r.manyUsers) lines.push('', `Many users: ${r.manyUsers.users} users of one 4 KiB object each at ${f(r.manyUsers.usersPerS)} users/s; the largest history of any workflow run was ${r.manyUsers.maxHistory} events.`);
  const rowOf = (ds: string, tool: string) => r.rows.find((x) => x.dataset === ds && x.tool === tool);
  const ratio = (ds: string, tool: string) => rowOf(ds, tool)?.ratioToRclone;
  const yes = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? 'met' : 'not met');
  // The targets of issue #13 (throughput): verify `checksum` ≥ 0.9 × rclone and verify `full` ≥ 0.7 ×.
  const speed = (ds: string): [string, string] => {
    const c = ratio(ds, 'clover (checksum)');
    const fu = ratio(ds, 'clover (full)');
    return [
      c === undefined ? 'n/a' : `checksum ${f(c, 2)}×, full ${fu === undefined ? 'n/a' : `${f(fu, 2)}×`}`,
      yes(c === undefined ? undefined : c >= 0.9 && (fu === undefined || fu >= 0.7)),
    ];
  };
  const smallCpu = rowOf('small', 'clover (checksum)')?.median.cpuSPerGiB;
  const rcloneSmallCpu = rowOf('small', 'rclone')?.median.cpuSPerGiB;
  const mediumCpu = rowOf('medium', 'clover (checksum)')?.median.cpuSPerGiB;
  const smallRss = rowOf('small', 'clover (checksum)')?.median.rssMiB;
  const rss = r.rows.filter((x) => x.tool.startsWith('clover')).map((x) => `${x.dataset} ${f(x.median.rssMiB, 0)}`).join(', ');
  lines.push(
    '', '## Targets', '',
    '| target | measured | |', '|---|---|---|',
    ...(['small', 'medium', 'heavy', 'large'] as const).map((ds) => {
      const [m, ok] = speed(ds);
      const what = ds === 'heavy' ? 'one heavy user (small objects): objects/s' : ds === 'medium' || ds === 'large' ? `${ds} objects: MiB/s` : 'small objects: objects/s';
      return `| ${what} ≥ 0.9 × rclone (verify full ≥ 0.7 ×) | ${m} | ${ok} |`;
    }),
    `| worker CPU on small objects ≤ 1.5 × rclone's | ${smallCpu === undefined || rcloneSmallCpu === undefined ? 'n/a' : `${f(smallCpu)} against ${f(rcloneSmallCpu)} CPU-s/GiB (${f(smallCpu / rcloneSmallCpu, 2)}×)`} | ${yes(smallCpu === undefined || rcloneSmallCpu === undefined ? undefined : smallCpu <= 1.5 * rcloneSmallCpu)} |`,
    `| worker CPU on medium objects ≤ 3 CPU-s/GiB | ${mediumCpu === undefined ? 'n/a' : `${f(mediumCpu)} CPU-s/GiB`} | ${yes(mediumCpu === undefined ? undefined : mediumCpu <= 3)} |`,
    `| 10,000 users of one object ≥ 20 users/s | ${r.manyUsers ? `${f(r.manyUsers.usersPerS)} users/s (${r.manyUsers.users} users)` : 'n/a'} | ${yes(r.manyUsers && r.manyUsers.users >= 10_000 ? r.manyUsers.usersPerS >= 20 : undefined)} |`,
    `| no workflow run above 10,000 history events | ${r.manyUsers ? `${r.manyUsers.maxHistory} events with ${r.manyUsers.users} users` : 'n/a'} | ${yes(r.manyUsers ? r.manyUsers.maxHistory <= 10_000 : undefined)} |`,
    `| worker peak RSS ≤ 230 MiB copying one 2 GiB object | ${r.largest ? `${f(r.largest.rssMiB, 0)} MiB for ${r.largest.sizeMiB} MiB` : 'n/a'} | ${yes(r.largest && r.largest.sizeMiB >= 2048 ? r.largest.rssMiB <= 230 : undefined)} |`,
    `| worker peak RSS ≤ 256 MiB on the small data set | ${smallRss === undefined ? 'n/a' : `${f(smallRss, 0)} MiB`} | ${yes(smallRss === undefined ? undefined : smallRss <= 256)} |`,
    `| RSS not growing with object size | Clover peak RSS per data set: ${rss}${r.largest ? `; largest object ${f(r.largest.rssMiB, 0)}` : ''} (MiB) | see figures |`,
    '',
    'Where the time goes when a target is missed, and what would close the gap: docs/architecture.md, "Where the time goes".',
  );
  lines.push('', 'Exact command: `' + r.command + '` (JSON: `bench/' + (r.command.includes('quick') ? 'results-quick.json' : 'results.json') + '`).', '');
  return lines.join('\n');
}
