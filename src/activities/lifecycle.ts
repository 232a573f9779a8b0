import { ApplicationFailure } from '@temporalio/common';
import pLimit from 'p-limit';
import { manifestKey } from '../domain/layout';
import { amendManifest, manifestGeneration } from '../domain/manifest';
import { assertManifestValid } from '../domain/manifest-guard';
import { abortUploads, deleteIfUnchanged } from '../storage/delete';
import { rollbackFenceCheck } from '../storage/fence';
import { getManifest, putManifest } from '../storage/manifests';
import { headObject } from '../storage/object-meta';
import { readProgress, runRecorded } from '../storage/progress';
import { site, targetSite, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

export interface CleanupUserInput {
  targetSite: string;
  prefix: string;
}

export interface DisposeSourcesInput {
  migrationId: string;
  userId: string;
  targetSite: string;
  objectsPerUser: number;
  /** The plan's source sites: a manifest entry naming any other site is refused (manifest guard). */
  sources: string[];
  /** The user's resolved prefix: the manifest's `userPrefix` and every entry's key must lie under it. */
  userPrefix: string;
}

/** One source object's disposal, as its progress record holds it. */
interface DisposalOutcome {
  key: string;
  site: string;
  /** `deleted`: gone from the source (by this run or an interrupted earlier one); `kept`: left, with why. */
  outcome: 'deleted' | 'kept';
  reason?: string;
}

export interface DisposeSourcesResult {
  deleted: number;
  keptChanged: number;
  residue?: { key: string; site: string; reason: string }[]; residueCount?: number;
}

export function createLifecycleActivities(deps: ActivityDeps) {
  /** Aborts the user's incomplete multipart uploads in the target (after a cancel). Idempotent. */
  function cleanupUser(input: CleanupUserInput): Promise<{ uploadsAborted: number }> {
    return runActivity(async ({ signal }) => ({ uploadsAborted: await abortUploads(targetSite(deps, input.targetSite), input.prefix, signal) }));
  }

  /**
   * Deletes the user's source objects after the grace period, reading only the committed manifest
   * (invariant 1): an object goes only if its EU copy still has the verified ETag and the source still
   * has the ETag that was copied (a conditional delete). Anything else is left and reported.
   * The manifest is checked first (manifest guard): one that fails deletes nothing and fails the user
   * with a permanent ManifestInvalid. Progress is recorded per batch under
   * `_clover/migrations/<id>/progress/<userId>/dispose/<generation>/` before the batch's deletes are issued and with
   * their outcomes after; the manifest's `sourceDisposition` sums every run's records. Idempotent and
   * resumable: a re-run acts only on keys with no recorded outcome; an object already gone counts as deleted.
   */
  function disposeSources(input: DisposeSourcesInput): Promise<DisposeSourcesResult> {
    return runActivity(async ({ signal, beat }) => {
      const target = targetSite(deps, input.targetSite);
      const m = await getManifest(target, input.migrationId, input.userId, signal);
      if (!m) {
        throw ApplicationFailure.create({ type: 'NoManifest', nonRetryable: true, message: `user ${input.userId}: no committed manifest, so no source object may be deleted` });
      }
      assertManifestValid(m, { migrationId: input.migrationId, userId: input.userId, userPrefix: input.userPrefix, sources: input.sources }, manifestKey(input.migrationId, input.userId));
      if (m.sourceDisposition) return { deleted: m.sourceDisposition.deleted, keptChanged: m.sourceDisposition.keptChanged.length };
      // Every batch is recorded before its first delete and after its last: a run interrupted anywhere
      // leaves a record of what it did, and the next run acts only on keys with no recorded outcome.
      const generation = manifestGeneration(m);
      const progress = await readProgress<DisposalOutcome>(target, input.migrationId, input.userId, 'dispose', generation, signal);
      // A rollback of this user raises its fence first: no delete starts once it is up.
      const fenceDown = rollbackFenceCheck(target, input.migrationId, input.userId, signal);
      await runRecorded({
        site: target, migrationId: input.migrationId, userId: input.userId, op: 'dispose', generation, signal,
        items: m.entries, keyOf: (e) => e.key, progress, limit: pLimit(input.objectsPerUser),
        work: async (e): Promise<DisposalOutcome> => {
          await fenceDown();
          const kept = (reason: string): DisposalOutcome => ({ key: e.key, site: e.sourceSite, outcome: 'kept', reason });
          const copy = await headObject(target, e.key, signal);
          if (!copy || copy.etag !== e.targetEtag) return kept(`the EU copy ${copy ? 'changed' : 'is missing'} since it was verified`);
          const r = await deleteIfUnchanged(site(deps, e.sourceSite), e.key, e.sourceEtag, signal);
          beat();
          if (r === 'changed') return kept('the source object changed since it was copied');
          return { key: e.key, site: e.sourceSite, outcome: 'deleted' };
        },
      });
      // The amendment sums every run's records, not only this one's.
      const outcomes = m.entries.map((e) => progress.done.get(e.key)).filter((o) => o !== undefined);
      const deleted = outcomes.filter((o) => o.outcome === 'deleted').length;
      const keptChanged = outcomes.filter((o) => o.outcome === 'kept').map((o) => ({ key: o.key, site: o.site, reason: o.reason ?? '' }));
      await putManifest(target, amendManifest(m, { sourceDisposition: { state: 'deleted', at: new Date().toISOString(), deleted, keptChanged } }), signal);
      return { deleted, keptChanged: keptChanged.length };
    });
  }

  return { cleanupUser, disposeSources };
}
