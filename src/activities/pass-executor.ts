import { setTimeout as sleep } from 'node:timers/promises';
import { REPEATABLE_ATTEMPTS } from '../domain/error-classes';
import type { ConflictRecord, ErasureRecord, ManifestEntry } from '../domain/manifest';
import type { KeyPlan, Listed } from '../domain/pass-plan';
import { archivedLine, isArchived } from '../domain/versions';
import type { Site } from '../storage/clients';
import type { UploadCheckpoint } from '../storage/copy-request';
import { deleteIfUnchanged } from '../storage/delete';
import { SourceChangedError, StorageError, TargetChangedError, givenUp } from '../storage/errors';
import { copyObject } from '../storage/object-copy';
import { META, headObject, type TargetHead } from '../storage/object-meta';
import { hashObject } from '../storage/pinned-read';
import type { StagedEntry } from '../storage/staging';
import type { ActivityDeps } from './deps';

/** What one key of a page ended in. */
export interface KeyResult {
  entry?: StagedEntry;
  conflict?: ConflictRecord;
  erasure?: ErasureRecord;
  /** First pass only: why the key blocks the user. */
  block?: string;
}

/** Everything the executor needs for one activity call (one pass, a batch of its pages). */
export interface PassContext {
  deps: ActivityDeps;
  migrationId: string;
  generation: number;
  sourceOrder: readonly string[];
  conflictPolicy: 'newest-wins' | 'fail';
  target: Site;
  bySite: ReadonlyMap<string, Site>;
  signal: AbortSignal;
  /** Multipart uploads in progress (checkpointed), by key. */
  uploads: Record<string, UploadCheckpoint>;
  partCounters: { sent: number; reused: number };
  /** PUTs actually sent (added to). */
  transferred: { objects: number; bytes: number };
  /** Heartbeat now (an upload id must reach the checkpoint at once). */
  beat: () => void;
  /** Archived source objects are copied (restored before the pass); false: each one blocks the user. */
  restoreArchived?: boolean;
  targetStorageClass?: string;
  targetRetention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

const FOREIGN = 'the target already holds an object at this key that Clover did not write';

/** Where one object ended: a staged entry, an object someone else owns at the key, or its source is gone. */
type Placed = { entry: StagedEntry } | { foreign: TargetHead } | { gone: true };

const isOurs = (ctx: PassContext, head: TargetHead) => head.metadata[META.migration] === ctx.migrationId;

function staged(c: Listed, sha256: string, size: number, targetEtag: string, targetChecksum: string, previous: ManifestEntry | undefined, sourceVersionId?: string): StagedEntry {
  return {
    key: c.key, size, sha256, sourceSite: c.site, sourceEtag: c.etag, sourceLastModified: c.lastModified, targetEtag, targetChecksum,
    ...(sourceVersionId ? { sourceVersionId } : {}),
    outcome: 'copied', ...(previous ? { overwritten: true } : {}),
  };
}

/**
 * Writes one source object into the target. `overwrite`: the only ETag the write may replace
 * (undefined: create only); `look`: decide from a HEAD of the target first. An object found at the key
 * that this migration did not write is never overwritten (nor adopted); one this migration wrote from
 * the very same source object (an interrupted attempt) is taken as it is.
 */
async function place(ctx: PassContext, c: Listed, overwrite: string | undefined, look: boolean, previous: ManifestEntry | undefined): Promise<Placed> {
  const { target, signal, deps } = ctx;
  let repeated = 0; // failures that repeat the same way on the same key and ETag (bit rot, a refused request)
  for (let attempt = 0; ; attempt++) {
    if (look) {
      const head = await headObject(target, c.key, signal);
      overwrite = undefined;
      if (head) {
        if (!isOurs(ctx, head)) return { foreign: head };
        const m = head.metadata;
        if (m[META.sourceSite] === c.site && m[META.sourceEtag] === c.etag && m[META.sha256]) {
          return { entry: staged(c, m[META.sha256] ?? '', head.size, head.etag, head.checksumSha256 ?? '', previous) };
        }
        overwrite = head.etag; // an older copy this migration wrote
      }
    }
    try {
      const out = await copyObject({
        source: ctx.bySite.get(c.site)!, target, object: c, migrationId: ctx.migrationId, overwriteEtag: overwrite,
        settings: deps.copy, budget: deps.budget, hasher: deps.hasher, signal, resumeUpload: ctx.uploads[c.key], partCounters: ctx.partCounters,
        storageClass: ctx.targetStorageClass, retention: ctx.targetRetention,
        onUpload: (u) => {
          ctx.uploads[c.key] = u;
          ctx.beat();
        },
      });
      delete ctx.uploads[c.key];
      ctx.transferred.objects++;
      ctx.transferred.bytes += out.size;
      return { entry: staged(c, out.sha256, out.size, out.targetEtag, out.targetChecksum, previous, out.sourceVersionId) };
    } catch (err) {
      if (err instanceof StorageError && err.repeatable) {
        // Read again from scratch a few times (an intermediary may have garbled one read), then the user
        // fails naming the key: retrying the activity forever would read the same bytes.
        if (++repeated >= REPEATABLE_ATTEMPTS) throw givenUp(err, repeated);
        await sleep(500 * repeated, undefined, { signal });
        continue;
      }
      if (attempt >= 3) throw err;
      if (err instanceof TargetChangedError) {
        look = true; // someone wrote the key meanwhile: look at what is there now
        continue;
      }
      if (err instanceof SourceChangedError) {
        // Copy the source's new version (never stitch versions: invariant 3), or nothing if it is gone.
        const now = await headObject(ctx.bySite.get(c.site)!, c.key, signal);
        if (!now) return { gone: true };
        c = { ...c, etag: now.etag, size: now.size };
        continue;
      }
      throw err;
    }
  }
}

/** Removes the EU copy of an object no source holds any more, only while it is Clover's; the erasure record, or a conflict. */
async function erase(ctx: PassContext, key: string, entry: ManifestEntry, etag: string | undefined): Promise<KeyResult> {
  const record: ErasureRecord = { key, size: entry.size, sha256: entry.sha256, sourceSite: entry.sourceSite, erasedAt: new Date().toISOString(), generation: ctx.generation };
  if (etag === undefined) return { erasure: record };
  let r = await deleteIfUnchanged(ctx.target, key, etag, ctx.signal);
  if (r === 'changed') {
    const head = await headObject(ctx.target, key, ctx.signal);
    if (head && !isOurs(ctx, head)) return { conflict: targetChanged(key, entry, []) };
    r = head ? await deleteIfUnchanged(ctx.target, key, head.etag, ctx.signal) : 'absent';
    if (r === 'changed') throw new TargetChangedError(ctx.target.name, key); // written again meanwhile: the retry looks again
  }
  return { erasure: record };
}

function targetChanged(key: string, entry: ManifestEntry, candidates: readonly Listed[]): ConflictRecord {
  return {
    key, kind: 'target-changed', resolution: 'left-in-place',
    sites: candidates.length > 0
      ? candidates.map((c) => ({ site: c.site, etag: c.etag, lastModified: c.lastModified, size: c.size }))
      : [{ site: entry.sourceSite, etag: entry.sourceEtag, lastModified: entry.sourceLastModified, size: entry.size, sha256: entry.sha256 }],
  };
}

function foreignTarget(key: string, c: Listed): KeyResult {
  return {
    conflict: { key, kind: 'foreign-target', resolution: 'left-in-place', sites: [{ site: c.site, etag: c.etag, lastModified: c.lastModified, size: c.size }] },
    block: FOREIGN,
  };
}

/**
 * Places a key that one or several sources list. Several: the newest LastModified wins (ties: the
 * plan's source order); sources holding the same bytes are recorded as duplicates (`alsoAt`, deleted at
 * cut-over too), different bytes as a `sources-differ` conflict (newest-wins: the losers are recorded
 * as `superseded`; fail: nothing is written and the key blocks a first pass).
 */
async function resolve(ctx: PassContext, key: string, candidates: Listed[], overwrite: string | undefined, look: boolean, previous: ManifestEntry | undefined): Promise<KeyResult> {
  const order = [...candidates].sort((a, b) => b.lastModified.localeCompare(a.lastModified) || ctx.sourceOrder.indexOf(a.site) - ctx.sourceOrder.indexOf(b.site));
  const newest = order[0];
  if (!newest) return previous ? erase(ctx, key, previous, previous.targetEtag) : {};
  const onPlaced = (p: Placed): KeyResult | Listed[] => {
    if ('gone' in p) return order.slice(1); // erased during the pass: the other sources decide
    if ('foreign' in p) return previous ? { conflict: targetChanged(key, previous, candidates) } : foreignTarget(key, newest);
    return { entry: p.entry };
  };
  if (order.length === 1) {
    const r = onPlaced(await place(ctx, newest, overwrite, look, previous));
    return Array.isArray(r) ? resolve(ctx, key, r, overwrite, true, previous) : r;
  }
  const hashes = new Map<string, string>();
  const hashOf = async (c: Listed): Promise<string | undefined> => {
    if (!hashes.has(c.site)) {
      try {
        hashes.set(c.site, (await hashObject(ctx.bySite.get(c.site)!, c.key, c.etag, ctx.signal, ctx.deps)).sha256);
      } catch (err) {
        if (err instanceof SourceChangedError) return undefined; // changed or gone during the pass: the next pass sees it
        throw err;
      }
    }
    return hashes.get(c.site);
  };
  let entry: StagedEntry | undefined;
  if (ctx.conflictPolicy === 'newest-wins') {
    const r = onPlaced(await place(ctx, newest, overwrite, look, previous));
    if (Array.isArray(r)) return resolve(ctx, key, r, overwrite, true, previous);
    if (!r.entry) return r;
    entry = r.entry;
    hashes.set(newest.site, entry.sha256);
  }
  const newestHash = await hashOf(newest);
  const same: Listed[] = [];
  const differ: Listed[] = [];
  for (const c of order.slice(1)) {
    const h = c.size === newest.size ? await hashOf(c) : undefined;
    if (h !== undefined && h === newestHash) same.push(c);
    else if (h !== undefined || c.size !== newest.size) differ.push(c);
  }
  let conflict: ConflictRecord | undefined;
  if (differ.length > 0) {
    const resolution = ctx.conflictPolicy === 'newest-wins' ? 'newest-wins' : 'failed-user';
    conflict = {
      key, kind: 'sources-differ', resolution, chosenSite: resolution === 'newest-wins' ? newest.site : undefined,
      sites: order.map((c) => ({ site: c.site, etag: c.etag, lastModified: c.lastModified, size: c.size, sha256: hashes.get(c.site) })),
    };
    if (resolution === 'failed-user') {
      // Nothing is written; a delta pass keeps the previous generation's entry (the EU copy is still Clover's).
      const kept: StagedEntry | undefined = previous && { ...previous, targetChecksum: '', carried: true };
      return { conflict, entry: kept, block: `sources ${order.map((c) => c.site).join(' and ')} hold different bytes at this key (conflictPolicy "fail")` };
    }
  }
  if (!entry) {
    const r = onPlaced(await place(ctx, newest, overwrite, look, previous));
    if (Array.isArray(r)) return resolve(ctx, key, r, overwrite, true, previous);
    if (!r.entry) return r;
    entry = r.entry;
  }
  if (same.length > 0) entry.alsoAt = same.map((c) => ({ site: c.site, etag: c.etag }));
  if (differ.length > 0) entry.superseded = differ.map((c) => ({ site: c.site, etag: c.etag }));
  return { entry, conflict };
}

/** Carries out one key's plan (see domain/pass-plan.ts for what each kind means). */
export async function executeKey(ctx: PassContext, plan: KeyPlan): Promise<KeyResult> {
  switch (plan.kind) {
    case 'carry':
      return { entry: { ...plan.entry, targetChecksum: '', carried: true } };
    case 'place': {
      const { expect } = plan;
      const archived = ctx.restoreArchived ? undefined : plan.candidates.find((c) => isArchived(c.storageClass));
      if (archived) return { block: archivedLine(archived.site, archived.key, archived.storageClass!), entry: plan.previous && { ...plan.previous, targetChecksum: '', carried: true } };
      if ('etag' in expect) return resolve(ctx, plan.key, plan.candidates, expect.etag, false, plan.previous);
      return resolve(ctx, plan.key, plan.candidates, undefined, 'unknown' in expect, plan.previous);
    }
    case 'erase':
      return erase(ctx, plan.key, plan.entry, plan.targetGone ? undefined : plan.entry.targetEtag);
    case 'target-changed': {
      // A copy this migration wrote (an interrupted attempt of this pass) is still Clover's; anyone else's is reported.
      const head = await headObject(ctx.target, plan.key, ctx.signal);
      if (head && !isOurs(ctx, head)) return { conflict: targetChanged(plan.key, plan.entry, plan.candidates) };
      if (plan.candidates.length === 0) return erase(ctx, plan.key, plan.entry, head?.etag);
      return resolve(ctx, plan.key, [...plan.candidates], undefined, true, plan.entry);
    }
    case 'orphan': {
      // Only the target lists it and no generation recorded it: a copy this migration wrote whose source
      // was erased before its pass was committed is an erasure; anyone else's object is left alone.
      const head = await headObject(ctx.target, plan.key, ctx.signal);
      if (!head || !isOurs(ctx, head)) return {};
      const m = head.metadata;
      const stand: ManifestEntry = {
        key: plan.key, size: head.size, sha256: m[META.sha256] ?? '', sourceSite: m[META.sourceSite] ?? '', sourceEtag: m[META.sourceEtag] ?? '',
        sourceLastModified: m[META.sourceLastModified] ?? '', targetEtag: head.etag, outcome: 'copied',
      };
      return erase(ctx, plan.key, stand, head.etag);
    }
  }
}
