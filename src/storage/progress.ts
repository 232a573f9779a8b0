import { randomBytes } from 'node:crypto';
import type { LimitFunction } from 'p-limit';
import { progressPrefix } from '../domain/layout';
import type { Site } from './clients';
import { getJson, putJson } from './json-records';
import { listAllKeys } from './listing';

/** What one key's destructive step ended in (its `key`, plus whatever the step records). */
export interface KeyOutcome {
  key: string;
}

/**
 * One batch of a destructive step, as stored under `progressPrefix`. Written with `state: 'issuing'`
 * and the batch's keys before any of them is deleted or restored, then overwritten with
 * `state: 'done'` and one outcome per key that finished. A record left `issuing` marks an interrupted
 * batch: those keys may or may not have been acted on, and the next run acts on them again.
 */
export interface ProgressRecord<O extends KeyOutcome> {
  op: string;
  migrationId: string;
  userId: string;
  run: string;
  batch: number;
  state: 'issuing' | 'done';
  at: string;
  keys: string[];
  outcomes: O[];
}

/** Keys per progress record. */
export const PROGRESS_BATCH = 100;

export interface RecordedProgress<O extends KeyOutcome> {
  /** The outcome of every key some run finished (the first record that has it wins; with `skipDone: false`, the latest run's). */
  done: Map<string, O>;
  /** Keys a run issued and never recorded an outcome for (an interrupted batch, or a failed item). */
  interrupted: Set<string>;
}

/** Reads every progress record of the user's `op`. */
export async function readProgress<O extends KeyOutcome>(site: Site, migrationId: string, userId: string, op: string, generation: string, signal?: AbortSignal): Promise<RecordedProgress<O>> {
  const done = new Map<string, O>();
  const interrupted = new Set<string>();
  const keys = await listAllKeys(site, progressPrefix(migrationId, userId, op, generation), `listing the ${op} progress records`, signal);
  for (const key of keys) {
    const r = await getJson<ProgressRecord<O>>(site, key, `a ${op} progress record`, signal);
    if (!r) continue;
    for (const k of r.keys) interrupted.add(k);
    if (r.state === 'done') for (const o of r.outcomes) if (!done.has(o.key)) done.set(o.key, o);
  }
  for (const k of done.keys()) interrupted.delete(k);
  return { done, interrupted };
}

/**
 * Runs `work` on every item whose key has no recorded outcome yet, in batches of PROGRESS_BATCH (each
 * batch `limit`-parallel), recording each batch before its first call and after its last, and adds the
 * new outcomes to `progress.done`. A failing item fails the batch only after the others finished, so
 * the record holds every outcome that happened; the first error is then thrown. Idempotent as long as
 * `work` is (an interrupted batch's keys are worked on again by the next run).
 */
export async function runRecorded<T, O extends KeyOutcome>(opts: {
  site: Site; migrationId: string; userId: string; op: string; generation: string; signal?: AbortSignal;
  items: readonly T[]; keyOf: (item: T) => string; progress: RecordedProgress<O>; limit: LimitFunction;
  work: (item: T) => Promise<O>;
  /** false: work on every item, even one with a recorded outcome (whose new outcome then replaces it). */
  skipDone?: boolean;
}): Promise<void> {
  const { site, migrationId, userId, op, generation, progress, signal } = opts;
  const todo = opts.skipDone === false ? [...opts.items] : opts.items.filter((i) => !progress.done.has(opts.keyOf(i)));
  const run = `${new Date().toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
  for (let batch = 0; batch * PROGRESS_BATCH < todo.length; batch++) {
    const items = todo.slice(batch * PROGRESS_BATCH, (batch + 1) * PROGRESS_BATCH);
    const key = `${progressPrefix(migrationId, userId, op, generation)}${run}-${String(batch).padStart(6, '0')}.json`;
    const record: ProgressRecord<O> = { op, migrationId, userId, run, batch, state: 'issuing', at: new Date().toISOString(), keys: items.map(opts.keyOf), outcomes: [] };
    await putJson(site, key, record, `a ${op} progress record`, { signal });
    const settled = await Promise.allSettled(items.map((i) => opts.limit(() => opts.work(i))));
    const outcomes = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (outcomes.length > 0) {
      // Not aborted with the activity: after a pause or cancel the record still says what was done.
      await putJson(site, key, { ...record, state: 'done', at: new Date().toISOString(), outcomes }, `a ${op} progress record`);
    }
    for (const o of outcomes) progress.done.set(o.key, o);
    if (failed) throw failed.reason;
  }
}
