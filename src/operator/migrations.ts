import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectLockConfigurationCommand, HeadBucketCommand,
  PutObjectCommand, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { CloverError, ExitCode, InputError, UnreachableError } from '../config/errors';
import { planUsers, usersTotal, type LoadedPlan } from '../config/plan';
import type { UserRow } from '../domain/routing';
import type { Sites } from '../config/sites';
import { usersListKey } from '../domain/layout';
import { DEFAULT_TASK_QUEUE } from '../domain/names';
import { routingTargets } from '../domain/routing';
import { canonicalJson } from '../domain/manifest';
import type { Actor, LedgerRecord, SigningKey } from '../evidence/ledger';
import { appendLedger, readLedger } from '../evidence/storage';
import { createSiteClients, destroySiteClients, siteEncryption, type Site, type SiteClients } from '../storage/clients';
import { describeS3Error, isPreconditionFailed } from '../storage/errors';
import { headObject, stripQuotes } from '../storage/object-meta';
import { probeConditionalDeletes, probeEncryption } from '../storage/probe';
import {
  SA, migrationWorkflowId, statusQuery, type MigrationInput, type MigrationStatus, type MigrationSettings,
} from '../workflows/definitions';
import type { migrationWorkflow } from '../workflows/migration';

/** User metadata on the stored user list: the digest of the plan that wrote it. */
const PLAN_DIGEST_META = 'clover-plan-digest';

export type MigrationHandle = WorkflowHandle<typeof migrationWorkflow>;

/** Checks every site the plan uses answers and accepts the credentials, before anything starts. */
export async function checkSites(clients: SiteClients, names: string[]): Promise<void> {
  await Promise.all(
    names.map(async (name) => {
      const s = clients.get(name)!;
      try {
        await s.s3.send(new HeadBucketCommand({ Bucket: s.bucket }), { abortSignal: AbortSignal.timeout(15_000) });
      } catch (err) {
        const e = describeS3Error(err, { site: name, bucket: s.bucket, action: 'checking the bucket' });
        const status = e.status;
        if (status === 404) throw new InputError(`site ${name}: bucket ${s.bucket} does not exist; create it or fix the sites file`);
        if (status === 403 || status === 401 || e.permanent) throw new InputError(`site ${name}: ${e.message}`);
        throw new UnreachableError(`cannot reach site ${name} at ${s.config.endpoint ?? 'its AWS endpoint'}: ${e.message}`);
      }
    }),
  );
}

/**
 * Refuses (exit 2, one line naming site and bucket) a plan with `evidenceRetention` when a bucket that
 * would hold evidence (ledger records, manifest generations: every target site) has no S3 Object Lock:
 * its records could not be retained, and an auditor would be told they were.
 */
export async function requireObjectLock(clients: SiteClients, names: string[], field: 'evidenceRetention' | 'targetRetention' = 'evidenceRetention'): Promise<void> {
  for (const name of names) {
    const s = clients.get(name)!;
    let enabled = false;
    try {
      const r = await s.s3.send(new GetObjectLockConfigurationCommand({ Bucket: s.bucket }), { abortSignal: AbortSignal.timeout(15_000) });
      enabled = r.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
    } catch (err) {
      const e = describeS3Error(err, { site: name, bucket: s.bucket, action: 'reading the Object Lock configuration' });
      // Not configured (404), or a store without Object Lock at all (501): not enabled.
      if (e.type !== 'ObjectLockConfigurationNotFoundError' && e.status !== 404 && e.status !== 501) {
        if (e.permanent) throw new InputError(`plan field ${field}: site ${name}: ${e.message}`);
        throw new UnreachableError(`cannot reach site ${name} at ${s.config.endpoint ?? 'its AWS endpoint'}: ${e.message}`);
      }
    }
    if (!enabled) {
      throw new InputError(`plan field ${field}: site ${name} (bucket ${s.bucket}) has no S3 Object Lock, so ${field === 'evidenceRetention' ? 'evidence' : 'the EU copies'} written there cannot be retained; use a bucket created with Object Lock enabled, or remove ${field} from the plan`);
    }
  }
}

/**
 * Refuses (exit 2) when a site Clover would delete from does not enforce `If-Match` on DeleteObject:
 * there, a conditional delete could remove an object that changed since it was verified.
 */
export async function requireConditionalDeletes(clients: SiteClients, names: string[]): Promise<void> {
  for (const name of names) {
    const s = clients.get(name);
    if (!s) throw new InputError(`site ${name} is not in the sites file`);
    let found;
    try {
      found = await probeConditionalDeletes(s, AbortSignal.timeout(30_000));
    } catch (err) {
      const e = describeS3Error(err, { site: name, bucket: s.bucket, action: 'probing conditional deletes' });
      if (e.permanent) throw new InputError(`site ${name}: ${e.message}`);
      throw new UnreachableError(`cannot probe site ${name}: ${e.message}`);
    }
    if (found !== 'enforced') {
      throw new InputError(
        `site ${name} (bucket ${s.bucket}) ${found === 'ignored' ? 'ignores' : 'does not support'} If-Match on DeleteObject, so Clover cannot delete there safely; ` +
          'use sourceDisposition "keep", or a store that enforces conditional deletes',
      );
    }
  }
}

/** Parts of the stored user list above this size (a list this long is uploaded in parts, never held whole). */
export const USER_LIST_PART_BYTES = 8 * 1024 * 1024;

/** One line of the stored user list. */
const listLine = (u: UserRow) => JSON.stringify({ userId: u.userId, country: u.country }) + '\n';

/**
 * Refuses (exit 2) when a target site whose sites-file entry says `requireEncryption` does not encrypt
 * what Clover writes there: a canary written under `_clover/probe/` with the site's `encryption` must
 * come back with that x-amz-server-side-encryption.
 */
export async function requireEncryption(clients: SiteClients, names: string[]): Promise<void> {
  for (const name of names) {
    const s = clients.get(name);
    const wanted = s?.config.encryption;
    if (!s || !s.config.requireEncryption || !wanted) continue;
    let found;
    try {
      found = await probeEncryption(s, AbortSignal.timeout(30_000));
    } catch (err) {
      const e = describeS3Error(err, { site: name, bucket: s.bucket, action: 'probing encryption' });
      if (e.permanent || e.repeatable) throw new InputError(`site ${name}: ${e.message}`);
      throw new UnreachableError(`cannot probe site ${name}: ${e.message}`);
    }
    if (found !== wanted.type) {
      throw new InputError(
        `site ${name} (bucket ${s.bucket}) requires encryption, but a canary written with ${wanted.type} came back ${found ? `encrypted with ${found}` : 'without server-side encryption'}; ` +
          'use a store that applies the "encryption" of the sites file, or remove "requireEncryption" for this site',
      );
    }
  }
}

/**
 * The plan's digest: SHA-256 of the canonical JSON of `{settings, users}`, computed as the users stream
 * by (the same value as hashing the whole document at once; memory flat in the list's length).
 */
export async function planDigest(plan: LoadedPlan): Promise<string> {
  const h = createHash('sha256');
  h.update(`{"settings":${canonicalJson(plan.settings)},"users":[`);
  let first = true;
  for await (const u of planUsers(plan)) {
    h.update((first ? '' : ',') + canonicalJson({ userId: u.userId, country: u.country }));
    first = false;
  }
  h.update(']}');
  return h.digest('hex');
}

/** The stored list: its ETag (every read is pinned to it) and the SHA-256 of its bytes. */
export interface StoredList {
  etag: string;
  /** SHA-256 (hex) of the list's bytes as stored (recorded as userListDigest). */
  digest: string;
}

/**
 * Stores the user list once (a conditional create), streamed from the plan's users: a list up to
 * USER_LIST_PART_BYTES in one PUT, a longer one as a multipart upload of parts of that size (each with its
 * SHA-256; completed with If-None-Match, so still written once; S3 holds up to 5 TB in one object),
 * never holding more than one part. A list already there from a start of this very plan (same digest) is
 * kept; one from another plan is refused (exit 2). Returns the ETag the migration pins every read of the
 * list to, and the digest of the list's bytes.
 */
export async function storeUserList(site: Site, plan: LoadedPlan, digest: string): Promise<StoredList> {
  const migrationId = plan.settings.migrationId;
  const key = usersListKey(migrationId);
  const ctx = (action: string) => ({ site: site.name, bucket: site.bucket, key, action });
  const whole = createHash('sha256');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('base64');
  const common = { Bucket: site.bucket, Key: key };
  let uploadId: string | undefined;
  const parts: { PartNumber: number; ETag: string; ChecksumSHA256: string }[] = [];
  let buffered: Buffer[] = [];
  let bufferedBytes = 0;
  const sendPart = async () => {
    const body = Buffer.concat(buffered);
    buffered = [];
    bufferedBytes = 0;
    uploadId ??= (await site.s3.send(new CreateMultipartUploadCommand({
      ...common, ContentType: 'application/x-ndjson', ChecksumAlgorithm: 'SHA256', Metadata: { [PLAN_DIGEST_META]: digest }, ...siteEncryption(site),
    }))).UploadId!;
    const PartNumber = parts.length + 1;
    const ChecksumSHA256 = sha(body);
    const r = await site.s3.send(new UploadPartCommand({ ...common, UploadId: uploadId, PartNumber, Body: body, ChecksumSHA256 }));
    parts.push({ PartNumber, ETag: r.ETag!, ChecksumSHA256 });
  };
  // A list already there (a start of this plan that stopped before its workflow started, or another
  // plan's) is never written over, whatever the store does with If-None-Match on a multipart completion.
  const before = await headObject(site, key).catch((err: unknown) => {
    throw new UnreachableError(describeS3Error(err, ctx('checking for a stored user list')).message);
  });
  const otherPlan = () => new InputError(`migration id "${migrationId}" already has a user list from a different plan (site ${site.name}, key ${key}); choose a new migrationId`);
  if (before && before.metadata[PLAN_DIGEST_META] !== digest) throw otherPlan();
  try {
    for await (const u of planUsers(plan)) {
      const line = Buffer.from(listLine(u));
      whole.update(line);
      if (before) continue;
      buffered.push(line);
      bufferedBytes += line.length;
      if (bufferedBytes >= USER_LIST_PART_BYTES) await sendPart();
    }
    let etag: string | undefined;
    if (before) {
      // Checked below.
    } else if (uploadId === undefined) {
      const body = Buffer.concat(buffered);
      const out = await site.s3.send(new PutObjectCommand({
        ...common, Body: body, ContentType: 'application/x-ndjson', IfNoneMatch: '*', ChecksumSHA256: sha(body), Metadata: { [PLAN_DIGEST_META]: digest },
        ...siteEncryption(site),
      }));
      etag = out.ETag;
    } else {
      if (bufferedBytes > 0) await sendPart();
      const out = await site.s3.send(new CompleteMultipartUploadCommand({ ...common, UploadId: uploadId, IfNoneMatch: '*', MultipartUpload: { Parts: parts } }));
      uploadId = undefined;
      etag = out.ETag;
    }
    if (!before) return { etag: stripQuotes(etag), digest: whole.digest('hex') };
  } catch (err) {
    if (err instanceof CloverError) throw err;
    if (!isPreconditionFailed(err)) {
      const e = describeS3Error(err, ctx('storing the user list'));
      if (e.permanent) throw new InputError(e.message);
      throw new UnreachableError(e.message);
    }
  } finally {
    if (uploadId !== undefined) await site.s3.send(new AbortMultipartUploadCommand({ ...common, UploadId: uploadId })).catch(() => undefined);
  }
  const there = before ?? (await headObject(site, key));
  if (there?.metadata[PLAN_DIGEST_META] !== digest) throw otherPlan();
  // The list there was written by a start of this very plan: the same bytes, so the same digest.
  if (before) return { etag: there.etag, digest: whole.digest('hex') };
  const rest = createHash('sha256');
  for await (const u of planUsers(plan)) rest.update(listLine(u));
  return { etag: there.etag, digest: rest.digest('hex') };
}

export interface StartResult {
  handle: MigrationHandle;
  workflowId: string;
  /** `started` a new migration; `attached` to the running one; `finished` found it already done. */
  state: 'started' | 'attached' | 'finished';
  /** The `operator-command` record of this start (with evidence, on a new start): its result names it. */
  intent?: LedgerRecord;
}

/**
 * Starts a validated plan, or finds it: the same migration id twice never duplicates work (a running
 * migration is attached to; a finished one is reported). The user list is stored in the routing
 * default site (`_clover/migrations/<id>/users.jsonl`) for the workflow to page through. With
 * `evidence`, a new start is recorded in the migration's ledger (`recordStart`) before its workflow starts.
 */
export interface StartEvidence {
  key: SigningKey;
  actor: Actor;
  /** The operator command as recorded (`operator-command`). */
  args: Record<string, unknown>;
}

/**
 * Records a start in the migration's ledger, after the user list is stored and before the workflow
 * starts: `plan-accepted` (plan digest, the stored list's digest (its ETag), users, sources, routing;
 * not again when a start that stopped before its workflow started recorded it already), then the
 * `operator-command`.
 */
async function recordStart(site: Site, plan: LoadedPlan, digest: string, users: StoredList, ev: StartEvidence): Promise<LedgerRecord> {
  const s = plan.settings;
  const signal = AbortSignal.timeout(60_000);
  const there = await readLedger(site, s.migrationId, signal);
  if (!there.some((r) => r.type === 'plan-accepted' && r.data.planDigest === digest)) {
    await appendLedger(site, s.migrationId, ev.key, {
      type: 'plan-accepted', actor: ev.actor,
      data: {
        planDigest: digest, usersEtag: users.etag, userListDigest: users.digest, usersKey: usersListKey(s.migrationId), usersTotal: usersTotal(plan), sources: s.sources, routing: s.routing,
        ...(s.evidenceRetention ? { evidenceRetention: s.evidenceRetention } : {}),
      },
      retention: s.evidenceRetention,
    }, signal);
  }
  return appendLedger(site, s.migrationId, ev.key, {
    type: 'operator-command', actor: ev.actor, data: { command: 'start', migrationId: s.migrationId, args: ev.args }, retention: s.evidenceRetention,
  }, signal);
}

export async function startMigration(
  client: Client, sites: Sites, plan: LoadedPlan, taskQueue = DEFAULT_TASK_QUEUE, evidence?: StartEvidence,
): Promise<StartResult> {
  const settings: MigrationSettings = { ...plan.settings };
  const workflowId = migrationWorkflowId(settings.migrationId);
  const digest = await planDigest(plan);
  const existing = client.workflow.getHandle<typeof migrationWorkflow>(workflowId);
  try {
    const d = await existing.describe();
    const memo = (d.memo ?? {}) as { planDigest?: string };
    if (memo.planDigest && memo.planDigest !== digest) {
      throw new InputError(`migration id "${settings.migrationId}" is already used by a different plan; choose a new migrationId`);
    }
    return { handle: existing, workflowId, state: d.status.name === 'RUNNING' ? 'attached' : 'finished' };
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  const clients = createSiteClients(sites, { maxSockets: 16 });
  try {
    await checkSites(clients, [...new Set([...settings.sources, ...routingTargets(settings.routing)])]);
    await requireEncryption(clients, routingTargets(settings.routing));
    if (settings.evidenceRetention || settings.targetRetention) await requireObjectLock(clients, routingTargets(settings.routing), settings.evidenceRetention ? 'evidenceRetention' : 'targetRetention');
    if (settings.sourceDisposition === 'delete-after-verify') await requireConditionalDeletes(clients, settings.sources);
    const usersSite = clients.get(settings.routing.default)!;
    const list = await storeUserList(usersSite, plan, digest);
    const intent = evidence ? await recordStart(usersSite, plan, digest, list, evidence) : undefined;
    const input: MigrationInput = { settings, usersSite: usersSite.name, usersTotal: usersTotal(plan), usersEtag: list.etag, mode: 'start' };
    const handle = await client.workflow.start('migrationWorkflow', {
      workflowId,
      taskQueue,
      args: [input],
      memo: { planDigest: digest },
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      typedSearchAttributes: [{ key: SA.migrationId, value: settings.migrationId }, { key: SA.phase, value: 'running' }],
    });
    // USE_EXISTING: a concurrent start of the same id may have won; it must be this very plan.
    const memo = ((await handle.describe()).memo ?? {}) as { planDigest?: string };
    if (memo.planDigest !== digest) {
      throw new InputError(`migration id "${settings.migrationId}" was just started with a different plan; choose a new migrationId`);
    }
    return { handle: handle as MigrationHandle, workflowId, state: 'started', intent };
  } finally {
    destroySiteClients(clients);
  }
}

/** How long a status query may wait for a worker to answer it. */
export const STATUS_QUERY_TIMEOUT_MS = 10_000;

/**
 * No worker answered a request that only a worker can answer (the status query, a pause or resume
 * update, a cancelled migration's report) in time: none running, or all busy or just killed. Exit 3.
 */
export class NoWorkerError extends UnreachableError {
  constructor(migrationId: string, taskQueue: string, cause: string | undefined, opts: { what?: string; timeoutMs?: number; note?: string } = {}) {
    super(
      `no worker answered ${opts.what ?? 'the status query'} of migration ${migrationId} within ${(opts.timeoutMs ?? STATUS_QUERY_TIMEOUT_MS) / 1000}s` +
        `${cause ? ` (${cause.replace(/\s+/g, ' ')})` : ''}${opts.note ? `; ${opts.note}` : ''}; start one with \`clover worker\` on task queue ${taskQueue}`,
    );
    this.name = 'NoWorkerError';
  }
}

/**
 * The migration's status. A finished migration's comes from its result; a running one's from its
 * status query, which only a worker can answer: when none does within STATUS_QUERY_TIMEOUT_MS, a
 * NoWorkerError (exit 3) says so, and watchers wait for a worker instead of failing.
 */
export async function migrationStatus(client: Client, migrationId: string): Promise<MigrationStatus> {
  const handle = client.workflow.getHandle<typeof migrationWorkflow>(migrationWorkflowId(migrationId));
  try {
    const d = await handle.describe();
    if (d.status.name === 'COMPLETED') return await handle.result();
    if (d.status.name !== 'RUNNING') {
      throw new CloverError(`migration ${migrationId} ended as ${d.status.name.toLowerCase()}`, ExitCode.failures);
    }
    try {
      return await client.withDeadline(Date.now() + STATUS_QUERY_TIMEOUT_MS, () => handle.query(statusQuery));
    } catch (err) {
      // It may have finished between describe and query.
      const now = await handle.describe();
      if (now.status.name === 'COMPLETED') return await handle.result();
      if (now.status.name === 'RUNNING') throw new NoWorkerError(migrationId, now.taskQueue, (err as Error).message ?? String(err));
      throw err;
    }
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new InputError(`no migration with id "${migrationId}" (looked for workflow ${migrationWorkflowId(migrationId)})`);
    throw err;
  }
}

/** The migration's plan settings and user-list location, from its first recorded input. */
export async function migrationInput(client: Client, migrationId: string): Promise<{ input: MigrationInput; handle: MigrationHandle; status: string; taskQueue: string; memo?: Record<string, unknown> }> {
  const handle = client.workflow.getHandle<typeof migrationWorkflow>(migrationWorkflowId(migrationId));
  let d;
  try {
    d = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new InputError(`no migration with id "${migrationId}" (looked for workflow ${migrationWorkflowId(migrationId)})`);
    throw err;
  }
  const history = await handle.fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`workflow ${migrationWorkflowId(migrationId)} has no recorded input in its first history event`);
  const prev = defaultPayloadConverter.fromPayload<MigrationInput>(payload);
  return { input: { settings: prev.settings, usersSite: prev.usersSite, usersTotal: prev.usersTotal, usersEtag: prev.usersEtag, mode: prev.mode }, handle, status: d.status.name, taskQueue: d.taskQueue, memo: d.memo };
}

/**
 * Re-runs a finished migration's failed users: a new run of `migration-<id>` with the same plan in
 * mode `retry`, which skips every user whose manifest is already committed.
 */
export async function retryMigration(client: Client, migrationId: string): Promise<MigrationHandle> {
  const m = await migrationInput(client, migrationId);
  if (m.status === 'RUNNING') throw new InputError(`migration ${migrationId} is still running; retry it once it has finished`);
  const input: MigrationInput = { ...m.input, mode: 'retry' };
  const h = await client.workflow.start('migrationWorkflow', {
    workflowId: migrationWorkflowId(migrationId),
    taskQueue: m.taskQueue,
    args: [input],
    memo: m.memo,
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    typedSearchAttributes: [{ key: SA.migrationId, value: migrationId }, { key: SA.phase, value: 'running' }],
  });
  return h as MigrationHandle;
}
