/**
 * How activities write evidence: one ledger record per event, by the worker's key, at most once per
 * {type, userId, generation} even when the activity is retried after its append.
 */
import { Context } from '@temporalio/activity';
import type { Site } from '../storage/clients';
import type { Retention } from '../storage/json-records';
import type { LedgerEventType, SigningKey } from './ledger';
import { workerActor } from './keys';
import { appendLedger, readLedger } from './storage';

/** Where a migration's ledger is written: its site and, with the plan's evidenceRetention, under Object Lock. */
export interface LedgerTarget {
  site: Site;
  retention?: Retention;
}

export interface UserEvent {
  type: LedgerEventType;
  data: { userId: string; generation: number } & Record<string, unknown>;
}

/**
 * Appends `events` to the migration's ledger (`ledger`), unless the worker has no key or the input
 * names no ledger site (a history from before the ledger). `repeated`: this step may have run before
 * (a retried attempt, or a step that found its own work already committed): then the ledger is read
 * first and an event already recorded with the same type, user and generation is not appended again.
 * Known limit: that check reads the whole ledger (only on a retry or a repeat, never on the first run).
 */
export async function recordUserEvents(
  key: SigningKey | undefined, ledger: LedgerTarget | undefined, migrationId: string, events: UserEvent[], repeated: boolean, signal?: AbortSignal,
): Promise<void> {
  if (!key || !ledger || events.length === 0) return;
  const again = repeated || Context.current().info.attempt > 1;
  const there = again ? await readLedger(ledger.site, migrationId, signal) : [];
  for (const e of events) {
    const dup = there.some((r) => r.type === e.type && r.data.userId === e.data.userId && r.data.generation === e.data.generation);
    if (dup) continue;
    await appendLedger(ledger.site, migrationId, key, { type: e.type, actor: workerActor(), data: e.data, retention: ledger.retention }, signal);
  }
}
