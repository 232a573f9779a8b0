import { Context } from '@temporalio/activity';
import type { CommitManifestInput, CommitManifestResult } from './commit';
import { createCommitActivities } from './commit';
import type { CopyUserInput, CopyUserResult } from './copy';
import { createCopyActivities } from './copy';
import { getCurrentManifest } from '../storage/manifests';
import { targetSite, type ActivityDeps } from './deps';
import { heartbeatPolicy, inStage, markStage, writer, type StagedDetails } from './scaffold';
import type { VerifyUserInput, VerifyUserResult } from './verify';
import { createVerifyActivities } from './verify';

export interface FirstPassInput {
  copy: CopyUserInput;
  verify: VerifyUserInput;
  commit: CommitManifestInput;
}

/**
 * `copy` always; `verify` and `commit` only when the copy finished in this one call with nothing blocked
 * (a small user). Otherwise the workflow goes on from `copy` (its page and cursor) one activity at a time.
 */
export interface FirstPassResult {
  copy: CopyUserResult;
  verify?: VerifyUserResult;
  commit?: CommitManifestResult;
}

/**
 * The first pass of a small user in one activity (one schedule, one worker round trip, no phase
 * upserts in between) instead of three: the very same copy, verify and commit bodies run in turn, with
 * the same staging, manifest and ledger records. Each stage heartbeats its own checkpoint tagged with the
 * stage (and the earlier stages' results), so a retried attempt resumes at the stage and checkpoint it
 * reached. When the copy needs more than one call (a user of many pages) or blocked a key, the activity
 * returns after the copy and the workflow continues as for any user.
 *
 * The workflow tries it first as a local activity. That run has no heartbeats, so it goes on only for a
 * user of one listing page within `deps.localFirstPassBytes` and no multipart object, and always holds
 * its page; any other user it hands back (`copy.deferred`, nothing copied) for this same function as a
 * regular activity. A retry of the local run (or a new worker's, after a crash) copies again, finding
 * its copies in the target, and a commit that landed is found by its writer: the local activity's id
 * is its sequence number in the workflow, the same on every attempt and replay.
 */
export function createSmallUserActivities(deps: ActivityDeps) {
  const { copyUserObjects } = createCopyActivities(deps);
  const { verifyUserObjects } = createVerifyActivities(deps);
  const { commitManifest } = createCommitActivities(deps);

  async function firstPassSmallUser(input: FirstPassInput): Promise<FirstPassResult> {
    const ctx = Context.current();
    // Tried as a local activity, on a worker that runs none (`--local-first-pass-mib 0`): handed back at once.
    if (ctx.info.isLocal && !deps.localFirstPassBytes) return { copy: { done: false, page: input.copy.page, objects: 0, bytes: 0, conflicts: 0, transferred: input.copy.transferred, blocked: [], blockedCount: 0, deferred: true } };
    const startedAt = Date.now();
    const prior = ctx.info.heartbeatDetails as StagedDetails | undefined;
    const at = (stage: string) => (prior?.stage === stage ? prior.details : undefined);
    const carried = prior?.carry as { copy?: CopyUserResult; verify?: VerifyUserResult } | undefined;
    if (ctx.info.attempt > 1 && prior?.stage !== 'commit') {
      // An attempt that committed within its first second recorded no stage: its own commit is found
      // (the manifest names this activity as writer) and reported, nothing is copied or staged again.
      const current = await getCurrentManifest(targetSite(deps, input.commit.targetSite), input.commit.migrationId, input.commit.userId, ctx.cancellationSignal);
      if (current?.manifest.generation === input.commit.generation && current.manifest.writtenBy === writer()) {
        const commit = await commitManifest(input.commit);
        const copy: CopyUserResult = { done: true, page: 0, objects: commit.objects, bytes: commit.bytes, conflicts: commit.conflicts, transferred: input.copy.transferred, blocked: [], blockedCount: 0 };
        const verify: VerifyUserResult = { verified: commit.objects, verifiedBytes: commit.bytes, recopied: 0, transferredObjects: 0, transferredBytes: 0 };
        return { copy, verify, commit };
      }
    }
    // A fresh copy (no stage reached yet, or an attempt that held its page: stage "held") keeps a one-page
    // user's page in memory: verify and commit read it from there, 7 requests fewer than staging it
    // (put; list and read for verify; list, read, list and delete for the commit). No stage is marked
    // after such a copy, so a retry copies again (finding every copy in the target) rather than looking
    // for staging that was never written; one whose commit landed finds it above.
    let copy: CopyUserResult;
    if (!carried?.copy && at('copy') === undefined) {
      const local = ctx.info.isLocal ? { localMaxBytes: deps.localFirstPassBytes } : {};
      const { held, ...result } = await inStage('copy', undefined, {}, () => copyUserObjects(input.copy, { hold: true, ...local }));
      if (result.deferred) return { copy: result };
      if (held) {
        const verify = await inStage('held', undefined, {}, () => verifyUserObjects(input.verify, [held]));
        const commit = await inStage('held', undefined, {}, () => commitManifest(input.commit, [held]));
        return { copy: result, verify, commit };
      }
      copy = result;
    } else {
      copy = carried?.copy ?? (await inStage('copy', at('copy'), {}, () => copyUserObjects(input.copy)));
    }
    if (!copy.done || copy.blockedCount > 0) return { copy };
    const verify = carried?.verify ?? (await inStage('verify', at('verify'), { copy }, () => verifyUserObjects(input.verify)));
    // Recorded before the commit (after the first second; before it, a retry finds the commit by its writer).
    if (Date.now() - startedAt >= heartbeatPolicy.firstAfterMs) markStage('commit', { copy, verify });
    const commit = await inStage('commit', undefined, { copy, verify }, () => commitManifest(input.commit));
    return { copy, verify, commit };
  }
  return { firstPassSmallUser };
}
