import {
  ActivityFailure, ApplicationFailure, CancellationScope, ActivityCancellationType, ContinueAsNew, allHandlersFinished, condition, continueAsNew,
  getExternalWorkflowHandle, isCancellation, log, patched, proxyActivities, proxyLocalActivities, sleep, upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import type { CloverActivities } from '../activities';
import type { Transferred } from '../activities/copy';
import { durationMs } from '../config/duration';
import { userPrefixFor } from '../domain/layout';
import { PERMANENT_FAILURES } from '../domain/names';
import {
  ACTIVITY_RETRY, SA, addCounters, cutReason, rootMessage, userDisposedSignal, userFinishedSignal, zeroCounters,
  type DisposalOutcome, type PassReport, type UserMigrationInput, type UserOutcome,
} from './definitions';
import { failedPassReport, passReport } from './pass-report';
import { UserControls } from './user-controls';


const { copyUserObjects, verifyUserObjects, disposeSources, firstPassSmallUser } = proxyActivities<CloverActivities>({
  // Liveness comes from heartbeats (a dead worker is noticed in 20 s); a copy of a large user may take long.
  startToCloseTimeout: '7d',
  heartbeatTimeout: '20s',
  // On pause or cancel, wait until the activity has really stopped: no copy runs while paused.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: ACTIVITY_RETRY,
});
const { commitManifest, cleanupUser, readManifestHead, prepareArchived } = proxyActivities<CloverActivities>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '20s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: ACTIVITY_RETRY,
});

// A small user's first pass (one listing page, a bounded number of bytes; the worker decides and hands any
// other user back as deferred): a local activity, recorded as one marker instead of an activity's three
// events and task dispatches. It sends no heartbeats: a worker that dies in it is noticed when its workflow
// task times out (10 s), and the pass is redone from the start (its copies are found in the target).
// Three attempts at most: a local activity's retries keep its workflow task open (three history events
// every 8 s), so a fault that outlasts them hands the pass to the regular activity, whose retries wait
// on the server and add nothing to the history.
const LOCAL_FIRST_PASS_ATTEMPTS = 3;
const { firstPassSmallUser: firstPassLocal } = proxyLocalActivities<CloverActivities>({
  startToCloseTimeout: '30m',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { ...ACTIVITY_RETRY, maximumAttempts: LOCAL_FIRST_PASS_ATTEMPTS },
});

// Bounded (about ten minutes with the backoff): a failed user is reported to the migration even when the
// ledger's site stays unreachable; the evidence is then missing (verify: INCOMPLETE) and the worker logs why.
const { recordUserFailed } = proxyActivities<CloverActivities>({
  startToCloseTimeout: '2m',
  retry: { ...ACTIVITY_RETRY, maximumAttempts: 12 },
});

/** Resume point of the first pass carried across continue-as-new (a user with very many pages). */
interface UserCursor {
  page: number;
  cursor?: string;
  transferred: Transferred;
  /** A pause in force when the run continued as new: the new run starts paused. */
  paused?: boolean;
}

/**
 * Carried across continue-as-new once the first pass is committed and reported: the new run goes
 * straight back to waiting for its cut-over (in-sync, or the grace period), without another first
 * pass and without reporting to the migration again.
 */
interface InSyncCarry {
  stage: 'in-sync';
  paused?: boolean;
  /** The first pass's commit time (workflow time): the grace period runs from it. */
  firstCommittedAt: string;
  /** What the first pass reported to the migration. */
  outcome: UserOutcome;
  /** Objects in the newest committed generation (for the maxDeletes check). */
  objects: number;
  lastPass?: PassReport;
}

type Phase = 'copy' | 'verify' | 'commit' | 'in-sync' | 'grace' | 'awaiting-operator' | 'final-pass' | 'delete' | 'done' | 'failed' | 'cancelled';
const setPhase = (p: Phase) => upsertSearchAttributes([{ key: SA.phase, value: p }]);

/**
 * Moves one user's shard in passes. A pass copies (all sources, a batch of listing pages per activity
 * call), verifies and commits one manifest generation: the first pass generation 1, each delta pass the
 * newest generation + 1 (new and changed objects copied, unchanged ones carried, erasures carried over).
 *
 * After the first pass the user reports to the migration (by workflow id, so it reaches the newest run).
 * Then, by the plan's `cutover` and `sourceDisposition`:
 * - auto + keep: done.
 * - auto + delete-after-verify: phase grace (a durable timer from the first commit; `clover cutover`
 *   ends it, `clover sync` passes run meanwhile) → maxDeletes check → final-pass → delete.
 * - operator: phase in-sync, a delta pass on every `clover sync` (an update answered with the pass's
 *   report) and every `syncInterval`, until `clover cutover` → final-pass → with delete-after-verify the
 *   rest of the grace period since the first commit, the maxDeletes check and delete; with keep, done.
 * A final pass that fails deletes nothing: the cut-over fails and is reported. A failed user never
 * fails the migration. Pause holds every activity at its next checkpoint; cancel aborts uploads and reports.
 *
 * Modes `sync-once` / `cutover-once` (started by the CLI for a user whose workflow had finished): one
 * delta pass / the cut-over; they never report to the migration.
 */
export async function userMigrationWorkflow(input: UserMigrationInput, resume?: UserCursor | InSyncCarry): Promise<UserOutcome> {
  const { settings, userId, targetSite } = input;
  const migrationId = settings.migrationId;
  const mode = input.mode ?? 'migrate';
  const prefix = userPrefixFor(settings.userPrefix, userId);
  const parent = getExternalWorkflowHandle(input.parentWorkflowId);
  const operator = settings.cutover === 'operator';
  const disposing = settings.sourceDisposition === 'delete-after-verify';
  const carried = resume && 'stage' in resume ? resume : undefined;
  const cursor = resume && !('stage' in resume) ? resume : undefined;

  /** The phase last entered (a failure is recorded with it). */
  let phase: Phase = 'copy';
  const enter = (p: Phase) => {
    phase = p;
    setPhase(p);
  };
  const controls = new UserControls(userId, resume?.paused === true);
  // Before the handlers: an update buffered for this run's first activation is validated as they are set.
  controls.syncState = mode !== 'migrate' ? 'one-off' : carried ? 'open' : 'first-pass';
  controls.installHandlers();
  const pausable = <T>(fn: () => Promise<T>) => controls.pausable(fn);
  // Only the user's own run in the migration reports to it; one-off runs answer the CLI alone.
  const reportFinished = async (o: UserOutcome) => {
    if (mode === 'migrate') await parent.signal(userFinishedSignal, o);
  };
  const reportDisposed = async (d: DisposalOutcome) => {
    if (mode === 'migrate') await parent.signal(userDisposedSignal, d);
  };

  /** Set once the first pass is committed and reported. */
  let outcome: UserOutcome | undefined = carried?.outcome;
  let firstCommittedAt = carried?.firstCommittedAt;
  let objects = carried?.objects ?? 0;
  let lastPass = carried?.lastPass;

  try {
    if (mode === 'sync-once') {
      const r = await deltaPass(true);
      enter(r.error ? 'failed' : 'done');
      return await finish({ userId, ok: !r.error, reason: r.error, counters: zeroCounters(), lastPass: r });
    }
    if (mode === 'cutover-once') {
      if (!disposing) throw ApplicationFailure.create({ type: 'CutOver', nonRetryable: true, message: `user ${userId}: sourceDisposition is "keep": there is no source to delete` });
      return await finish(await cutOver(true));
    }
    if (!outcome) {
      // Only a plan that restores archived objects looks for them before the first pass (an activity and a
      // listing per source per user); otherwise the first pass's copy blocks each archived key it lists
      // (one ARCHIVED line per key) and the user fails with them. Histories from before replay without it.
      if (settings.restoreArchived && patched('archived-objects')) await archivedReady();
      outcome = await firstPass();
      if (!operator && !disposing) {
        controls.syncState = 'done';
        return await finish(outcome);
      }
    }
    controls.syncState = 'open';
    if (operator) {
      enter('in-sync');
      await serveSyncs({ interval: settings.syncInterval });
    } else {
      enter('grace');
      // A durable timer from the first commit: it survives worker and server restarts. `clover cutover` ends it early.
      await serveSyncs({ deadline: graceEnd() });
    }
    controls.syncState = 'cut-over';
    return await finish(await cutOver(false));
  } catch (err) {
    // Continue-as-new is thrown as an error: it is the run handing over, not a failure of the user.
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      return await CancellationScope.nonCancellable(async () => {
        enter('cancelled');
        await cleanupUser({ targetSite, prefix });
        const cancelled: UserOutcome = { userId, ok: false, cancelled: true, reason: 'cancelled', counters: zeroCounters(), lastPass };
        // A user already reported as migrated is only waiting for its cut-over: nothing to report again.
        if (!outcome) await reportFinished(cancelled);
        else await reportDisposed({ userId, deleted: 0, keptChanged: 0, error: 'cancelled before the source was deleted' });
        return await finish(outcome ? { ...outcome, lastPass } : cancelled);
      });
    }
    const full = rootMessage(err);
    log.warn('user migration failed', { userId, mode, reason: full });
    const reason = cutReason(full);
    const failedIn = phase;
    enter('failed');
    if (outcome) {
      await reportDisposed({ userId, deleted: 0, keptChanged: 0, error: reason });
      return await finish({ ...outcome, lastPass, reason });
    }
    const failed: UserOutcome = { userId, ok: false, reason, counters: zeroCounters(), lastPass };
    // patched: a history from before this record replays without scheduling it.
    if (mode === 'migrate' && patched('record-user-failed')) {
      // Evidence that the user's data did not move (verify: FAILED rather than INCOMPLETE). Best effort:
      // the failure is reported to the migration whether or not the ledger could take it.
      try {
        await recordUserFailed({
          migrationId, userId, reason, phase: failedIn, failedAt: new Date().toISOString(),
          ledgerSite: settings.routing.default, evidenceRetention: settings.evidenceRetention,
        });
      } catch (e) {
        log.warn('the user\'s failure could not be recorded in the ledger', { userId, reason: rootMessage(e) });
      }
    }
    await reportFinished(failed);
    return await finish(failed);
  }

  /** The run ends: sync updates still waiting fail with a message, the others have their answer. */
  async function finish(o: UserOutcome): Promise<UserOutcome> {
    controls.close();
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    return o;
  }

  function graceEnd(): number {
    return Date.parse(firstCommittedAt ?? new Date().toISOString()) + durationMs(settings.gracePeriod);
  }

  /**
   * Archived source objects before the first pass: none, or restored. Without the plan's
   * `restoreArchived` an archived object fails the user at once (ArchivedObjects, one line per key);
   * with it the restores are asked for, then a durable timer polls their HEAD every `pollInterval`
   * until each says `ongoing-request="false"` (survives worker and server restarts).
   */
  async function archivedReady(): Promise<void> {
    const restore = settings.restoreArchived;
    for (;;) {
      const r = await pausable(() => prepareArchived({
        userId, sources: settings.sources, prefix, ...(restore ? { restore: { days: restore.days, tier: restore.tier } } : {}),
      }));
      if (r.pending === 0 || !restore) return;
      log.info('waiting for archived objects to be restored', { userId, pending: r.pending, archived: r.archived });
      await sleep(durationMs(restore.pollInterval));
    }
  }

  /** The first pass: generation 1; keys it cannot migrate fail the user. Reports to the migration. */
  async function firstPass(): Promise<UserOutcome> {
    const { report, c, v, transferred, committedAt } = await pass('first', true);
    firstCommittedAt = committedAt;
    objects = c.objects;
    lastPass = report;
    const counters = addCounters(zeroCounters(), {
      objects: c.objects, bytes: c.bytes, copied: c.copied, skipped: c.skipped, verified: v.verified, conflicts: c.conflicts,
      transferredObjects: transferred.objects + v.transferredObjects, transferredBytes: transferred.bytes + v.transferredBytes, recopied: v.recopied,
      partsSent: transferred.parts ?? 0, partsReused: transferred.partsReused ?? 0,
    });
    const o: UserOutcome = { userId, ok: true, counters, manifestKey: c.manifestKey, awaitingDisposal: disposing || operator, lastPass: report };
    // Syncs are accepted from the moment the phase says so (an operator who sees in-sync may sync at once),
    // even while the report to the migration below is still in flight; the wait loop serves them.
    if (disposing || operator) controls.syncState = 'open';
    enter(operator ? 'in-sync' : disposing ? 'grace' : 'done');
    // Reported now, so the user's slot in the migration's window is free while it waits for its cut-over.
    await reportFinished(o);
    return o;
  }

  /**
   * One pass: copy, verify, commit one manifest generation. A delta pass starts from the newest
   * committed generation and is refused when there is none, or the user is cut over or rolled back.
   */
  async function pass(kind: 'first' | 'delta', phases: boolean) {
    let generation = 1;
    if (kind === 'delta') {
      const head = await pausable(() => readManifestHead({ migrationId, userId, targetSite }));
      if (!head) throw ApplicationFailure.create({ type: 'NoManifest', nonRetryable: true, message: `user ${userId} has no committed manifest (its first pass never finished): nothing to sync; \`clover retry\` migrates it` });
      if (head.rolledBack) throw ApplicationFailure.create({ type: 'RolledBack', nonRetryable: true, message: `user ${userId} was rolled back: no pass can run any more` });
      if (head.cutOver) throw ApplicationFailure.create({ type: 'CutOver', nonRetryable: true, message: `user ${userId} is already cut over (its sources were emptied): no pass can run any more` });
      generation = head.generation + 1;
    }
    const verifyInput = { migrationId, userId, targetSite, prefix, mode: settings.verify, objectsPerUser: settings.concurrency.objectsPerUser, generation };
    const commitInput = (committedAt: string) => ({ migrationId, userId, targetSite, userPrefix: prefix, sources: settings.sources, generation, kind, committedAt, ledgerSite: settings.routing.default, evidenceRetention: settings.evidenceRetention });
    let from = kind === 'first' ? cursor : undefined;
    // The first pass of a user starts (phase copy, set when the migration started it) with one activity
    // that copies, verifies and commits a user whose objects fit one copy call; others go on from its cursor.
    const oneActivity = kind === 'first' && input.firstPassOneActivity === true;
    const onePhase = oneActivity && !from;
    if (onePhase) {
      // Workflow time: a retried or re-run commit writes the very same manifest.
      const committedAt = new Date().toISOString();
      const copyInput = {
        migrationId, userId, sources: settings.sources, targetSite, prefix, conflictPolicy: settings.conflictPolicy,
        objectsPerUser: settings.concurrency.objectsPerUser, generation, page: 0, transferred: { objects: 0, bytes: 0 },
        ...(settings.restoreArchived ? { restoreArchived: true } : {}), ...(settings.targetStorageClass ? { targetStorageClass: settings.targetStorageClass } : {}), ...(settings.targetRetention ? { targetRetention: settings.targetRetention } : {}),
      };
      const first = { copy: copyInput, verify: verifyInput, commit: commitInput(committedAt) };
      let r = input.firstPassLocal === true ? await pausable(() => firstPassLocal(first)).catch(outOfAttempts) : undefined;
      if (!r || r.copy.deferred) r = await pausable(() => firstPassSmallUser(first));
      if (r.commit && r.verify) return { report: passReport(userId, kind, r.commit, r.verify), c: r.commit, v: r.verify, transferred: r.copy.transferred, committedAt };
      blockedFails(r.copy);
      from = { page: r.copy.page, cursor: r.copy.cursor, transferred: r.copy.transferred };
    }
    // The first pass's phase is copy from its start (search attribute set when the migration started it).
    if (phases && !oneActivity) enter('copy');
    const transferred = await copyAll(generation, from);
    if (phases) enter('verify');
    const v = await pausable(() => verifyUserObjects(verifyInput));
    if (phases) enter('commit');
    // Workflow time: a retried or re-run commit writes the very same manifest.
    const committedAt = new Date().toISOString();
    const c = await pausable(() => commitManifest(commitInput(committedAt)));
    return { report: passReport(userId, kind, c, v), c, v, transferred, committedAt };
  }

  /**
   * A local first pass that failed with attempts left would have been retried: one that reaches here
   * failed for good (permanent, rethrown), was cancelled (rethrown), or ran out of its attempts (or time),
   * and gives way to the regular activity. (A local activity's failure arrives unwrapped, with no retry
   * state, hence the test on the failure itself.)
   */
  function outOfAttempts(err: unknown): undefined {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    const permanent = cause instanceof ApplicationFailure && (cause.nonRetryable || (cause.type != null && PERMANENT_FAILURES.includes(cause.type)));
    if (isCancellation(err) || permanent) throw err;
    log.warn('local first pass out of attempts: the regular activity takes it over', { userId, reason: rootMessage(err) });
    return undefined;
  }

  /** A first pass that met keys it cannot migrate fails the user. */
  function blockedFails(r: { blockedCount: number; blocked: { key: string; reason: string }[] }): void {
    if (r.blockedCount === 0) return;
    // Archived objects (no restoreArchived in the plan): one ARCHIVED line per key, as the estimate gives them.
    if (r.blocked.every((b) => b.reason.startsWith('ARCHIVED '))) {
      const more = r.blockedCount > r.blocked.length ? `\n... and ${r.blockedCount - r.blocked.length} more archived object(s)` : '';
      throw ApplicationFailure.create({ type: 'ArchivedObjects', nonRetryable: true, message: `${r.blocked.map((b) => b.reason).join('\n')}${more}` });
    }
    throw ApplicationFailure.create({
      type: 'SourcesConflict',
      nonRetryable: true,
      message: `${r.blockedCount} key(s) could not be migrated; first ${JSON.stringify(r.blocked[0]?.key)}: ${r.blocked[0]?.reason}`,
    });
  }

  /**
   * A delta pass, numbered for the sync updates waiting for it. A pass that fails (not a cancellation)
   * gives a report with `error`: the user keeps its newest generation and keeps waiting.
   */
  async function deltaPass(phases = false): Promise<PassReport> {
    const n = controls.beginPass();
    let report: PassReport;
    try {
      const r = await pass('delta', phases);
      objects = r.c.objects;
      report = r.report;
    } catch (err) {
      if (err instanceof ContinueAsNew || isCancellation(err)) throw err;
      const full = rootMessage(err);
      log.warn('delta pass failed', { userId, reason: full });
      report = failedPassReport(userId, cutReason(full));
    }
    lastPass = report;
    controls.endPass(n, report);
    return report;
  }

  /**
   * Waits for the cut-over (a cutover signal, or `deadline`), running a delta pass for every sync update
   * and every `interval`. Continues as new between passes when the history grows (never while a sync
   * update waits: its answer belongs to this run).
   */
  async function serveSyncs(opts: { interval?: string; deadline?: number }): Promise<void> {
    const firstPassHere = !carried;
    const historyLarge = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? Infinity);
    // A new run starts with a few events of its own: it hands over only after a pass of its own (or when Temporal asks).
    const handOver = () => historyLarge() && allHandlersFinished() && (firstPassHere || controls.passes() > 0 || workflowInfo().continueAsNewSuggested);
    const wake = () => controls.cutoverWanted() || controls.syncWanted() || handOver();
    for (;;) {
      if (controls.cutoverWanted()) return;
      if (controls.syncWanted()) {
        await deltaPass();
        continue;
      }
      if (opts.deadline !== undefined && Date.now() >= opts.deadline) return;
      if (handOver()) {
        const carry: InSyncCarry = { stage: 'in-sync', paused: controls.isPaused(), firstCommittedAt: firstCommittedAt!, outcome: outcome!, objects, lastPass };
        await continueAsNew<typeof userMigrationWorkflow>(input, carry);
      }
      const timeout = Math.min(opts.interval ? durationMs(opts.interval) : Infinity, opts.deadline !== undefined ? opts.deadline - Date.now() : Infinity);
      const woken = timeout === Infinity ? (await condition(wake), true) : await condition(wake, timeout);
      // Timed out before the deadline: the sync interval is up.
      if (!woken && opts.interval && (opts.deadline === undefined || Date.now() < opts.deadline)) await deltaPass();
    }
  }

  /** Above maxDeletes, the deletion waits (phase awaiting-operator) for a cutover of its own. */
  async function approveDeletes(): Promise<void> {
    if (settings.maxDeletes === undefined || objects <= settings.maxDeletes) return;
    enter('awaiting-operator');
    log.warn('deletion above maxDeletes: waiting for `clover cutover --user`', { userId, objects, maxDeletes: settings.maxDeletes });
    controls.consumeCutover();
    await controls.cutoverRequested();
  }

  /**
   * The cut-over: (auto: maxDeletes check) → final delta pass → (operator: rest of the grace period,
   * maxDeletes check) → delete the sources. A final pass that fails deletes nothing; the cut-over fails.
   * `oneOff`: a cutover-once run, asked for by an operator: no grace period, no maxDeletes wait.
   */
  async function cutOver(oneOff: boolean): Promise<UserOutcome> {
    if (!oneOff && !operator) await approveDeletes();
    enter('final-pass');
    const fin = await deltaPass();
    const base: UserOutcome = outcome ?? { userId, ok: true, counters: zeroCounters() };
    const done = { ...base, lastPass: fin, awaitingDisposal: false };
    if (fin.error) {
      enter('failed');
      const reason = cutReason(`the final pass failed, so nothing was deleted: ${fin.error}`);
      await reportDisposed({ userId, deleted: 0, keptChanged: 0, error: reason });
      return { ...done, ok: false, reason };
    }
    if (!disposing) {
      enter('done');
      await reportDisposed({ userId, deleted: 0, keptChanged: 0 });
      return { ...done, sourceDeleted: 0 };
    }
    if (!oneOff && operator) {
      const left = graceEnd() - Date.now();
      if (left > 0) {
        enter('grace');
        await sleep(left);
      }
      await approveDeletes();
    }
    enter('delete');
    const d = await pausable(() => disposeSources({
      migrationId, userId, targetSite, objectsPerUser: settings.concurrency.objectsPerUser, sources: settings.sources, userPrefix: prefix, ledgerSite: settings.routing.default, evidenceRetention: settings.evidenceRetention,
      ...(settings.purgeErased ? { purgeErased: true } : {}),
    }));
    enter('done');
    await reportDisposed({ userId, deleted: d.deleted, keptChanged: d.keptChanged, residue: d.residueCount });
    return {
      ...done, sourceDeleted: d.deleted, residue: d.residue, residueCount: d.residueCount,
      counters: addCounters(done.counters, { sourceDeleted: d.deleted, sourceKeptChanged: d.keptChanged, sourceResidue: d.residueCount ?? 0 }),
    };
  }

  /** Copies every page of the user (a batch of pages per activity call); the first pass continues as new when history grows. */
  async function copyAll(generation: number, from?: UserCursor): Promise<Transferred> {
    let page = from?.page ?? 0;
    let after = from?.cursor;
    let transferred: Transferred = from?.transferred ?? { objects: 0, bytes: 0 };
    for (;;) {
      const r = await pausable(() => copyUserObjects({
        migrationId, userId, sources: settings.sources, targetSite, prefix, conflictPolicy: settings.conflictPolicy,
        objectsPerUser: settings.concurrency.objectsPerUser, generation, page, cursor: after, transferred,
        ...(settings.restoreArchived ? { restoreArchived: true } : {}), ...(settings.targetStorageClass ? { targetStorageClass: settings.targetStorageClass } : {}), ...(settings.targetRetention ? { targetRetention: settings.targetRetention } : {}),
      }));
      page = r.page;
      after = r.cursor;
      transferred = r.transferred;
      if (generation === 1) blockedFails(r);
      if (r.done) return transferred;
      // Only the first pass hands over mid-copy (its cursor resumes it); a delta pass is short and runs whole.
      if (generation === 1 && (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? Infinity))) {
        await continueAsNew<typeof userMigrationWorkflow>(input, { page, cursor: after, transferred, paused: controls.isPaused() });
      }
    }
  }
}
