import { ApplicationFailure } from '@temporalio/common';
import pLimit from 'p-limit';
import { manifestKey } from '../domain/layout';
import { amendManifest } from '../domain/manifest';
import { assertManifestValid } from '../domain/manifest-guard';
import { abortUploads, deleteIfUnchanged } from '../storage/delete';
import { getManifest, putManifest } from '../storage/manifests';
import { headObject } from '../storage/object-meta';
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

export interface DisposeSourcesResult {
  deleted: number;
  keptChanged: number;
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
   * with a permanent ManifestInvalid. Idempotent: an object already gone counts as deleted.
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
      const limit = pLimit(input.objectsPerUser);
      const keptChanged: { key: string; site: string; reason: string }[] = [];
      let deleted = 0;
      await Promise.all(
        m.entries.map((e) =>
          limit(async () => {
            const copy = await headObject(target, e.key, signal);
            if (!copy || copy.etag !== e.targetEtag) {
              keptChanged.push({ key: e.key, site: e.sourceSite, reason: `the EU copy ${copy ? 'changed' : 'is missing'} since it was verified` });
              return;
            }
            const r = await deleteIfUnchanged(site(deps, e.sourceSite), e.key, e.sourceEtag, signal);
            if (r === 'changed') keptChanged.push({ key: e.key, site: e.sourceSite, reason: 'the source object changed since it was copied' });
            else deleted++;
            beat();
          }),
        ),
      );
      await putManifest(target, amendManifest(m, { sourceDisposition: { state: 'deleted', at: new Date().toISOString(), deleted, keptChanged } }), signal);
      return { deleted, keptChanged: keptChanged.length };
    });
  }

  return { cleanupUser, disposeSources };
}
