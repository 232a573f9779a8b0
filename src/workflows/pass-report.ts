import type { CommitManifestResult } from '../activities/commit';
import type { VerifyUserResult } from '../activities/verify';
import type { PassReport } from './definitions';

/** What one committed pass did, from commitManifest's and verifyUserObjects' results. Pure. */
export function passReport(userId: string, kind: 'first' | 'delta', c: CommitManifestResult, v: Pick<VerifyUserResult, 'verified'>): PassReport {
  const conflicts = c.pass?.conflicts ?? c.conflicts;
  return {
    userId, generation: c.generation, kind,
    copied: c.pass?.copied ?? c.copied, overwritten: c.pass?.overwritten ?? 0, erased: c.pass?.erased ?? 0,
    unchanged: c.pass?.unchanged ?? c.skipped, verified: v.verified, conflicts, conflictKeys: c.conflictKeys ?? [],
    inStep: conflicts === 0,
  };
}

/** A delta pass that failed before it committed: nothing changed; the user keeps its newest generation. */
export function failedPassReport(userId: string, error: string): PassReport {
  return { userId, kind: 'delta', copied: 0, overwritten: 0, erased: 0, unchanged: 0, verified: 0, conflicts: 0, conflictKeys: [], inStep: false, error };
}
