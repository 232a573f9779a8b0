import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Logger } from 'pino';
import pLimit from 'p-limit';
import { createActivities } from '../activities';
import { UnreachableError } from '../config/errors';
import type { Sites } from '../config/sites';
import type { TemporalConfig } from '../config/temporal';
import { availableParallelism } from 'node:os';
import { ByteBudget } from '../storage/byte-budget';
import { HashPool } from '../storage/hash-pool';
import { DEFAULT_IDLE_TIMEOUT_MS, createSiteClients, destroySiteClients } from '../storage/clients';
import { DEFAULT_TASK_QUEUE } from '../domain/names';
import { temporalLogger } from './logger';
import { loadSigningKey } from '../evidence/keys';
import { ensureWorkflowBundle } from './workflow-bundle';

export interface WorkerSettings {
  /** Activities (user copies, verifies) running at once in this process. */
  maxActivities: number;
  /** Objects copied or read at once across all activities (`--max-objects-in-flight`); undefined: each plan's objectsPerUser per user only. */
  maxObjectsInFlight?: number;
  /** Sockets per site. */
  maxSockets: number;
  /** How long an S3 request's socket may stay silent before the request is abandoned and retried. */
  idleTimeoutMs: number;
  /** Bytes of object data buffered at once across all copies. */
  memoryBudget: number;
  multipartThreshold: number;
  minPartSize: number;
  partConcurrency: number;
  /** Threads that hash object bytes (SHA-256, MD5) beside the thread that moves them. */
  hashThreads: number;
  /** How long in-flight activities get to reach a checkpoint on SIGTERM/SIGINT. */
  shutdownGraceMs: number;
  /** See `ActivityDeps.localFirstPassBytes` (`--local-first-pass-mib`); 0: never. */
  localFirstPassBytes: number;
  /** The copy's object GET/PUT and Clover's JSON records over the lean request path (storage/lean-requests.ts); false: `--sdk-requests`. */
  leanRequests: boolean;
  taskQueue: string;
}

export const defaultWorkerSettings = (): WorkerSettings => ({
  maxActivities: 8,
  maxSockets: 64,
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
  memoryBudget: 256 * 1024 * 1024,
  multipartThreshold: 16 * 1024 * 1024,
  minPartSize: 16 * 1024 * 1024,
  partConcurrency: 2,
  hashThreads: Math.max(1, Math.min(4, availableParallelism() - 1)),
  shutdownGraceMs: 30_000,
  localFirstPassBytes: 128 * 1024 * 1024,
  leanRequests: true,
  taskQueue: DEFAULT_TASK_QUEUE,
});

let runtimeInstalled = false;

/**
 * Runs one worker until SIGTERM/SIGINT: connects with the TEMPORAL_* settings, builds one S3 client
 * per site, registers the workflows and activities, and drains gracefully (in-flight activities get
 * `shutdownGraceMs` to checkpoint; a retried attempt elsewhere resumes from it).
 */
export async function runWorker(opts: { temporal: TemporalConfig; sites: Sites; settings: WorkerSettings; logger: Logger; /** The sites file's path: a local stack's key lies beside it. */ sitesFile?: string }): Promise<void> {
  const { temporal, sites, settings, logger } = opts;
  if (!runtimeInstalled) {
    Runtime.install({ logger: temporalLogger(logger) });
    runtimeInstalled = true;
  }
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect({ address: temporal.address, tls: temporal.tls, apiKey: temporal.apiKey });
  } catch (err) {
    throw new UnreachableError(`cannot reach Temporal at ${temporal.address}: ${(err as Error).message} (is the stack up? \`npm run stack -- up\`)`);
  }
  const clients = createSiteClients(sites, { maxSockets: settings.maxSockets, idleTimeoutMs: settings.idleTimeoutMs, leanRequests: settings.leanRequests });
  // Buffers kept for reuse count towards resident memory, so at most a quarter of the budget is kept idle.
  const hasher = new HashPool(settings.hashThreads, settings.memoryBudget / 4);
  // The evidence key: manifests signed, ledger records written. Without one the worker still migrates, recording no evidence.
  const signingKey = loadSigningKey(process.env, { sitesFile: opts.sitesFile });
  if (signingKey) logger.info({ keyId: signingKey.keyId }, 'evidence signing key loaded');
  else logger.warn('no signing key (CLOVER_SIGNING_KEY_FILE): manifests are not signed and no evidence ledger record is written');
  const deps = {
    clients,
    signingKey,
    hasher,
    budget: new ByteBudget(settings.memoryBudget),
    copy: { multipartThreshold: settings.multipartThreshold, minPartSize: settings.minPartSize, partConcurrency: settings.partConcurrency },
    batch: { maxPages: 20, maxMillis: 5 * 60_000, listPageSize: 1000 },
    objectSlots: settings.maxObjectsInFlight === undefined ? undefined : pLimit(settings.maxObjectsInFlight),
    localFirstPassBytes: settings.localFirstPassBytes,
  };
  // The workflow code, bundled by a child process and kept on disk (workflow-bundle.ts); CLOVER_WORKFLOW_BUNDLE names a ready one.
  const bundle = process.env.CLOVER_WORKFLOW_BUNDLE || await ensureWorkflowBundle({ building: (path) => logger.info({ path }, 'bundling the workflow code for this version of Clover (once)') });
  const worker = await Worker.create({
    connection,
    namespace: temporal.namespace,
    taskQueue: settings.taskQueue,
    workflowBundle: { codePath: bundle },
    activities: createActivities(deps),
    maxConcurrentActivityTaskExecutions: settings.maxActivities,
    // Small users' first passes (local activities) run under the same bound, beside the regular ones.
    maxConcurrentLocalActivityExecutions: settings.maxActivities,
    shutdownGraceTime: settings.shutdownGraceMs,
    // Checkpoints reach the server at least every 2 s, so a crash loses little progress bookkeeping.
    maxHeartbeatThrottleInterval: '2s',
    defaultHeartbeatThrottleInterval: '2s',
  });
  logger.info({ address: temporal.address, namespace: temporal.namespace, taskQueue: settings.taskQueue, sites: Object.keys(sites) }, 'worker started');
  try {
    await worker.run();
  } finally {
    destroySiteClients(clients);
    await hasher.close();
    await connection.close();
    logger.info('worker stopped');
  }
}
