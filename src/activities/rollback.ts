import pLimit from 'p-limit';
import { manifestKey } from '../domain/layout';
import { amendManifest, manifestGeneration, type ManifestEntry } from '../domain/manifest';
import { assertManifestValid } from '../domain/manifest-guard';
import { abortUploads, deleteIfUnchanged } from '../storage/delete';
import { listAllKeys } from '../storage/listing';
import { getManifest, putManifest } from '../storage/manifests';
import type { Site } from '../storage/clients';
import { TargetChangedError } from '../storage/errors';
import { copyObject } from '../storage/object-copy';
import { META, headObject, type TargetHead } from '../storage/object-meta';
import { hashObject } from '../storage/pinned-read';
import { readProgress, runRecorded } from '../storage/progress';
import { site, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

export interface RollbackUserInput {
  migrationId: string;
  userId: string;
  targetSite: string;
  prefix: string;
  objectsPerUser: number;
  /** The plan's source sites: a manifest entry naming any other site is refused (manifest guard). */
  sources: string[];
}

export interface RollbackUserResult {
  restored: number;
  targetDeleted: number;
  partialDeleted: number;
  kept: number;
  uploadsAborted: number;
  /** The first few objects left in place, with why. */
  problems: { key: string; problem: string }[];
}

/** One key's rollback, as its progress record holds it. */
interface RollbackOutcome {
  key: string;
  /** The source object was restored from the EU copy. */
  restored?: boolean;
  /** The EU copy was deleted: a manifest entry's (`target`) or a copy that never reached a manifest (`partial`). */
  deleted?: 'target' | 'partial';
  /** Left in place, with why. */
  kept?: string;
  /** Not written by this migration: never touched. */
  untouched?: boolean;
}

export function createRollbackActivities(deps: ActivityDeps) {
  /**
   * Undoes one user's migration, never deleting the only copy of an object:
   * 1. a source object that is gone is restored from its EU copy (original key, site and metadata),
   *    and its SHA-256 checked against the manifest;
   * 2. an EU copy is deleted only when the source holds the same bytes and the copy still has the
   *    ETag the migration recorded (an EU object modified since is kept and reported);
   * 3. objects this migration wrote that never reached a manifest (cancelled or failed users) go the
   *    same way, and incomplete multipart uploads are aborted;
   * 4. the manifest is marked rolled back. A committed manifest that fails the manifest guard stops it
   *    before step 1 (permanent ManifestInvalid): nothing of this user is touched. Each batch of steps
   *    1–3 is recorded under `_clover/migrations/<id>/progress/<userId>/rollback/<generation>/` before it
   *    is issued and with its outcomes after; the counters and `rolledBack` sum every run's records.
   *    Idempotent and resumable: a re-run acts on manifest entries with no recorded outcome and on every
   *    key still under the prefix.
   */
  function rollbackUser(input: RollbackUserInput): Promise<RollbackUserResult> {
    return runActivity(async ({ signal, beat }) => {
      const result: RollbackUserResult = { restored: 0, targetDeleted: 0, partialDeleted: 0, kept: 0, uploadsAborted: 0, problems: [] };
      const target = site(deps, input.targetSite);
      const m = await getManifest(target, input.migrationId, input.userId, signal);
      // Checked before anything is restored or deleted: a manifest that fails touches nothing of this user.
      if (m) assertManifestValid(m, { migrationId: input.migrationId, userId: input.userId, userPrefix: input.prefix, sources: input.sources }, manifestKey(input.migrationId, input.userId));
      if (m?.rolledBack) {
        return { ...result, restored: m.rolledBack.restored, targetDeleted: m.rolledBack.targetDeleted, kept: m.rolledBack.kept.length, problems: m.rolledBack.kept.slice(0, 20).map((k) => ({ key: k.key, problem: k.reason })) };
      }
      /** True when the source holds the bytes that were migrated: the recorded ETag, or the same size and SHA-256. */
      const sourceHolds = async (src: Site, key: string, head: TargetHead, etag: string | undefined, size: number, sha256: string | undefined) =>
        head.etag === etag || (!!sha256 && head.size === size && (await hashObject(src, key, head.etag, signal, deps)).sha256 === sha256);

      // Every batch is recorded before its first restore or delete and with its outcomes after (see
      // disposeSources): the counters and the manifest's `rolledBack` sum every run's records.
      const generation = m ? manifestGeneration(m) : 'no-manifest';
      const progress = await readProgress<RollbackOutcome>(target, input.migrationId, input.userId, 'rollback', generation, signal);
      // A source the disposal deleted that holds the migrated bytes again, in a batch an interrupted run
      // issued, was restored by that run (its record never said so).
      const disposal = m && progress.interrupted.size > 0 ? await readProgress<{ key: string; outcome: string }>(target, input.migrationId, input.userId, 'dispose', generation, signal) : undefined;
      const keptAtDisposal = new Set(m?.sourceDisposition?.keptChanged.map((k) => k.key));
      const disposed = (key: string) => disposal?.done.get(key)?.outcome === 'deleted' || (!!m?.sourceDisposition && !keptAtDisposal.has(key));
      const kept = (key: string, reason: string): RollbackOutcome => ({ key, kept: reason });

      const deleteCopy = async (key: string, etag: string, partial = false): Promise<RollbackOutcome> => {
        const r = await deleteIfUnchanged(target, key, etag, signal);
        beat();
        if (r === 'changed') return kept(key, 'the EU copy was modified after the migration wrote it; kept');
        return { key, deleted: partial ? 'partial' : 'target' };
      };
      const undoEntry = async (e: ManifestEntry): Promise<RollbackOutcome> => {
        const src = deps.clients.get(e.sourceSite);
        if (!src) return kept(e.key, `source site ${e.sourceSite} is not in this worker's sites file`);
        let srcHead = await headObject(src, e.key, signal);
        if (!srcHead) {
          const copy = await headObject(target, e.key, signal);
          if (!copy || copy.etag !== e.targetEtag) return kept(e.key, 'the source is gone and the EU copy changed or is missing: nothing to restore from');
          try {
            const out = await copyObject({
              source: target, target: src, object: { site: target.name, key: e.key, etag: e.targetEtag, size: e.size, lastModified: e.sourceLastModified },
              migrationId: input.migrationId, settings: deps.copy, budget: deps.budget, hasher: deps.hasher, signal, restore: true,
            });
            if (out.sha256 !== e.sha256) return kept(e.key, `restored bytes have SHA-256 ${out.sha256}, the manifest says ${e.sha256}; the EU copy is kept`);
            return { ...(await deleteCopy(e.key, e.targetEtag)), restored: true };
          } catch (err) {
            if (!(err instanceof TargetChangedError)) throw err;
            srcHead = await headObject(src, e.key, signal); // someone wrote the source key meanwhile
            if (!srcHead) throw err;
          }
        }
        if (!(await sourceHolds(src, e.key, srcHead, e.sourceEtag, e.size, e.sha256))) return kept(e.key, 'the source object differs from what was migrated; the EU copy is kept');
        const restoredEarlier = progress.interrupted.has(e.key) && disposed(e.key);
        return { ...(await deleteCopy(e.key, e.targetEtag)), ...(restoredEarlier ? { restored: true } : {}) };
      };

      const limit = pLimit(input.objectsPerUser);
      const recorded = { site: target, migrationId: input.migrationId, userId: input.userId, op: 'rollback', generation, signal, progress, limit };
      await runRecorded({ ...recorded, items: m?.entries ?? [], keyOf: (e) => e.key, work: undoEntry });

      // Objects this migration wrote that never reached a manifest (a cancelled, failed or unfinished user).
      const inManifest = new Set((m?.entries ?? []).map((e) => e.key));
      const unmanifested = (await listAllKeys(target, input.prefix, 'listing the user\'s target prefix', signal)).filter((k) => !inManifest.has(k));
      await runRecorded({
        // Every listed key is looked at again: one recorded earlier and still present may be a new copy.
        ...recorded, items: unmanifested, keyOf: (k) => k, skipDone: false,
        work: async (key): Promise<RollbackOutcome> => {
          const head = await headObject(target, key, signal);
          if (!head || head.metadata[META.migration] !== input.migrationId) return { key, untouched: true }; // not ours: never touched
          const src = deps.clients.get(head.metadata[META.sourceSite] ?? '');
          const srcHead = src && (await headObject(src, key, signal));
          if (!src || !srcHead || !(await sourceHolds(src, key, srcHead, head.metadata[META.sourceEtag], head.size, head.metadata[META.sha256]))) {
            return kept(key, 'written by this migration, but its source is gone or changed: this may be the only copy, so it is kept');
          }
          return deleteCopy(key, head.etag, true);
        },
      });
      result.uploadsAborted = await abortUploads(target, input.prefix, signal);

      // Counted from every run's records, so a retried or resumed rollback reports the whole of it.
      const outcomes = [...progress.done.values()];
      result.restored = outcomes.filter((o) => o.restored).length;
      result.targetDeleted = outcomes.filter((o) => o.deleted === 'target').length;
      result.partialDeleted = outcomes.filter((o) => o.deleted === 'partial').length;
      const keptAll = outcomes.flatMap((o) => (o.kept !== undefined ? [{ key: o.key, reason: o.kept }] : []));
      result.kept = keptAll.length;
      result.problems = keptAll.slice(0, 20).map((k) => ({ key: k.key, problem: k.reason }));
      if (m) {
        await putManifest(target, amendManifest(m, {
          rolledBack: { at: new Date().toISOString(), restored: result.restored, targetDeleted: result.targetDeleted, kept: keptAll },
        }), signal);
      }
      return result;
    });
  }
  return { rollbackUser };
}
