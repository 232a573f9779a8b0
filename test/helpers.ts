import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { loadSitesFile, type Sites } from '../src/config/sites';
import { createSiteClients, type SiteClients } from '../src/storage/clients';
import { listAllKeys } from '../src/storage/listing';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { CopyCheckpoint } from '../src/activities/copy';
import type { StagedDetails } from '../src/activities/scaffold';
import { userWorkflowId } from '../src/workflows/definitions';
import { recordProcess } from './support/processes';

export { at } from './support/at';

export const ROOT = resolve(__dirname, '..');

export function testSites(): Sites {
  return loadSitesFile(process.env.CLOVER_SITES!);
}

export function clients(): SiteClients {
  return createSiteClients(testSites(), { maxSockets: 32 });
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function put(c: SiteClients, site: string, key: string, body: Buffer | string, extra: Record<string, unknown> = {}): Promise<void> {
  const s = c.get(site)!;
  await s.s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: key, Body: body, ...extra }));
}

export async function get(c: SiteClients, site: string, key: string): Promise<{ body: Buffer; metadata: Record<string, string>; contentType?: string; cacheControl?: string; contentDisposition?: string; etag: string } | undefined> {
  const s = c.get(site)!;
  try {
    const r = await s.s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: key }));
    return {
      body: Buffer.from(await r.Body!.transformToByteArray()), metadata: r.Metadata ?? {}, contentType: r.ContentType,
      cacheControl: r.CacheControl, contentDisposition: r.ContentDisposition, etag: (r.ETag ?? '').replace(/"/g, ''),
    };
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
}

export async function exists(c: SiteClients, site: string, key: string): Promise<boolean> {
  const s = c.get(site)!;
  try {
    await s.s3.send(new HeadObjectCommand({ Bucket: s.bucket, Key: key }));
    return true;
  } catch {
    return false;
  }
}

export function listKeys(c: SiteClients, site: string, prefix: string): Promise<string[]> {
  return listAllKeys(c.get(site)!, prefix, 'listing (test)');
}

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The task queue of this test file: test files run in parallel on one Temporal server, and a worker
 * of one file must never pick up another file's work (a SIGKILL test would kill the wrong worker).
 */
export const TASK_QUEUE = `clover-test-${randomBytes(4).toString('hex')}`;

const CLOVER_JS = join(ROOT, 'bin', 'clover.js');

/** Records a process this test file started, so global teardown (or the watchdog) stops it if the test does not. */
function record(name: string, child: ChildProcess): void {
  const dir = process.env.CLOVER_TEST_STACK_DIR;
  if (dir && child.pid) recordProcess(dir, { name, pid: child.pid, binary: CLOVER_JS, stop: 'SIGKILL' });
}

/** A CLI run in progress: what it printed so far, and its result once it exits. */
export interface RunningCli {
  output(): CliResult;
  done: Promise<CliResult>;
}

/** Starts the real CLI (`bin/clover.js`) as operators do, without waiting for it (e.g. `start --wait`). */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): RunningCli {
  const child = spawn(process.execPath, [CLOVER_JS, ...args], { env: { ...process.env, CLOVER_TASK_QUEUE: TASK_QUEUE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  record(`cli ${args[0] ?? ''}`, child);
  const seen = { code: -1, stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (seen.stdout += d));
  child.stderr.on('data', (d) => (seen.stderr += d));
  const done = new Promise<CliResult>((ok) => child.on('close', (code) => ok({ ...seen, code: code ?? -1 })));
  return { output: () => ({ ...seen }), done };
}

/** Runs the real CLI (`bin/clover.js`) as operators do, and returns once it exits. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return startCli(args, env).done;
}

/** The heartbeat checkpoint of a user's running copy activity, or undefined while none is pending. */
export async function copyCheckpoint(client: Client, migrationId: string, userId: string): Promise<CopyCheckpoint | undefined> {
  const d = await client.workflow.getHandle(userWorkflowId(migrationId, userId)).describe();
  const pending = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'copyUserObjects' || a.activityType?.name === 'firstPassSmallUser');
  const details = pending?.heartbeatDetails?.payloads?.[0];
  if (!details) return undefined;
  // The first pass's first call (firstPassSmallUser) heartbeats its copy stage's checkpoint tagged with the stage.
  if (pending?.activityType?.name === 'firstPassSmallUser') {
    const staged = defaultPayloadConverter.fromPayload<StagedDetails>(details);
    return staged.stage === 'copy' ? (staged.details as CopyCheckpoint) : undefined;
  }
  return defaultPayloadConverter.fromPayload<CopyCheckpoint>(details);
}

/**
 * True while the workflow has work in flight: an activity pending (running, or scheduled for a retry), or
 * a workflow task started, as it stays for as long as a local activity (a small user's first pass) runs.
 */
export async function hasWorkInFlight(client: Client, workflowId: string): Promise<boolean> {
  const d = await client.workflow.getHandle(workflowId).describe();
  return (d.raw.pendingActivities?.length ?? 0) > 0 || d.raw.pendingWorkflowTask != null;
}

/** True while the user's workflow has an activity pending (running, or scheduled for a retry). */
export async function hasPendingActivity(client: Client, workflowId: string): Promise<boolean> {
  const d = await client.workflow.getHandle(workflowId).describe();
  return (d.raw.pendingActivities?.length ?? 0) > 0;
}

/**
 * Starts a real worker process (`clover worker`), logging to the test stack's folder; `env` is added to
 * the test's environment (e.g. `CLOVER_SITES` naming a proxied sites file). The process is recorded:
 * global teardown kills it if the test does not stop it (a timeout, a failed assertion).
 */
export function startWorkerProcess(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const logDir = join(process.env.CLOVER_TEST_STACK_DIR!, 'logs');
  mkdirSync(logDir, { recursive: true });
  const fd = openSync(join(logDir, `${name}.log`), 'a');
  const child = spawn(CLOVER_JS, ['worker', ...args], { stdio: ['ignore', fd, fd], env: { ...process.env, CLOVER_TASK_QUEUE: TASK_QUEUE, ...env } });
  closeSync(fd);
  record(`worker ${name}`, child);
  return child;
}

export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((ok) => child.once('exit', ok));
  child.kill(signal);
  await done;
}

export function writePlan(dir: string, plan: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${String(plan.migrationId ?? 'plan')}-${randomBytes(3).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify(plan, null, 2));
  return file;
}

export const tmpPlanDir = () => {
  const dir = join(process.env.CLOVER_TEST_STACK_DIR!, 'plans');
  mkdirSync(dir, { recursive: true });
  return dir;
};

