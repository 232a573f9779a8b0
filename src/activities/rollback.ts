import pLimit from 'p-limit';
import { manifestKey } from '../domain/layout';
import { amendManifest, type ManifestEntry } from '../domain/manifest';
import { assertManifestValid } from '../domain/manifest-guard';
import { abortUploads, deleteIfUnchanged } from '../storage/delete';
import { listAllKeys } from '../storage/listing';
import { getManifest, putManifest } from '../storage/manifests';
import type { Site } from '../storage/clients';
import { TargetChangedError } from '../storage/errors';
import { copyObject } from '../storage/object-copy';
import { META, headObject, type TargetHead } from '../storage/object-meta';
import { hashObject } from '../storage/pinned-read';
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
   *    before step 1 (permanent ManifestInvalid): nothing of this user is touched. Idempotent and resumable: every step re-checks storage.
   */
  function rollbackUser(input: RollbackUserInput): Promise<RollbackUserResult> {
    return runActivity(async ({ signal, beat }) => {
      const result: RollbackUserResult = { restored: 0, targetDeleted: 0, partialDeleted: 0, kept: 0, uploadsAborted: 0, problems: [] };
      const keep = (key: string, problem: string) => {
        result.kept++;
        if (result.problems.length < 20) result.problems.push({ key, problem });
      };
      const target = site(deps, input.targetSite);
      const m = await getManifest(target, input.migrationId, input.userId, signal);
      // Checked before anything is restored or deleted: a manifest that fails touches nothing of this user.
      if (m) assertManifestValid(m, { migrationId: input.migrationId, userId: input.userId, userPrefix: input.prefix, sources: input.sources }, manifestKey(input.migrationId, input.userId));
      if (m?.rolledBack) {
        return { ...result, restored: m.rolledBack.restored, targetDeleted: m.rolledBack.targetDeleted, kept: m.rolledBack.kept.length, problems: m.rolledBack.kept.map((k) => ({ key: k.key, problem: k.reason })) };
      }
      const limit = pLimit(input.objectsPerUser);
      /** True when the source holds the bytes that were migrated: the recorded ETag, or the same size and SHA-256. */
      const sourceHolds = async (src: Site, key: string, head: TargetHead, etag: string | undefined, size: number, sha256: string | undefined) =>
        head.etag === etag || (!!sha256 && head.size === size && (await hashObject(src, key, head.etag, signal, deps)).sha256 === sha256);

      const undoEntry = async (e: ManifestEntry) => {
        const src = deps.clients.get(e.sourceSite);
        if (!src) return keep(e.key, `source site ${e.sourceSite} is not in this worker's sites file`);
        let srcHead = await headObject(src, e.key, signal);
        if (!srcHead) {
          const copy = await headObject(target, e.key, signal);
          if (!copy || copy.etag !== e.targetEtag) return keep(e.key, 'the source is gone and the EU copy changed or is missing: nothing to restore from');
          try {
            const out = await copyObject({
              source: target, target: src, object: { site: target.name, key: e.key, etag: e.targetEtag, size: e.size, lastModified: e.sourceLastModified },
              migrationId: input.migrationId, settings: deps.copy, budget: deps.budget, hasher: deps.hasher, signal, restore: true,
            });
            if (out.sha256 !== e.sha256) return keep(e.key, `restored bytes have SHA-256 ${out.sha256}, the manifest says ${e.sha256}; the EU copy is kept`);
            result.restored++;
            return await deleteCopy(e.key, e.targetEtag);
          } catch (err) {
            if (!(err instanceof TargetChangedError)) throw err;
            srcHead = await headObject(src, e.key, signal); // someone wrote the source key meanwhile
            if (!srcHead) throw err;
          }
        }
        if (!(await sourceHolds(src, e.key, srcHead, e.sourceEtag, e.size, e.sha256))) return keep(e.key, 'the source object differs from what was migrated; the EU copy is kept');
        return deleteCopy(e.key, e.targetEtag);
      };
      const deleteCopy = async (key: string, etag: string, partial = false) => {
        const r = await deleteIfUnchanged(target, key, etag, signal);
        if (r === 'changed') return keep(key, 'the EU copy was modified after the migration wrote it; kept');
        if (partial) result.partialDeleted++;
        else result.targetDeleted++;
        beat();
      };

      const inManifest = new Set<string>();
      await Promise.all((m?.entries ?? []).map((e) => limit(async () => {
        inManifest.add(e.key);
        await undoEntry(e);
      })));

      // Objects this migration wrote that never reached a manifest (a cancelled, failed or unfinished user).
      const unmanifested = (await listAllKeys(target, input.prefix, 'listing the user\'s target prefix', signal)).filter((k) => !inManifest.has(k));
      await Promise.all(unmanifested.map((key) => limit(async () => {
        const head = await headObject(target, key, signal);
        if (!head || head.metadata[META.migration] !== input.migrationId) return; // not ours: never touched
        const src = deps.clients.get(head.metadata[META.sourceSite] ?? '');
        const srcHead = src && (await headObject(src, key, signal));
        if (!src || !srcHead || !(await sourceHolds(src, key, srcHead, head.metadata[META.sourceEtag], head.size, head.metadata[META.sha256]))) {
          return keep(key, 'written by this migration, but its source is gone or changed: this may be the only copy, so it is kept');
        }
        await deleteCopy(key, head.etag, true);
      })));
      result.uploadsAborted = await abortUploads(target, input.prefix, signal);
      if (m) {
        await putManifest(target, amendManifest(m, {
          rolledBack: { at: new Date().toISOString(), restored: result.restored, targetDeleted: result.targetDeleted, kept: result.problems.map((p) => ({ key: p.key, reason: p.problem })) },
        }), signal);
      }
      return result;
    });
  }
  return { rollbackUser };
}
