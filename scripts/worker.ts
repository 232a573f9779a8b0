import type { Command } from 'commander';
import { InputError } from '../src/config/errors';
import { temporalConfig } from '../src/config/temporal';
import { createLogger } from '../src/worker/logger';
import { defaultWorkerSettings, runWorker } from '../src/worker/run';
import { loadSites, sitesPath } from './common';

const wholeNumber = (name: string, min: 0 | 1) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError(`${name} must be a ${min === 1 ? 'positive whole number' : 'whole number (0 or more)'}, got "${v}"`);
  return n;
};
const positive = (name: string) => wholeNumber(name, 1);
const nonNegative = (name: string) => wholeNumber(name, 0);

export function registerWorker(program: Command): void {
  const d = defaultWorkerSettings();
  program
    .command('worker')
    .description('run a worker in the foreground (JSON logs; SIGTERM/SIGINT drain it gracefully)')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .option('--max-activities <n>', 'activities (user copies and verifies) at once; local first passes get as many slots again', positive('--max-activities'), d.maxActivities)
    .option('--max-objects-in-flight <n>', 'objects copied or read at once across all of this worker\'s activities, on top of each plan\'s objectsPerUser (default: no worker-wide limit)', positive('--max-objects-in-flight'))
    .option('--max-sockets <n>', 'HTTP sockets per site', positive('--max-sockets'), d.maxSockets)
    .option('--idle-timeout-seconds <n>', 'seconds an S3 request may stay silent before it is abandoned and retried on a new connection', positive('--idle-timeout-seconds'), d.idleTimeoutMs / 1000)
    .option('--memory-mib <n>', 'MiB of object data buffered at once', positive('--memory-mib'), d.memoryBudget / 1048576)
    .option('--part-mib <n>', 'minimum multipart part size in MiB (also the multipart threshold)', positive('--part-mib'), d.minPartSize / 1048576)
    .option('--hash-threads <n>', 'threads hashing object bytes beside the one moving them (default: CPU cores - 1, 1 to 4)', positive('--hash-threads'), d.hashThreads)
    .option('--grace-seconds <n>', 'seconds in-flight work gets to checkpoint on shutdown', positive('--grace-seconds'), d.shutdownGraceMs / 1000)
    .option('--local-first-pass-mib <n>', 'a user whose objects fit one listing page and at most this many MiB (none needing multipart) gets its first pass as one local activity: fewer Temporal events, no heartbeats, redone from the start if this worker dies; 0: always a regular activity', nonNegative('--local-first-pass-mib'), d.localFirstPassBytes / 1048576)
    .option('--sdk-requests', 'send every S3 request through the AWS SDK (default: the copy\'s object GET/PUT and Clover\'s JSON records take the lean request path)')
    .option('--task-queue <name>', 'task queue (default: CLOVER_TASK_QUEUE, else clover-migrations)')
    .action(async (o: { sites?: string; maxActivities: number; maxObjectsInFlight?: number; maxSockets: number; idleTimeoutSeconds: number; memoryMib: number; partMib: number; hashThreads: number; graceSeconds: number; localFirstPassMib: number; sdkRequests?: boolean; taskQueue?: string }) => {
      const temporal = temporalConfig();
      const logger = createLogger();
      const sites = loadSites(o.sites);
      logger.info({ sitesFile: sitesPath(o.sites) }, 'sites loaded');
      await runWorker({
        sitesFile: sitesPath(o.sites),
        temporal,
        sites,
        logger,
        settings: {
          ...d,
          maxActivities: o.maxActivities,
          maxObjectsInFlight: o.maxObjectsInFlight,
          maxSockets: o.maxSockets,
          idleTimeoutMs: o.idleTimeoutSeconds * 1000,
          memoryBudget: o.memoryMib * 1048576,
          multipartThreshold: o.partMib * 1048576,
          minPartSize: o.partMib * 1048576,
          hashThreads: o.hashThreads,
          shutdownGraceMs: o.graceSeconds * 1000,
          localFirstPassBytes: o.localFirstPassMib * 1048576,
          leanRequests: !o.sdkRequests,
          taskQueue: o.taskQueue ?? temporal.taskQueue,
        },
      });
    });
}
