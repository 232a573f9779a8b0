/**
 * What `clover sync` and `clover cutover` print for each user, and their exit codes. Pure: the
 * commands gather the results (src/operator/lifecycle.ts), these turn them into lines and a code.
 */
import { ExitCode } from '../config/errors';
import type { PassReport, UserOutcome } from '../workflows/definitions';

/** One user's `clover sync`: the pass's report (--wait), a request under way, or why none can run. */
export type UserSyncResult =
  | { userId: string; kind: 'pass'; report: PassReport }
  | { userId: string; kind: 'requested'; how: 'update' | 'sync-once' }
  | { userId: string; kind: 'refused'; reason: string };

/** One user's `clover cutover`: the user's outcome (--wait), a request under way, or why it cannot be cut over. */
export type UserCutoverResult =
  | { userId: string; kind: 'outcome'; outcome: UserOutcome; keep: boolean }
  | { userId: string; kind: 'requested'; how: 'signal' | 'cutover-once' }
  | { userId: string; kind: 'refused'; reason: string };

/** `user U: generation G: copied a, ...` and one CONFLICT line per conflict key reported. */
export function passLines(userId: string, r: PassReport, label = ''): string[] {
  if (r.error) return [`user ${userId}: ${label}pass failed: ${r.error}`];
  const lines = [`user ${userId}: ${label}generation ${r.generation ?? '?'}: copied ${r.copied}, overwritten ${r.overwritten}, erased ${r.erased}, unchanged ${r.unchanged}, conflicts ${r.conflicts}`];
  for (const c of r.conflictKeys) lines.push(`CONFLICT user ${userId} key ${JSON.stringify(c.key)}: ${c.reason}`);
  if (r.conflicts > r.conflictKeys.length) lines.push(`... and ${r.conflicts - r.conflictKeys.length} more conflict(s) of user ${userId} (the manifest lists them all)`);
  return lines;
}

export function syncLines(r: UserSyncResult): string[] {
  switch (r.kind) {
    case 'pass': return passLines(r.userId, r.report);
    case 'requested': return [`user ${r.userId}: ${r.how === 'update' ? 'pass requested' : 'pass started (a sync-once run of its finished workflow)'}`];
    default: return [`user ${r.userId}: ${r.reason}`];
  }
}

const syncOk = (r: UserSyncResult) => r.kind === 'requested' || (r.kind === 'pass' && r.report.inStep && !r.report.error);

/** 0 only when every user's pass is in step (with --wait) or was requested (without); otherwise 1. */
export function syncExitCode(results: UserSyncResult[]): number {
  return results.length > 0 && results.every(syncOk) ? ExitCode.ok : ExitCode.failures;
}

/** The closing line when some user is not in step; undefined when all are. */
export function syncSummary(results: UserSyncResult[]): string | undefined {
  const bad = results.filter((r) => !syncOk(r)).map((r) => r.userId);
  if (results.length === 0) return 'no user to sync';
  return bad.length ? `${bad.length} user(s) not in step: ${bad.join(', ')}` : undefined;
}

const cutOk = (r: UserCutoverResult) =>
  r.kind === 'requested' ||
  (r.kind === 'outcome' && r.outcome.ok && r.outcome.sourceDeleted !== undefined && (r.keep || r.outcome.residueCount === 0));

export function cutoverLines(r: UserCutoverResult): string[] {
  if (r.kind === 'requested') return [`user ${r.userId}: ${r.how === 'signal' ? 'cutover sent' : 'cut-over started (a cutover-once run of its finished workflow)'}`];
  if (r.kind === 'refused') return [`user ${r.userId}: not cut over: ${r.reason}`];
  const o = r.outcome;
  const lines = o.lastPass ? passLines(r.userId, o.lastPass, 'final pass ') : [];
  if (!o.ok || o.sourceDeleted === undefined) return [...lines, `user ${r.userId}: not cut over: ${o.reason ?? (o.cancelled ? 'cancelled' : 'unknown')}`];
  if (r.keep) return [...lines, `user ${r.userId}: cut over: sources kept (sourceDisposition "keep"), nothing deleted`];
  lines.push(`user ${r.userId}: cut over: ${o.sourceDeleted} source object(s) deleted; residue ${o.residueCount ?? 'not checked'}`);
  for (const x of o.residue ?? []) lines.push(`RESIDUE site ${x.site} key ${JSON.stringify(x.key)}: ${x.reason}`);
  const listed = o.residue?.length ?? 0;
  if ((o.residueCount ?? 0) > listed) lines.push(`... and ${(o.residueCount ?? 0) - listed} more residue object(s) of user ${r.userId}`);
  return lines;
}

/** 0 only when every user was cut over with no residue (or the cutover was sent, without --wait); otherwise 1. */
export function cutoverExitCode(results: UserCutoverResult[]): number {
  return results.length > 0 && results.every(cutOk) ? ExitCode.ok : ExitCode.failures;
}

export function cutoverSummary(results: UserCutoverResult[]): string | undefined {
  const bad = results.filter((r) => !cutOk(r)).map((r) => r.userId);
  return bad.length ? `${bad.length} user(s) not cut over cleanly (residue or failure): ${bad.join(', ')}` : undefined;
}
