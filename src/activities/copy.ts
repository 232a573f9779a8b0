import { ApplicationFailure } from '@temporalio/common';
import pLimit from 'p-limit';
import { compareKeys, entrySites, ManifestConflictError, type ManifestEntry } from '../domain/manifest';
import { describeS3Error } from '../storage/errors';
import { listObjectsPage } from '../storage/listing';
import { entriesInRange, planPage } from '../domain/pass-plan';
import { manifestKey } from '../domain/layout';
import { assertManifestValid, type ManifestExpectations } from '../domain/manifest-guard';
import type { Site } from '../storage/clients';
import type { UploadCheckpoint } from '../storage/copy-request';
import { abortUploads } from '../storage/delete';
import { getManifest } from '../storage/manifests';
import { listPage, type PageListing } from '../storage/page-listing';
import { removeStaging, writeStaging, type StagingPage } from '../storage/staging';
import { executeKey, type PassContext } from './pass-executor';
import { runActivity } from './scaffold';
import { expectedKey, inObjectSlot, site, targetSite, type ActivityDeps } from './deps';

/**
 * Listing pages whose keys are queued or copying at once in one copy call: the page being finished and the
 * next one, so a page's last copies overlap the next page's first ones. Two bound the memory to two pages' plans.
 */
export const PAGES_IN_FLIGHT = 2;

export interface CopyUserInput {
  migrationId: string;
  userId: string;
  sources: string[];
  targetSite: string;
  /** The user's resolved key prefix, e.g. users/u-0001/. */
  prefix: string;
  conflictPolicy: 'newest-wins' | 'fail';
  objectsPerUser: number;
  /**
   * The manifest generation this pass builds: 1 for the first pass; for a delta pass the newest
   * committed generation + 1 (whose entries are the pass's "previous" view; the activity reads them).
   */
  generation: number;
  /** Where this call starts: the page number and the last key of the previous page. */
  page: number;
  cursor?: string;
  transferred: Transferred;
  /** The plan has `restoreArchived`: archived objects were restored before the pass and are copied (otherwise each blocks the user). */
  restoreArchived?: boolean;
  /** The plan's `targetStorageClass`. */
  targetStorageClass?: string;
  /** The plan's `targetRetention`: Object Lock on every EU copy written. */
  targetRetention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

/** Work actually sent (summed over every attempt through the checkpoint). */
export interface Transferred {
  objects: number;
  bytes: number;
  /** Multipart parts uploaded / found already uploaded by an earlier attempt and reused. */
  parts?: number;
  partsReused?: number;
}

export interface CopyUserResult {
  done: boolean;
  page: number;
  cursor?: string;
  /** Totals of this call's completed pages. */
  objects: number;
  bytes: number;
  conflicts: number;
  transferred: Transferred;
  /**
   * First pass only: keys that block the user (foreign target object, or conflicting sources under
   * policy "fail"): first few. A delta pass records its conflicts in staging and blocks nothing.
   */
  blocked: { key: string; reason: string }[];
  blockedCount: number;
  /**
   * With `hold` (activities/small-user.ts): the user's only page, kept in memory instead of staged, for
   * the same activity's verify and commit. Never returned to a workflow.
   */
  held?: StagingPage;
  /**
   * With `localMaxBytes`: the user is not small enough for a local activity, and nothing was copied or
   * staged; the workflow runs its first pass as a regular activity.
   */
  deferred?: boolean;
}

/**
 * Heartbeat checkpoint: the page being worked on (redone from its start on retry) and the PUTs sent so
 * far. `listed` marks that every page is staged: `cursor` undefined then means "nothing left", never
 * "from the start", so a retry after the last page never lists (and stages) the user a second time.
 */
export interface CopyCheckpoint {
  page: number;
  cursor?: string;
  listed?: boolean;
  transferred: Transferred;
  /** Multipart uploads in progress, by key: a retried attempt continues them from their parts. */
  uploads?: Record<string, UploadCheckpoint>;
  blocked: { key: string; reason: string }[];
  blockedCount: number;
}

/**
 * Copies one user's objects from the sources into the target as one pass of manifest generation
 * `input.generation`, a listing page at a time, and stages each page. Generation 1 (the first pass)
 * copies everything; a delta pass also reads the previous generation and, per page, plans each key
 * (domain/pass-plan.ts: carry, copy, copy over Clover's own copy, erase, report) and executes the plan
 * (pass-executor.ts). Unchanged objects cost a listing, not a read. Idempotent: a retried attempt
 * resumes at the page in its last heartbeat, drops whatever a crashed attempt staged from that page on,
 * and finds its own writes in the target. Returns after a batch of pages (`done` false) so the workflow
 * records progress durably.
 */
export function createCopyActivities(deps: ActivityDeps) {
  /**
   * `hold`: a first pass whose user has one listing page only, copied in this one call, keeps that page
   * in memory (`held`) instead of staging it: the caller verifies and commits it within the same
   * activity, and a retried attempt copies again (it finds every copy in the target). The checkpoint
   * never moves past a held page, so no heartbeat ever says it was staged.
   * `localMaxBytes` (a first pass run as a local activity, which sends no heartbeats): unless the first
   * listing page is the user's only one, its sources hold at most this many bytes and no object needs a
   * multipart upload (whose parts a heartbeat would checkpoint), returns `deferred` before copying.
   */
  function copyUserObjects(input: CopyUserInput, opts: { hold?: boolean; localMaxBytes?: number } = {}): Promise<CopyUserResult> {
    return runActivity(async ({ resumed: prior, signal, checkpointWith, beat }) => {
      const target = targetSite(deps, input.targetSite);
      const sources = input.sources.map((n) => site(deps, n));
      const resumed = prior as CopyCheckpoint | undefined;
      let page = resumed?.page ?? input.page;
      let cursor = resumed ? resumed.cursor : input.cursor;
      let listed = resumed?.listed === true;
      const transferred: Transferred = { parts: 0, partsReused: 0, ...(resumed?.transferred ?? input.transferred) };
      const pass: PassContext = {
        deps, migrationId: input.migrationId, generation: input.generation, sourceOrder: input.sources, conflictPolicy: input.conflictPolicy,
        target, bySite: new Map(sources.map((s) => [s.name, s])), signal, beat,
        uploads: { ...(resumed?.uploads ?? {}) }, partCounters: { sent: 0, reused: 0 }, transferred,
        restoreArchived: input.restoreArchived === true, targetStorageClass: input.targetStorageClass, targetRetention: input.targetRetention,
      };
      const blocked: { key: string; reason: string }[] = [...(resumed?.blocked ?? [])];
      let blockedCount = resumed?.blockedCount ?? 0;
      const block = (key: string, reason: string) => {
        // Only a first pass blocks; a redone page (after a retry) meets the same keys again: count each once.
        if (input.generation !== 1 || blocked.some((b) => b.key === key)) return;
        blockedCount++;
        if (blocked.length < 10) blocked.push({ key, reason });
      };
      const totals = { objects: 0, bytes: 0, conflicts: 0 };
      const started = Date.now();
      const limit = pLimit(input.objectsPerUser);
      let failed = false;

      // The page in progress and the PUTs sent so far; page and cursor only change together, between pages.
      const checkpoint = (): CopyCheckpoint => ({
        page, cursor, listed, blocked, blockedCount, uploads: pass.uploads,
        transferred: { ...transferred, parts: (transferred.parts ?? 0) + pass.partCounters.sent, partsReused: (transferred.partsReused ?? 0) + pass.partCounters.reused },
      });
      checkpointWith(checkpoint);
      const finish = async (): Promise<CopyUserResult> => {
        // Uploads abandoned by earlier attempts (a crash before their checkpoint) end here.
        await abortUploads(target, input.prefix, signal);
        return { done: true, page, cursor, ...totals, transferred: checkpoint().transferred, blocked, blockedCount };
      };
      if (listed) return finish();
      const previous = await previousEntries(target, input, signal, expectedKey(deps));
      if (!resumed && page === 0) await refuseEmptySources(sources, previous, input, signal);
      // Whatever an interrupted attempt staged from this page on is redone (its page ranges may differ now).
      await removeStaging(target, input.migrationId, input.userId, input.generation, page, signal);
      // Pipelined pages (one heavy user as fast as many light ones): the next page is listed while this
      // one copies, and its keys queue behind this page's on the user's one limit, so `objectsPerUser`
      // copies stay in flight across page ends. Pages are still staged one at a time, in order, and the
      // checkpoint moves only past a staged page: a retry redoes the page after the last staged one (and
      // finds the copies a later page already made in the target).
      const listFrom = (after: string | undefined) => {
        const p = listPage(sources, target, input.prefix, after, deps.batch.listPageSize, signal);
        p.catch(() => undefined); // awaited in order below; not an unhandled rejection meanwhile
        return p;
      };
      const runPage = (from: string | undefined, listing: PageListing): Promise<StagingPage> => {
        const plans = planPage(listing.sources, listing.target, entriesInRange(previous, from, listing.nextCursor));
        const staging: StagingPage = { generation: input.generation, page: -1, cursor: from, nextCursor: listing.nextCursor, entries: [], conflicts: [], erasures: [] };
        const done = Promise.all(plans.map((plan) => limit(async () => {
          // A key waiting for a worker slot when this attempt failed never starts (the retry redoes it).
          const r = await inObjectSlot(deps, async () => (failed ? undefined : executeKey(pass, plan)));
          if (!r) return;
          if (r.entry) staging.entries.push(r.entry);
          if (r.conflict) staging.conflicts.push(r.conflict);
          if (r.erasure) staging.erasures.push(r.erasure);
          if (r.block) block(plan.key, r.block);
          beat();
        }))).then(() => staging);
        done.catch(() => undefined); // awaited in page order
        return done;
      };
      const inFlight: Promise<StagingPage>[] = [];
      let next: Promise<PageListing> | undefined = listFrom(cursor);
      let nextFrom = cursor;
      try {
        return await copyPages();
      } catch (err) {
        // Keys of this attempt not started yet (queued here or for a worker slot) never start; the retry redoes them.
        failed = true;
        limit.clearQueue();
        throw err;
      }
      async function copyPages(): Promise<CopyUserResult> {
        for (let pages = 0; ;) {
          while (next && inFlight.length < PAGES_IN_FLIGHT && pages < deps.batch.maxPages && Date.now() - started < deps.batch.maxMillis) {
            const listing: PageListing = await next;
            if (pages === 0 && opts.localMaxBytes !== undefined && !localSized(listing, opts.localMaxBytes, deps.copy.multipartThreshold)) {
              return { done: false, page, cursor, ...totals, transferred: checkpoint().transferred, blocked, blockedCount, deferred: true };
            }
            const from = nextFrom;
            pages++;
            nextFrom = listing.nextCursor;
            next = listing.nextCursor === undefined ? undefined : listFrom(listing.nextCursor);
            inFlight.push(runPage(from, listing));
          }
          const current = inFlight.shift();
          if (!current) break;
          const staging = await current;
          // Held only when this activity goes on to verify and commit it: nothing blocked, nothing left to list.
          const hold = opts.hold && input.generation === 1 && page === 0 && staging.nextCursor === undefined && blockedCount === 0;
          if (hold || staging.entries.length > 0 || staging.conflicts.length > 0 || staging.erasures.length > 0 || page === 0) {
            staging.page = page;
            staging.entries.sort((a, b) => compareKeys(a.key, b.key));
            if (!hold) await writeStaging(target, input.migrationId, input.userId, staging, signal);
            totals.objects += staging.entries.length;
            totals.bytes += staging.entries.reduce((n, e) => n + e.size, 0);
            totals.conflicts += staging.conflicts.length;
            // The checkpoint (page, cursor, listed) stays before a held page: no heartbeat says it was staged.
            if (hold) return { ...(await finish()), page: 1, cursor: undefined, held: staging };
            page++;
          }
          cursor = staging.nextCursor;
          listed = cursor === undefined;
          beat();
          if (listed) return finish();
        }
        return { done: false, page, cursor, ...totals, transferred: checkpoint().transferred, blocked, blockedCount };
      }
    });
  }
  return { copyUserObjects };
}

/** The user's only page, with at most `maxBytes` in its sources and no object above `multipartThreshold` (no multipart upload). */
function localSized(listing: PageListing, maxBytes: number, multipartThreshold: number): boolean {
  if (listing.nextCursor !== undefined) return false;
  let bytes = 0;
  for (const copies of listing.sources.values()) {
    for (const o of copies) {
      if (o.size > multipartThreshold) return false;
      bytes += o.size;
    }
  }
  return bytes <= maxBytes;
}

/**
 * A delta pass carries every key no source lists over as an erasure. A source bucket that lists nothing
 * at all (a bucket replaced or emptied by mistake, a sites file pointing at the wrong one) would so
 * erase the EU copy of every user it held: a pass whose previous generation recorded objects from a
 * site whose bucket is now empty is refused (permanent SourceEmpty), before anything is touched. A
 * user erasing all their own data leaves the bucket's other users: that is carried over as usual.
 */
async function refuseEmptySources(sources: Site[], previous: ManifestEntry[], input: CopyUserInput, signal: AbortSignal): Promise<void> {
  const recorded = new Set(previous.flatMap((e) => entrySites(e).map((p) => p.site)));
  for (const s of sources) {
    if (!recorded.has(s.name)) continue;
    let r;
    try {
      r = await listObjectsPage(s, { MaxKeys: 1 }, signal);
    } catch (err) {
      throw describeS3Error(err, { site: s.name, bucket: s.bucket, action: 'ListObjectsV2 (empty-source check)' });
    }
    if ((r.Contents ?? []).length === 0) {
      const n = previous.filter((e) => entrySites(e).some((p) => p.site === s.name)).length;
      throw ApplicationFailure.create({
        type: 'SourceEmpty', nonRetryable: true,
        message: `user ${input.userId}: source site ${s.name} (bucket ${s.bucket}) lists no object at all, while manifest generation ${input.generation - 1} ` +
          `records ${n} object(s) from it; a delta pass would erase their EU copies, so none ran. Check the sites file and the bucket`,
      });
    }
  }
}

/**
 * The entries of the generation a delta pass builds on (`generation - 1`, which must be the newest
 * committed one), in key order; none for a first pass. A pass on a user already cut over (sources
 * emptied by Clover) or rolled back is refused: it would take every deleted source object for an erasure.
 */
async function previousEntries(target: Site, input: CopyUserInput, signal: AbortSignal, publicKey?: ManifestExpectations['publicKey']): Promise<ManifestEntry[]> {
  if (input.generation <= 1) return [];
  const m = await getManifest(target, input.migrationId, input.userId, signal);
  if (m?.sourceDisposition || m?.rolledBack) {
    throw ApplicationFailure.create({
      type: 'CutOver', nonRetryable: true,
      message: `user ${input.userId}: ${m.sourceDisposition ? 'was cut over (its sources were emptied by Clover)' : 'was rolled back'}; no further pass can run`,
    });
  }
  // The generation a pass builds on drives erasures (deletes in the EU copy): checked like any manifest a
  // destructive step acts on, so an edited one (a key outside the user's prefix, say) stops the pass. With
  // an evidence key its signature is checked too: a pass must not build (and sign) on an edited generation.
  if (m) {
    assertManifestValid(m, {
      migrationId: input.migrationId, userId: input.userId, userPrefix: input.prefix, sources: input.sources, publicKey,
    }, manifestKey(input.migrationId, input.userId));
  }
  if (m?.generation !== input.generation - 1) {
    throw new ManifestConflictError(
      `user ${input.userId}: a pass for manifest generation ${input.generation} needs generation ${input.generation - 1} as the newest, found ${m?.generation ?? 'none'}; run the pass again`,
    );
  }
  return m.entries;
}
