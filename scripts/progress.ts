import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { ExitCode } from '../src/config/errors';
import { NoWorkerError, migrationStatus } from '../src/operator/migrations';
import type { MigrationStatus } from '../src/workflows/definitions';
import { formatBytes, out } from './common';

export function summarize(s: MigrationStatus): string[] {
  const c = s.counters;
  const secs = Math.max(1, ((s.finishedAt ? Date.parse(s.finishedAt) : Date.now()) - Date.parse(s.startedAt)) / 1000);
  const finished = s.usersDone + s.usersFailed + s.usersAlreadyDone;
  const rate = c.bytes / secs;
  const eta = finished > 0 && s.phase === 'running' ? Math.round(((s.usersTotal - finished) * secs) / finished) : undefined;
  return [
    `migration ${s.migrationId}: ${s.phase}${s.pausedAt ? ` since ${s.pausedAt}` : ''}`,
    `users:   ${s.usersDone} done, ${s.usersFailed} failed, ${s.usersInFlight} in flight, ${s.usersCancelled} cancelled, ${s.usersAlreadyDone} already done earlier, of ${s.usersTotal}`,
    `objects: ${c.objects} (${formatBytes(c.bytes)}): ${c.copied} copied, ${c.skipped} already in place, ${c.verified} verified, ${c.recopied} re-copied, ${c.conflicts} conflict(s)`,
    `rate:    ${formatBytes(rate)}/s over ${Math.round(secs)}s${eta !== undefined ? `, ETA ${eta}s` : ''}`,
    ...(s.usersAwaitingDisposal || c.sourceDeleted || c.sourceKeptChanged || c.sourceResidue
      ? [`cut-over: ${s.usersAwaitingDisposal} user(s) awaiting cut-over (grace period or in-sync); sources: ${c.sourceDeleted} deleted, ${c.sourceKeptChanged} kept (changed since the copy), ${c.sourceResidue ?? 0} residue`]
      : []),
  ];
}

function bar(s: MigrationStatus): string {
  const finished = s.usersDone + s.usersFailed + s.usersAlreadyDone;
  const frac = s.usersTotal ? finished / s.usersTotal : 1;
  const w = 30;
  const n = Math.round(frac * w);
  return `[${'#'.repeat(n)}${'.'.repeat(w - n)}] ${finished}/${s.usersTotal} users, ${s.counters.objects} objects, ${formatBytes(s.counters.bytes)}`;
}

/**
 * The migration's status, waiting out a time without a worker (one killed and not yet replaced, or none
 * started yet): says once what it waits for, then carries on when a worker answers.
 */
export async function statusRidingOut(client: Client, migrationId: string, say: (line: string) => void = out): Promise<MigrationStatus> {
  let told = false;
  for (;;) {
    try {
      const s = await migrationStatus(client, migrationId);
      if (told) say('a worker answered again; carrying on');
      return s;
    } catch (err) {
      if (!(err instanceof NoWorkerError)) throw err;
      if (!told) say(`waiting for a worker: ${err.message}`);
      told = true;
    }
  }
}

/** Prints progress until the migration finishes; returns its final status. */
export async function watch(client: Client, migrationId: string, intervalMs = 1000): Promise<MigrationStatus> {
  const tty = process.stdout.isTTY;
  let last = '';
  for (;;) {
    const s = await statusRidingOut(client, migrationId, (l) => out(tty ? `\n${l}` : l));
    const allMigrated = s.usersInFlight === 0 && s.usersDone + s.usersFailed + s.usersAlreadyDone + s.usersCancelled >= s.usersTotal;
    // With delete-after-verify the migration runs on through the grace period; the move itself is done here.
    if ((s.phase !== 'running' && s.phase !== 'paused') || (allMigrated && s.usersAwaitingDisposal > 0)) {
      if (tty) process.stdout.write('\n');
      return s;
    }
    const line = bar(s);
    if (tty) process.stdout.write(`\r${line}`);
    else if (line !== last) out(line);
    last = line;
    await sleep(intervalMs);
  }
}

export function printFinal(s: MigrationStatus): number {
  for (const l of summarize(s)) out(l);
  for (const f of s.failed) out(`FAILED user ${f.userId}: ${f.reason}`);
  if (s.usersFailed > s.failed.length) out(`... and ${s.usersFailed - s.failed.length} more failed user(s)`);
  const everyone = s.usersDone + s.usersAlreadyDone === s.usersTotal;
  return everyone && s.usersFailed === 0 && s.phase !== 'cancelled' && s.phase !== 'completed-with-failures' ? ExitCode.ok : ExitCode.failures;
}
