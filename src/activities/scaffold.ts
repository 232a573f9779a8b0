import { AsyncLocalStorage } from 'node:async_hooks';
import { setMaxListeners } from 'node:events';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { REPEATABLE_ATTEMPTS } from '../domain/error-classes';
import { StorageError, givenUp } from '../storage/errors';
import { withProgress } from '../storage/liveness';

/**
 * Who writes a manifest generation (a pass's commit, a disposal's or a rollback's amendment): stable
 * across retries of one activity, distinct between activities and runs, so a retried attempt
 * recognises its own earlier write (`commitManifestGeneration`).
 */
export function writer(): string {
  const i = Context.current().info;
  return `${i.workflowExecution?.workflowId ?? '?'}/${i.workflowExecution?.runId ?? '?'}/${i.activityId}`;
}

/** Heartbeat period while an activity works (the SDK throttles what reaches the server). */
export const HEARTBEAT_EVERY_MS = 5_000;

/**
 * Without progress (bytes read, an S3 request completed, an object done) for this long the periodic
 * heartbeat stops, so Temporal times the attempt out (heartbeat timeout 20 s) and retries it: a wedged
 * attempt is replaced within about a minute. Well above the S3 clients' idle timeout (30 s), so a hung
 * request is first retried by the SDK on a new connection, and above any legitimate silence (one request).
 */
export const STALL_AFTER_MS = 40_000;

/**
 * Heartbeats an activity sends in its first second are dropped (the periodic one still runs): a
 * sub-second activity then costs no heartbeat (a Temporal Cloud action each). A retry of such an
 * attempt redoes at most a second of idempotent work.
 */
export const heartbeatPolicy = {
  /** No heartbeat in an activity's first this many ms (tests that read every checkpoint set 0). */
  firstAfterMs: 1_000,
  /**
   * Progress heartbeats (one per object done) at most this often: the latest checkpoint is sent at the
   * end of the gap. The SDK throttles what reaches the server to one per 2 s anyway, but it serialises
   * every call (details to a payload, then protobuf); on the bench's small set the difference was within
   * the machine's noise (docs/architecture.md, "Where the time goes").
   */
  minGapMs: 500,
};

/**
 * One stage of an activity that runs several activity bodies in turn (activities/small-user.ts): each
 * body's heartbeats are sent tagged with the stage (and what the stages before it returned), and a
 * retried attempt gives each body only the checkpoint of its own stage.
 */
interface Stage {
  stage: string;
  resumed: unknown;
  carry: Record<string, unknown>;
}
const currentStage = new AsyncLocalStorage<Stage>();

/** What a staged activity heartbeats: the stage, its body's checkpoint, and the earlier stages' results. */
export interface StagedDetails {
  stage: string;
  details?: unknown;
  carry: Record<string, unknown>;
}

/** Runs `fn` (activity functions built on `runActivity`) as stage `stage` of the current activity. */
export function inStage<T>(stage: string, resumed: unknown, carry: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  return currentStage.run({ stage, resumed, carry }, fn);
}

/** Records, now, that the current activity has reached `stage` (so a retry starts there). */
export function markStage(stage: string, carry: Record<string, unknown>): void {
  const d: StagedDetails = { stage, carry };
  // A local activity has no heartbeats (a retry starts it afresh).
  if (!Context.current().info.isLocal) Context.current().heartbeat(d);
}

/** What every activity body gets from `runActivity`. */
export interface ActivityScope {
  ctx: Context;
  /** The checkpoint of the attempt before this one (its last heartbeat), if any. */
  resumed: unknown;
  /** The activity's cancellation signal, shared by all its concurrent S3 calls (hence no listener limit). */
  signal: AbortSignal;
  /** Sets what heartbeats carry from now on (the checkpoint a retried attempt resumes from). */
  checkpointWith(details: () => unknown): void;
  /** Heartbeats the current checkpoint now (e.g. after each object, or once an upload id exists). */
  beat(): void;
}

/**
 * The one scaffold every activity runs in: heartbeats the checkpoint every few seconds while the body
 * makes progress (one large object can stream for longer than the heartbeat timeout, and a silent
 * attempt would be timed out and run twice), stops heartbeating once it has made none for
 * STALL_AFTER_MS (Temporal then times the attempt out and retries it), aborts the stalled attempt's
 * requests once that timeout has passed, and turns what the body throws into what Temporal should do.
 */
export async function runActivity<T>(body: (scope: ActivityScope) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const stage = currentStage.getStore();
  const resumed = stage ? stage.resumed : ctx.info.heartbeatDetails;
  const startedAt = Date.now();
  const send = (d: unknown) => {
    if (Date.now() - startedAt < heartbeatPolicy.firstAfterMs || ctx.info.isLocal) return;
    ctx.heartbeat(stage ? ({ stage: stage.stage, details: d, carry: stage.carry } satisfies StagedDetails) : d);
  };
  const stalled = new AbortController();
  const signal = AbortSignal.any([ctx.cancellationSignal, stalled.signal]);
  setMaxListeners(0, ctx.cancellationSignal, signal);
  let details: () => unknown = () => undefined;
  let lastProgress = Date.now();
  const progress = () => (lastProgress = Date.now());
  let lastSent = 0;
  let trailing: NodeJS.Timeout | undefined;
  const sendNow = () => {
    trailing = undefined;
    lastSent = Date.now();
    send(details());
  };
  const beat = () => {
    progress();
    if (trailing) return;
    const wait = lastSent + heartbeatPolicy.minGapMs - Date.now();
    if (wait <= 0) sendNow();
    else trailing = setTimeout(sendNow, wait);
  };
  // Past this, Temporal has timed the attempt out: its hung requests are aborted so they free their slot.
  const abandonAfterMs = STALL_AFTER_MS + (ctx.info.heartbeatTimeoutMs ?? 0) + HEARTBEAT_EVERY_MS;
  let warned = false;
  const timer = setInterval(() => {
    const silentMs = Date.now() - lastProgress;
    if (silentMs < STALL_AFTER_MS) {
      warned = false;
      send(details());
      return;
    }
    if (!warned) {
      warned = true;
      ctx.log.warn('no progress: heartbeats stop so that Temporal times this attempt out and retries it', { silentMs });
    }
    if (silentMs >= abandonAfterMs && !stalled.signal.aborted) stalled.abort(new Error(`no progress for ${Math.round(silentMs / 1000)} s: attempt abandoned`));
  }, HEARTBEAT_EVERY_MS);
  try {
    return await withProgress(progress, () => body({ ctx, resumed, signal, checkpointWith: (d) => (details = d), beat }));
  } catch (err) {
    throw toFailure(ctx, err);
  } finally {
    clearInterval(timer);
    clearTimeout(trailing);
  }
}

/**
 * Permanent errors (a StorageError or InvalidManifestError with `permanent` set) become non-retryable
 * failures; so does a repeatable StorageError (the store refuses the request the same way each time)
 * from the activity's REPEATABLE_ATTEMPTS-th attempt on. Transient ones retry under the activity's
 * policy. After a cancellation (pause, cancel, worker shutdown) the cancellation itself is reported,
 * whatever error the aborted S3 call raised.
 */
function toFailure(ctx: Context, err: unknown): unknown {
  const signal = ctx.cancellationSignal;
  if (signal.aborted) return signal.reason ?? err;
  if (err instanceof StorageError && err.repeatable && ctx.info.attempt >= REPEATABLE_ATTEMPTS) err = givenUp(err, ctx.info.attempt);
  const e = err as { permanent?: unknown; type?: unknown; message?: unknown };
  if (err instanceof Error && e.permanent === true && typeof e.type === 'string') {
    return ApplicationFailure.create({ type: e.type, nonRetryable: true, message: err.message });
  }
  return err;
}
