import { setMaxListeners } from 'node:events';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { REPEATABLE_ATTEMPTS } from '../domain/error-classes';
import { StorageError, givenUp } from '../storage/errors';

/** Heartbeat period while an activity works (the SDK throttles what reaches the server). */
export const HEARTBEAT_EVERY_MS = 5_000;

/** What every activity body gets from `runActivity`. */
export interface ActivityScope {
  ctx: Context;
  /** The activity's cancellation signal, shared by all its concurrent S3 calls (hence no listener limit). */
  signal: AbortSignal;
  /** Sets what heartbeats carry from now on (the checkpoint a retried attempt resumes from). */
  checkpointWith(details: () => unknown): void;
  /** Heartbeats the current checkpoint now (e.g. after each object, or once an upload id exists). */
  beat(): void;
}

/**
 * The one scaffold every activity runs in: heartbeats the checkpoint every few seconds until the body
 * ends (one large object can stream for longer than the heartbeat timeout, and a silent attempt would
 * be timed out and run twice), and turns what the body throws into what Temporal should do with it.
 */
export async function runActivity<T>(body: (scope: ActivityScope) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  setMaxListeners(0, ctx.cancellationSignal);
  let details: () => unknown = () => undefined;
  const beat = () => ctx.heartbeat(details());
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    return await body({ ctx, signal: ctx.cancellationSignal, checkpointWith: (d) => (details = d), beat });
  } catch (err) {
    throw toFailure(ctx, err);
  } finally {
    clearInterval(timer);
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
