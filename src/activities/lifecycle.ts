import { ApplicationFailure } from '@temporalio/common';
import pLimit from 'p-limit';
import { manifestKey } from '../domain/layout';
import { deletedCount, keptAtDisposal, type DisposalOutcome } from '../domain/disposal';
import { amendManifest, entrySites, manifestGeneration, RESIDUE_LISTED, signManifest, type Manifest, type ResidueItem } from '../domain/manifest';
import { recordUserEvents, type UserEvent } from '../evidence/record';
import { assertManifestValid } from '../domain/manifest-guard';
import { residueClassifier } from '../domain/residue';
import { abortUploads, deleteIfUnchanged } from '../storage/delete';
import { rollbackFenceCheck } from '../storage/fence';
import { commitManifestGeneration, getCurrentManifest } from '../storage/manifests';
import { headObject } from '../storage/object-meta';
import { readProgress, runRecorded } from '../storage/progress';
import { forEachSourceObject } from '../storage/residue-listing';
import type { Retention } from '../storage/json-records';
import { deleteVersion, isVersioned, keyVersions } from '../storage/versions';
import { planKeyVersionDeletes } from '../domain/versions';
import { purgeErasedKeys } from './purge-erased';
import { expectedKey, ledgerOf, site, targetSite, type ActivityDeps } from './deps';
import { runActivity, writer } from './scaffold';

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
  /** Where the migration's evidence ledger lives (the plan's default target); absent in histories from before it. */
  ledgerSite?: string;
  /** The plan's evidenceRetention: ledger records and manifest generations are written under Object Lock. */
  evidenceRetention?: Retention;
  /** The plan's `purgeErased`: also delete every version of keys whose current version is a delete marker (versioned sources). */
  purgeErased?: boolean;
}

export interface DisposeSourcesResult {
  /** Source objects deleted (every site of every entry: its source and its duplicates), or found gone after an interrupted delete of Clover's. */
  deleted: number;
  /** Source objects left because they (or the EU copy) changed since the copy. */
  keptChanged: number;
  /** What the residue check found in the sources afterwards: the first RESIDUE_REPORTED, with why. */
  residue: { key: string; site: string; reason: string }[];
  /** Every object the residue check found. */
  residueCount: number;
}

/** Residue items an activity result carries (the manifest keeps RESIDUE_LISTED, the count all). */
export const RESIDUE_REPORTED = 20;

/** The activity's result from a committed `sourceDisposition` (a retried activity returns the one its earlier attempt committed). */
function disposalResult(d: NonNullable<Manifest['sourceDisposition']>): DisposeSourcesResult {
  return {
    deleted: d.deleted, keptChanged: d.keptChanged.length,
    residue: (d.residue ?? []).slice(0, RESIDUE_REPORTED).map((r) => ({ key: r.key, site: r.site, reason: r.reason })),
    residueCount: d.residueCount ?? d.residue?.length ?? 0,
  };
}

export function createLifecycleActivities(deps: ActivityDeps) {
  /** Aborts the user's incomplete multipart uploads in the target (after a cancel). Idempotent. */
  function cleanupUser(input: CleanupUserInput): Promise<{ uploadsAborted: number }> {
    return runActivity(async ({ signal }) => ({ uploadsAborted: await abortUploads(targetSite(deps, input.targetSite), input.prefix, signal) }));
  }

  /**
   * Deletes the user's source objects after the grace period, reading only the committed manifest
   * (invariant 1): for each entry, the object in every site that holds its bytes (`entrySites`: its
   * source and its `alsoAt` duplicates) goes only if its EU copy still has the verified ETag and that
   * site still has the ETag recorded for it (a conditional delete per site). Anything else is left and
   * reported. The manifest is checked first (manifest guard): one that fails deletes nothing and fails
   * the user with a permanent ManifestInvalid. Progress is recorded per batch under
   * `_clover/migrations/<id>/progress/<userId>/dispose/<generation>/` before the batch's deletes are
   * issued and with their outcomes after (per key: the sites Clover deleted it in, the sites where it
   * was already gone before any delete of Clover's, the sites where it was kept and why). Each source
   * object is looked at (HEAD) before its delete: S3 answers a DELETE of a missing key with success, so
   * that is the only way to tell an object the application erased after the last pass from Clover's own.
   * Then the residue check: the user's prefix is listed in every plan source and everything found is
   * reported with why it is there (`residueClassifier`). The manifest's next generation records it all
   * (`sourceDisposition`, summed over every run's records), committed only over the generation read
   * at the start (ManifestConflict otherwise). Idempotent and resumable: a re-run acts only on keys
   * with no recorded outcome; a retried activity whose amendment was committed returns it.
   */
  function disposeSources(input: DisposeSourcesInput): Promise<DisposeSourcesResult> {
    return runActivity(async ({ signal, beat }) => {
      const target = targetSite(deps, input.targetSite);
      const current = await getCurrentManifest(target, input.migrationId, input.userId, signal);
      if (!current) {
        throw ApplicationFailure.create({ type: 'NoManifest', nonRetryable: true, message: `user ${input.userId}: no committed manifest, so no source object may be deleted` });
      }
      const m = current.manifest;
      assertManifestValid(m, {
        migrationId: input.migrationId, userId: input.userId, userPrefix: input.userPrefix, sources: input.sources, publicKey: expectedKey(deps),
      }, manifestKey(input.migrationId, input.userId));
      const ledger = ledgerOf(deps, input);
      const evidence = (d: Manifest): UserEvent[] => {
        const x = d.sourceDisposition!;
        const count = x.residueCount ?? x.residue?.length ?? 0;
        return [
          {
            type: 'sources-deleted',
            data: { userId: d.userId, generation: d.generation, deleted: x.deleted, keptChanged: x.keptChanged, ...(x.purgedErased !== undefined ? { purgedErased: x.purgedErased } : {}) },
          },
          ...(count > 0 ? [{
            type: 'residue-found' as const,
            data: { userId: d.userId, generation: d.generation, residueCount: count, residue: (x.residue ?? []).slice(0, RESIDUE_REPORTED) },
          }] : []),
        ];
      };
      if (m.sourceDisposition) {
        await recordUserEvents(deps.signingKey, ledger, input.migrationId, evidence(m), true, signal);
        return disposalResult(m.sourceDisposition);
      }
      // Every batch is recorded before its first delete and after its last: a run interrupted anywhere
      // leaves a record of what it did, and the next run acts only on keys with no recorded outcome.
      const generation = manifestGeneration(m);
      const progress = await readProgress<DisposalOutcome>(target, input.migrationId, input.userId, 'dispose', generation, signal);
      // Keys an earlier run issued without recording an outcome: an object found gone there may be Clover's own delete.
      const issuedBefore = new Set(progress.interrupted);
      // A rollback of this user raises its fence first: no delete starts once it is up.
      const fenceDown = rollbackFenceCheck(target, input.migrationId, input.userId, signal);
      // Versioned sources lose every version of a migrated key, not only the current one (residency).
      const versioned = new Map<string, boolean>();
      for (const name of input.sources) versioned.set(name, await isVersioned(site(deps, name), signal));
      await runRecorded({
        site: target, migrationId: input.migrationId, userId: input.userId, op: 'dispose', generation, signal,
        items: m.entries, keyOf: (e) => e.key, progress, limit: pLimit(input.objectsPerUser),
        work: async (e): Promise<DisposalOutcome> => {
          const places = entrySites(e);
          const keptAll = (reason: string): DisposalOutcome => ({
            key: e.key, site: e.sourceSite, outcome: 'kept', sites: [], kept: places.map((p) => ({ site: p.site, reason })), reason,
          });
          await fenceDown();
          const copy = await headObject(target, e.key, signal);
          if (!copy || copy.etag !== e.targetEtag) return keptAll(`the EU copy ${copy ? 'changed' : 'is missing'} since it was verified`);
          const sites: string[] = [];
          const goneBefore: string[] = [];
          const kept: { site: string; reason: string }[] = [];
          for (const p of places) {
            const src = site(deps, p.site);
            if (versioned.get(p.site)) {
              await fenceDown();
              const v = await disposeVersions(src, e.key, p.etag, p.site === e.sourceSite ? e.sourceVersionId : undefined, signal);
              beat();
              if (v.deleted) sites.push(p.site);
              else if (v.absent && !issuedBefore.has(e.key)) goneBefore.push(p.site);
              else if (v.absent) sites.push(p.site);
              if (v.kept) kept.push({ site: p.site, reason: v.kept });
              continue;
            }
            // Looked at first: a DELETE of a missing key succeeds on S3, so only this tells an object the
            // application erased after the last pass (never Clover's to restore) from one Clover deleted.
            const head = await headObject(src, e.key, signal);
            let r: 'deleted' | 'changed' | 'absent' = !head ? 'absent' : head.etag !== p.etag ? 'changed' : 'deleted';
            if (r === 'deleted') {
              await fenceDown();
              r = await deleteIfUnchanged(src, e.key, p.etag, signal);
            }
            beat();
            if (r === 'changed') kept.push({ site: p.site, reason: 'the source object changed since it was copied' });
            else if (r === 'absent' && !issuedBefore.has(e.key)) goneBefore.push(p.site);
            else sites.push(p.site);
          }
          return {
            key: e.key, site: e.sourceSite, outcome: kept.length > 0 ? 'kept' : 'deleted', sites,
            ...(goneBefore.length > 0 ? { goneBefore } : {}), ...(kept.length > 0 ? { kept, reason: kept[0]?.reason } : {}),
          };
        },
      });
      // Keys the user erased (current version a delete marker) whose data still sits in noncurrent versions.
      let purged = 0;
      if (input.purgeErased) {
        purged = await purgeErasedKeys({
          deps, target, migrationId: input.migrationId, userId: input.userId, generation, userPrefix: input.userPrefix,
          sources: input.sources.filter((n) => versioned.get(n)), migrated: new Set(m.entries.map((e) => e.key)),
          limit: pLimit(input.objectsPerUser), fenceDown, beat, signal,
        });
      }
      // The amendment sums every run's records, not only this one's.
      const outcomes = m.entries.map((e) => progress.done.get(e.key)).filter((o) => o !== undefined);
      const keptChanged = keptAtDisposal(outcomes);

      // The residue check: whatever is still under the user's prefix in any source, with why.
      const classify = residueClassifier(m, keptChanged);
      const residue: ResidueItem[] = [];
      let residueCount = 0;
      for (const name of input.sources) {
        await forEachSourceObject(site(deps, name), input.userPrefix, 'listing the user\'s prefix in a source (residue check)', (o) => {
          residueCount++;
          if (residue.length < RESIDUE_LISTED) residue.push(classify(o));
        }, signal);
        beat();
      }
      const disposition: NonNullable<Manifest['sourceDisposition']> = {
        state: 'deleted', at: new Date().toISOString(), deleted: deletedCount(outcomes), keptChanged, residue, residueCount,
        ...(input.purgeErased ? { purgedErased: purged } : {}),
      };
      const amended = amendManifest(m, { sourceDisposition: disposition }, writer());
      const next = deps.signingKey ? signManifest(amended, deps.signingKey) : amended;
      const done = await commitManifestGeneration(target, next, { etag: current.etag }, signal, input.evidenceRetention);
      if (done.manifest.sourceDisposition) await recordUserEvents(deps.signingKey, ledger, input.migrationId, evidence(done.manifest), false, signal);
      return disposalResult(done.manifest.sourceDisposition ?? disposition);
    });
  }

  /**
   * One migrated key in a versioned source: its versions listed (newest first), then, when the newest is
   * still the migrated version (ETag as recorded), every older version and delete marker and last the
   * migrated version deleted, each pinned by VersionId (and ETag). A newer version or delete marker
   * (written after the final pass) keeps them all; a version under object lock is kept with why and
   * until when.
   */
  async function disposeVersions(
    src: ReturnType<typeof site>, key: string, etag: string, versionId: string | undefined, signal: AbortSignal,
  ): Promise<{ deleted: boolean; absent: boolean; kept?: string }> {
    const plan = planKeyVersionDeletes(await keyVersions(src, key, signal), etag, versionId);
    if (plan.action === 'absent') return { deleted: false, absent: true };
    if (plan.action === 'changed') return { deleted: false, absent: false, kept: plan.reason };
    const locked: string[] = [];
    let last: Awaited<ReturnType<typeof deleteVersion>> = { r: 'absent' };
    for (const [i, v] of plan.order.entries()) {
      last = await deleteVersion(src, key, v.versionId, v.deleteMarker ? undefined : v.etag, signal);
      const migrated = i === plan.order.length - 1;
      if (last.r === 'locked') locked.push(`${migrated ? 'the migrated version' : `version ${v.versionId}`} is ${last.reason}`);
      if (last.r === 'changed') locked.push(`version ${v.versionId} changed since it was listed`);
    }
    const kept = locked.length > 0 ? { kept: locked.join('; ') } : {};
    return { deleted: last.r === 'deleted', absent: last.r === 'absent', ...kept };
  }

  return { cleanupUser, disposeSources };
}
