import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { REPEATABLE_ATTEMPTS } from '../domain/error-classes';
import { compareKeys, type ConflictRecord } from '../domain/manifest';
import type { Site } from '../storage/clients';
import type { UploadCheckpoint } from '../storage/copy-request';
import { abortUploads } from '../storage/delete';
import { SourceChangedError, StorageError, TargetChangedError, describeS3Error, givenUp } from '../storage/errors';
import { listObjectsPage } from '../storage/listing';
import { copyObject } from '../storage/object-copy';
import { META, headObject, stripQuotes, type SourceObject } from '../storage/object-meta';
import { hashObject } from '../storage/pinned-read';
import { writeStaging, type StagedEntry, type StagingPage } from '../storage/staging';
import { runActivity } from './scaffold';
import { site, targetSite, type ActivityDeps } from './deps';

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

interface Listed {
  candidates: Map<string, SourceObject[]>;
  nextCursor?: string;
}

/**
 * Lists one page of the user's prefix in every source, after `cursor`, and merges them by key (S3 lists
 * in UTF-8 byte order, so a key present in two sources lands in the same page). The page ends at the
 * smallest last key among truncated listings; `nextCursor` is undefined when every listing is exhausted.
 */
async function listMerged(sources: Site[], prefix: string, cursor: string | undefined, pageSize: number, signal: AbortSignal): Promise<Listed> {
  const lists = await Promise.all(
    sources.map(async (s) => {
      try {
        const r = await listObjectsPage(s, { Prefix: prefix, StartAfter: cursor, MaxKeys: pageSize }, signal);
        return { site: s, items: r.Contents ?? [], truncated: r.IsTruncated === true };
      } catch (err) {
        throw describeS3Error(err, { site: s.name, bucket: s.bucket, key: prefix, action: 'ListObjectsV2' });
      }
    }),
  );
  let boundary: string | undefined;
  for (const l of lists) {
    if (!l.truncated || l.items.length === 0) continue;
    const last = l.items.at(-1)?.Key;
    if (last === undefined) continue;
    if (boundary === undefined || compareKeys(last, boundary) < 0) boundary = last;
  }
  const candidates = new Map<string, SourceObject[]>();
  for (const l of lists) {
    for (const o of l.items) {
      const key = o.Key!;
      if (boundary !== undefined && compareKeys(key, boundary) > 0) break;
      if (key.endsWith('/') && (o.Size ?? 0) === 0) continue; // "folder" markers carry no data
      const c = { site: l.site.name, key, etag: stripQuotes(o.ETag), size: o.Size ?? 0, lastModified: (o.LastModified ?? new Date(0)).toISOString() };
      const list = candidates.get(key);
      if (list) list.push(c);
      else candidates.set(key, [c]);
    }
  }
  return { candidates, nextCursor: boundary };
}

export function createCopyActivities(deps: ActivityDeps) {
  /**
   * Copies every object of one user from the sources into the target, a listing page at a time, and
   * writes a staging record per page. Idempotent: an object already in the target with the same source
   * site and ETag (hence the same SHA-256, recorded in its metadata) is not copied again; a retried
   * attempt resumes at the page in its last heartbeat. Returns after a batch of pages (`done` false)
   * so the workflow records progress durably.
   */
  function copyUserObjects(input: CopyUserInput): Promise<CopyUserResult> {
    return runActivity(async ({ ctx, signal, checkpointWith, beat }) => {
      const target = targetSite(deps, input.targetSite);
      const sources = input.sources.map((n) => site(deps, n));
      const bySite = new Map(sources.map((s) => [s.name, s]));
      const resumed = ctx.info.heartbeatDetails as CopyCheckpoint | undefined;
      let page = resumed?.page ?? input.page;
      let cursor = resumed ? resumed.cursor : input.cursor;
      let listed = resumed?.listed === true;
      const transferred: Transferred = { parts: 0, partsReused: 0, ...(resumed?.transferred ?? input.transferred) };
      const uploads: Record<string, UploadCheckpoint> = { ...(resumed?.uploads ?? {}) };
      const partCounters = { sent: 0, reused: 0 };
      const blocked: { key: string; reason: string }[] = [...(resumed?.blocked ?? [])];
      let blockedCount = resumed?.blockedCount ?? 0;
      const totals = { objects: 0, bytes: 0, conflicts: 0 };
      const started = Date.now();
      const limit = pLimit(input.objectsPerUser);
      const block = (key: string, reason: string) => {
        // A redone page (after a retry) meets the same keys again: count each once.
        if (blocked.some((b) => b.key === key)) return;
        blockedCount++;
        if (blocked.length < 10) blocked.push({ key, reason });
      };

      /** Keys the target holds in the current page's range (from one listing), to skip a HEAD per new object. */
      let targetKeys: { keys: Set<string>; upTo?: string } = { keys: new Set() };
      const knownAbsent = (key: string) => !targetKeys.keys.has(key) && (targetKeys.upTo === undefined || compareKeys(key, targetKeys.upTo) <= 0);

      /** Copies one candidate unless the target already holds it; returns its entry, or a conflict. */
      async function place(c: SourceObject): Promise<{ entry?: StagedEntry; foreign?: ConflictRecord }> {
        // Failures that repeat the same way on the same key and ETag (bit rot, a request the store refuses).
        let repeated = 0;
        for (let attempt = 0; ; attempt++) {
          // A key the target listing did not show goes straight to a conditional write (If-None-Match: *
          // still refuses to overwrite anything that appeared since); otherwise HEAD for its metadata.
          const head = attempt === 0 && knownAbsent(c.key) ? undefined : await headObject(target, c.key, signal);
          let overwriteEtag: string | undefined;
          if (head) {
            const m = head.metadata;
            if (m[META.sourceSite] === c.site && m[META.sourceEtag] === c.etag && m[META.sha256]) {
              return {
                entry: {
                  key: c.key, size: head.size, sha256: m[META.sha256] ?? '', sourceSite: c.site, sourceEtag: c.etag,
                  sourceLastModified: c.lastModified, targetEtag: head.etag, targetChecksum: head.checksumSha256 ?? '',
                  outcome: m[META.migration] === input.migrationId ? 'copied' : 'present',
                },
              };
            }
            if (m[META.migration] !== input.migrationId) {
              // Not written by this migration: never overwritten (invariant 2).
              return {
                foreign: {
                  key: c.key, kind: 'foreign-target', resolution: 'left-in-place',
                  sites: [{ site: c.site, etag: c.etag, lastModified: c.lastModified, size: c.size }],
                },
              };
            }
            overwriteEtag = head.etag;
          }
          try {
            const out = await copyObject({
              source: bySite.get(c.site)!, target, object: c, migrationId: input.migrationId, overwriteEtag, settings: deps.copy, budget: deps.budget, hasher: deps.hasher, signal,
              resumeUpload: uploads[c.key], partCounters,
              onUpload: (u) => {
                uploads[c.key] = u;
                beat(); // the upload id reaches the checkpoint at once, not at the next periodic beat
              },
            });
            delete uploads[c.key];
            transferred.objects++;
            transferred.bytes += out.size;
            return {
              entry: {
                key: c.key, size: out.size, sha256: out.sha256, sourceSite: c.site, sourceEtag: c.etag,
                sourceLastModified: c.lastModified, targetEtag: out.targetEtag, targetChecksum: out.targetChecksum, outcome: 'copied',
              },
            };
          } catch (err) {
            if (err instanceof StorageError && err.repeatable) {
              // Read again from scratch a few times (an intermediary may have garbled one read), then the
              // user fails naming the key: retrying the activity forever would read the same bytes.
              if (++repeated >= REPEATABLE_ATTEMPTS) throw givenUp(err, repeated);
              await sleep(500 * repeated, undefined, { signal });
              continue;
            }
            if (attempt >= 3) throw err;
            if (err instanceof TargetChangedError) continue; // look at the target again
            if (err instanceof SourceChangedError) {
              // Re-read the listing of this one key and copy the new version (never stitch versions: invariant 3).
              const now = await headObject(bySite.get(c.site)!, c.key, signal);
              if (!now) return {};
              c = { ...c, etag: now.etag, size: now.size, lastModified: c.lastModified };
              continue;
            }
            throw err;
          }
        }
      }

      async function handleKey(key: string, cands: SourceObject[], out: StagingPage): Promise<void> {
        const [only, ...others] = cands;
        if (!only) return;
        if (others.length === 0) {
          const r = await place(only);
          if (r.entry) out.entries.push(r.entry);
          if (r.foreign) {
            out.conflicts.push(r.foreign);
            block(key, `the target already holds an object at this key that Clover did not write`);
          }
          return;
        }
        // The same key in several sources: newest LastModified wins (ties: the plan's source order).
        const order = [...cands].sort((a, b) => b.lastModified.localeCompare(a.lastModified) || input.sources.indexOf(a.site) - input.sources.indexOf(b.site));
        const newest = order[0] ?? only;
        const hashes = new Map<string, string>();
        const hashOf = async (c: SourceObject) => {
          if (!hashes.has(c.site)) hashes.set(c.site, (await hashObject(bySite.get(c.site)!, c.key, c.etag, signal, deps)).sha256);
          return hashes.get(c.site)!;
        };
        let entry: StagedEntry | undefined;
        if (input.conflictPolicy === 'newest-wins') {
          const r = await place(newest);
          if (r.foreign) {
            out.conflicts.push(r.foreign);
            block(key, 'the target already holds an object at this key that Clover did not write');
            return;
          }
          entry = r.entry;
          if (entry) hashes.set(newest.site, entry.sha256);
        }
        const distinct = new Set<string>();
        for (const c of order) distinct.add(c.size === newest.size ? await hashOf(c) : `size:${c.size}:${c.site}`);
        if (distinct.size > 1) {
          const resolution = input.conflictPolicy === 'newest-wins' ? 'newest-wins' : 'failed-user';
          out.conflicts.push({
            key, kind: 'sources-differ', resolution, chosenSite: resolution === 'newest-wins' ? newest.site : undefined,
            sites: order.map((c) => ({ site: c.site, etag: c.etag, lastModified: c.lastModified, size: c.size, sha256: hashes.get(c.site) })),
          });
          if (resolution === 'failed-user') {
            block(key, `sources ${order.map((c) => c.site).join(' and ')} hold different bytes at this key (conflictPolicy "fail")`);
            return;
          }
        } else if (!entry) {
          entry = (await place(newest)).entry;
        }
        if (entry) out.entries.push(entry);
      }

      // The page in progress and the PUTs sent so far; page and cursor only change together, between pages.
      const checkpoint = (): CopyCheckpoint => ({
        page, cursor, listed, blocked, blockedCount, uploads,
        transferred: { ...transferred, parts: (transferred.parts ?? 0) + partCounters.sent, partsReused: (transferred.partsReused ?? 0) + partCounters.reused },
      });
      checkpointWith(checkpoint);
      const finish = async (): Promise<CopyUserResult> => {
        // Uploads abandoned by earlier attempts (a crash before their checkpoint) end here.
        await abortUploads(target, input.prefix, signal);
        return { done: true, page, cursor, ...totals, transferred: checkpoint().transferred, blocked, blockedCount };
      };
      if (listed) return finish();
      for (let pages = 0; pages < deps.batch.maxPages && Date.now() - started < deps.batch.maxMillis; pages++) {
        const [sourcePage, inTarget] = await Promise.all([
          listMerged(sources, input.prefix, cursor, deps.batch.listPageSize, signal),
          listMerged([target], input.prefix, cursor, deps.batch.listPageSize, signal),
        ]);
        targetKeys = { keys: new Set(inTarget.candidates.keys()), upTo: inTarget.nextCursor };
        const staging: StagingPage = { page, cursor, nextCursor: sourcePage.nextCursor, entries: [], conflicts: [] };
        await Promise.all(
          [...sourcePage.candidates].map(([key, cands]) =>
            limit(async () => {
              await handleKey(key, cands, staging);
              beat();
            }),
          ),
        );
        if (staging.entries.length > 0 || staging.conflicts.length > 0 || page === 0) {
          staging.entries.sort((a, b) => compareKeys(a.key, b.key));
          await writeStaging(target, input.migrationId, input.userId, staging, signal);
          totals.objects += staging.entries.length;
          totals.bytes += staging.entries.reduce((n, e) => n + e.size, 0);
          totals.conflicts += staging.conflicts.length;
          page++;
        }
        cursor = sourcePage.nextCursor;
        listed = cursor === undefined;
        beat();
        if (listed) return finish();
      }
      return { done: false, page, cursor, ...totals, transferred: checkpoint().transferred, blocked, blockedCount };
    });
  }
  return { copyUserObjects };
}
