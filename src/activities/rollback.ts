import pLimit from 'p-limit';
import { manifestKey } from '../domain/layout';
import { sitesDeletedByClover, type DisposalOutcome } from '../domain/disposal';
import { amendManifest, entrySites, manifestGeneration, RESIDUE_LISTED, signManifest, type ErasureRecord, type Manifest, type ManifestEntry } from '../domain/manifest';
import { recordUserEvents, type UserEvent } from '../evidence/record';
import { assertManifestValid } from '../domain/manifest-guard';
import { abortUploads, deleteIfUnchanged } from '../storage/delete';
import { listAllKeys } from '../storage/listing';
import { commitManifestGeneration, getCurrentManifest } from '../storage/manifests';
import type { Site } from '../storage/clients';
import { TargetChangedError } from '../storage/errors';
import { copyObject } from '../storage/object-copy';
import { META, headObject, type TargetHead } from '../storage/object-meta';
import { hashObject } from '../storage/pinned-read';
import { readProgress, runRecorded } from '../storage/progress';
import type { Retention } from '../storage/json-records';
import { expectedKey, ledgerOf, site, type ActivityDeps } from './deps';
import { runActivity, writer } from './scaffold';

export interface RollbackUserInput {
  migrationId: string;
  userId: string;
  targetSite: string;
  prefix: string;
  objectsPerUser: number;
  /** The plan's source sites: a manifest entry naming any other site is refused (manifest guard). */
  sources: string[];
  /** Where the migration's evidence ledger lives (the plan's default target); absent in histories from before it. */
  ledgerSite?: string;
  /** The plan's evidenceRetention: ledger records and manifest generations are written under Object Lock. */
  evidenceRetention?: Retention;
}

export interface RollbackUserResult {
  /** Source objects restored from their EU copy (one per site: a duplicate counts in each site). */
  restored: number;
  targetDeleted: number;
  partialDeleted: number;
  kept: number;
  uploadsAborted: number;
  /**
   * Objects not restored because the application erased them: erasures a delta pass carried over, and
   * manifest entries gone from a source that Clover did not delete (their EU copy is kept). Not problems.
   */
  erased: number;
  /** The first few erased objects, with why. */
  erasedKeys: { key: string; reason: string }[];
  /** The first few objects left in place, with why. */
  problems: { key: string; problem: string }[];
}

/** One key's rollback, as its progress record holds it. */
interface RollbackOutcome {
  key: string;
  /** The sites where the source object was restored from the EU copy. */
  restoredAt?: string[];
  /** Records written before duplicates were restored: restored at the entry's source site. */
  restored?: boolean;
  /** The EU copy was deleted: a manifest entry's (`target`) or a copy that never reached a manifest (`partial`). */
  deleted?: 'target' | 'partial';
  /** Left in place, with why. */
  kept?: string;
  /** Gone from a source without Clover deleting it (erased by the application): not restored, the EU copy kept. */
  erased?: string;
  /** Not written by this migration: never touched. */
  untouched?: boolean;
}

/** Erased objects a result carries (the manifest keeps RESIDUE_LISTED, the count all). */
const ERASED_REPORTED = 20;

export function createRollbackActivities(deps: ActivityDeps) {
  /**
   * Undoes one user's migration, never deleting the only copy of an object and never bringing back
   * what the application erased:
   * 1. a source object is restored from its EU copy (original key, site and metadata, SHA-256 checked
   *    against the manifest) only in a site where Clover itself deleted it: the disposal's progress
   *    records of this pass (`sites` per key; an interrupted disposal batch: any site of the entry).
   *    Never over an object that exists there again (If-None-Match);
   * 2. an entry gone from a source where Clover did not delete it was erased by the application after
   *    the last pass: not restored, its EU copy kept, reported as erased (not a problem); so are the
   *    erasures a delta pass carried over (`m.erasures`), which are never restored;
   * 3. an EU copy is deleted only when every source site of the entry holds the migrated bytes and the
   *    copy still has the ETag the migration recorded (an EU object modified since is kept and reported);
   * 4. objects this migration wrote that never reached a manifest (cancelled or failed users) go the
   *    same way, and incomplete multipart uploads are aborted; an EU object another migration wrote is
   *    never touched;
   * 5. the manifest's next generation is marked rolled back, committed only over the generation read at
   *    the start (ManifestConflict otherwise). A committed manifest that fails the manifest guard stops
   *    it before step 1 (permanent ManifestInvalid): nothing of this user is touched. Each batch of
   *    steps 1–4 is recorded under `_clover/migrations/<id>/progress/<userId>/rollback/<generation>/`
   *    before it is issued and with its outcomes after; the counters and `rolledBack` sum every run's
   *    records. Idempotent and resumable: a re-run acts on manifest entries with no recorded outcome
   *    and on every key still under the prefix.
   */
  function rollbackUser(input: RollbackUserInput): Promise<RollbackUserResult> {
    return runActivity(async ({ signal, beat }) => {
      const result: RollbackUserResult = { restored: 0, targetDeleted: 0, partialDeleted: 0, kept: 0, uploadsAborted: 0, erased: 0, erasedKeys: [], problems: [] };
      const target = site(deps, input.targetSite);
      const current = await getCurrentManifest(target, input.migrationId, input.userId, signal);
      const m = current?.manifest;
      // Checked before anything is restored or deleted: a manifest that fails touches nothing of this user.
      if (m) {
        assertManifestValid(m, {
          migrationId: input.migrationId, userId: input.userId, userPrefix: input.prefix, sources: input.sources, publicKey: expectedKey(deps),
        }, manifestKey(input.migrationId, input.userId));
      }
      const ledger = ledgerOf(deps, input);
      const evidence = (d: Manifest): UserEvent[] => {
        const rb = d.rolledBack!;
        return [{
          type: 'rollback',
          data: { userId: d.userId, generation: d.generation, restored: rb.restored, targetDeleted: rb.targetDeleted, kept: rb.kept.length, erased: rb.erasedCount ?? rb.erased?.length ?? 0 },
        }];
      };
      if (m?.rolledBack) {
        await recordUserEvents(deps.signingKey, ledger, input.migrationId, evidence(m), true, signal);
        const rb = m.rolledBack;
        return {
          ...result, restored: rb.restored, targetDeleted: rb.targetDeleted, kept: rb.kept.length, problems: rb.kept.slice(0, 20).map((k) => ({ key: k.key, problem: k.reason })),
          erased: rb.erasedCount ?? rb.erased?.length ?? 0, erasedKeys: (rb.erased ?? []).slice(0, ERASED_REPORTED),
        };
      }
      /** True when the source holds the bytes that were migrated: the recorded ETag, or the same size and SHA-256. */
      const sourceHolds = async (src: Site, key: string, head: TargetHead, etag: string | undefined, size: number, sha256: string | undefined) =>
        head.etag === etag || (!!sha256 && head.size === size && (await hashObject(src, key, head.etag, signal, deps)).sha256 === sha256);

      // Every batch is recorded before its first restore or delete and with its outcomes after (see
      // disposeSources): the counters and the manifest's `rolledBack` sum every run's records.
      const generation = m ? manifestGeneration(m) : 'no-manifest';
      const progress = await readProgress<RollbackOutcome>(target, input.migrationId, input.userId, 'rollback', generation, signal);
      // What Clover itself deleted in the sources: the disposal's records of this same pass.
      const disposal = m ? await readProgress<DisposalOutcome>(target, input.migrationId, input.userId, 'dispose', generation, signal) : undefined;
      const disposalRecorded = !!disposal && (disposal.done.size > 0 || disposal.interrupted.size > 0);
      const keptAtDisposal = new Set(m?.sourceDisposition?.keptChanged.map((k) => `${k.site}\u0000${k.key}`));
      const deletedByClover = (e: ManifestEntry): Set<string> => {
        const recorded = sitesDeletedByClover(disposal?.done.get(e.key), e);
        if (recorded) return new Set(recorded);
        // An interrupted disposal batch may have deleted the key in any of its sites.
        if (disposal?.interrupted.has(e.key)) return new Set(entrySites(e).map((p) => p.site));
        // A disposal from before progress records: every site of an entry it did not keep.
        if (m?.sourceDisposition && !disposalRecorded) return new Set(entrySites(e).map((p) => p.site).filter((s) => !keptAtDisposal.has(`${s}\u0000${e.key}`)));
        return new Set();
      };
      const kept = (key: string, reason: string): RollbackOutcome => ({ key, kept: reason });

      const deleteCopy = async (key: string, etag: string, partial = false): Promise<RollbackOutcome> => {
        const r = await deleteIfUnchanged(target, key, etag, signal);
        beat();
        if (r === 'changed') return kept(key, 'the EU copy was modified after the migration wrote it; kept');
        return { key, deleted: partial ? 'partial' : 'target' };
      };
      const undoEntry = async (e: ManifestEntry): Promise<RollbackOutcome> => {
        const places = entrySites(e);
        const missing = places.find((p) => !deps.clients.has(p.site));
        if (missing) return kept(e.key, `source site ${missing.site} is not in this worker's sites file`);
        const mine = deletedByClover(e);
        const restoredAt: string[] = [];
        const erasedAt: string[] = [];
        let problem: string | undefined;
        let copyOk: boolean | undefined;
        for (const p of places) {
          const src = site(deps, p.site);
          let srcHead = await headObject(src, e.key, signal);
          if (!srcHead) {
            if (!mine.has(p.site)) {
              erasedAt.push(p.site); // gone, and not by Clover: the application erased it after the last pass
              continue;
            }
            copyOk ??= (await headObject(target, e.key, signal))?.etag === e.targetEtag;
            if (!copyOk) {
              problem ??= `the source in ${p.site} is gone and the EU copy changed or is missing: nothing to restore from`;
              continue;
            }
            try {
              const out = await copyObject({
                source: target, target: src, object: { site: target.name, key: e.key, etag: e.targetEtag, size: e.size, lastModified: e.sourceLastModified },
                migrationId: input.migrationId, settings: deps.copy, budget: deps.budget, hasher: deps.hasher, signal, restore: true,
              });
              beat();
              if (out.sha256 !== e.sha256) {
                problem ??= `bytes restored in ${p.site} have SHA-256 ${out.sha256}, the manifest says ${e.sha256}; the EU copy is kept`;
                continue;
              }
              restoredAt.push(p.site);
              continue;
            } catch (err) {
              if (!(err instanceof TargetChangedError)) throw err;
              srcHead = await headObject(src, e.key, signal); // someone wrote the source key meanwhile
              if (!srcHead) throw err;
            }
          }
          if (!(await sourceHolds(src, e.key, srcHead, p.etag, e.size, e.sha256))) {
            problem ??= `the source object in ${p.site} differs from what was migrated; the EU copy is kept`;
            continue;
          }
          // A site Clover had emptied that holds the migrated bytes again, in a batch an interrupted run issued: that run restored it.
          if (progress.interrupted.has(e.key) && mine.has(p.site)) restoredAt.push(p.site);
        }
        const restored = restoredAt.length > 0 ? { restoredAt } : {};
        if (problem !== undefined) return { ...kept(e.key, problem), ...restored };
        if (erasedAt.length > 0) {
          return { key: e.key, ...restored, erased: `erased at the source after the last pass (${erasedAt.join(', ')}); not restored; the EU copy is kept` };
        }
        return { ...(await deleteCopy(e.key, e.targetEtag)), ...restored };
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
      result.restored = outcomes.reduce((n, o) => n + (o.restoredAt?.length ?? (o.restored ? 1 : 0)), 0);
      result.targetDeleted = outcomes.filter((o) => o.deleted === 'target').length;
      result.partialDeleted = outcomes.filter((o) => o.deleted === 'partial').length;
      const keptAll = outcomes.flatMap((o) => (o.kept !== undefined ? [{ key: o.key, reason: o.kept }] : []));
      result.kept = keptAll.length;
      result.problems = keptAll.slice(0, 20).map((k) => ({ key: k.key, problem: k.reason }));
      // Erasures carried over by delta passes are never restored (a key erased and written again is an entry).
      const erasures = new Map<string, ErasureRecord>();
      for (const x of m?.erasures ?? []) if (!inManifest.has(x.key)) erasures.set(x.key, x);
      const erasedAll = [
        ...[...erasures.values()].map((x) => ({ key: x.key, reason: `erased at the source (${x.sourceSite}) and carried over by pass ${x.generation}; never restored` })),
        ...outcomes.flatMap((o) => (o.erased !== undefined ? [{ key: o.key, reason: o.erased }] : [])),
      ];
      result.erased = erasedAll.length;
      result.erasedKeys = erasedAll.slice(0, ERASED_REPORTED);
      if (m && current) {
        const amended = amendManifest(m, {
          rolledBack: {
            at: new Date().toISOString(), restored: result.restored, targetDeleted: result.targetDeleted, kept: keptAll,
            erased: erasedAll.slice(0, RESIDUE_LISTED), erasedCount: erasedAll.length,
          },
        }, writer());
        const next = deps.signingKey ? signManifest(amended, deps.signingKey) : amended;
        const done = await commitManifestGeneration(target, next, { etag: current.etag }, signal, input.evidenceRetention);
        if (done.manifest.rolledBack) await recordUserEvents(deps.signingKey, ledger, input.migrationId, evidence(done.manifest), false, signal);
      }
      return result;
    });
  }
  return { rollbackUser };
}
