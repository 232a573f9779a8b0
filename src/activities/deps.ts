import { setMaxListeners } from 'node:events';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ByteBudget } from '../storage/byte-budget';
import type { Site, SiteClients } from '../storage/clients';
import { StorageError } from '../storage/errors';
import type { Hasher } from '../storage/hash-pool';
import type { CopySettings } from '../storage/object-copy';
import { isEea } from '../domain/eea';

/** What the worker builds once and injects into every activity (tests pass their own). */
export interface ActivityDeps {
  clients: SiteClients;
  budget: ByteBudget;
  copy: CopySettings;
  /** Where object bytes are hashed: the worker's hash threads (default: the activity's own thread). */
  hasher?: Hasher;
  /** One copy activity call returns after this many listing pages or this long, so progress is durable in history. */
  batch: { maxPages: number; maxMillis: number; listPageSize: number };
}

export function site(deps: ActivityDeps, name: string): Site {
  const s = deps.clients.get(name);
  if (!s) {
    throw ApplicationFailure.create({
      type: 'UnknownSite',
      nonRetryable: true,
      message: `site "${name}" is not in this worker's sites file; give every worker the same sites file (CLOVER_SITES)`,
    });
  }
  return s;
}

/** Residency guard, again at the point of writing: a worker never writes user data outside the EEA. */
export function targetSite(deps: ActivityDeps, name: string): Site {
  const s = site(deps, name);
  if (!isEea(s.config.jurisdiction)) {
    throw ApplicationFailure.create({
      type: 'ResidencyViolation',
      nonRetryable: true,
      message: `refusing to write to site "${name}": its jurisdiction ${s.config.jurisdiction} is outside the EEA`,
    });
  }
  return s;
}

/**
 * Permanent storage errors become non-retryable failures; transient ones retry under the activity's
 * policy. After a cancellation (pause, cancel, worker shutdown) the cancellation itself is reported,
 * whatever error the aborted S3 call raised.
 */
export function toFailure(err: unknown): unknown {
  const signal = Context.current().cancellationSignal;
  if (signal.aborted) return signal.reason ?? err;
  if (err instanceof StorageError && err.permanent) {
    return ApplicationFailure.create({ type: err.type, nonRetryable: true, message: err.message });
  }
  return err;
}

/** Heartbeat period while an activity works (the SDK throttles what reaches the server). */
export const HEARTBEAT_EVERY_MS = 5_000;

/** The activity's cancellation signal, shared by all its concurrent S3 calls (hence no listener limit). */
export function sharedSignal(ctx: Context): AbortSignal {
  setMaxListeners(0, ctx.cancellationSignal);
  return ctx.cancellationSignal;
}

/**
 * Heartbeats `details()` every few seconds until the returned function is called: one large object can
 * stream for longer than the heartbeat timeout, and a silent attempt would be timed out and run twice.
 */
export function heartbeatEvery(ctx: Context, details: () => unknown = () => undefined): () => void {
  const beat = setInterval(() => ctx.heartbeat(details()), HEARTBEAT_EVERY_MS);
  return () => clearInterval(beat);
}

