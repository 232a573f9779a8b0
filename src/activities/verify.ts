import { ApplicationFailure } from '@temporalio/common';
import pLimit from 'p-limit';
import { compareKeys } from '../domain/manifest';
import type { Site } from '../storage/clients';
import { SourceChangedError, describeS3Error } from '../storage/errors';
import { copyObject } from '../storage/object-copy';
import { META, headObject, stripQuotes } from '../storage/object-meta';
import { hashObject } from '../storage/pinned-read';
import { listObjectsPage } from '../storage/listing';
import { passPages, writeStaging, type StagedEntry, type StagingPage } from '../storage/staging';
import { inObjectSlot, site, targetSite, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

export interface VerifyUserInput {
  migrationId: string;
  userId: string;
  targetSite: string;
  /** The user's key prefix: mode `checksum` lists it once per page instead of a HEAD per object. */
  prefix?: string;
  mode: 'full' | 'checksum';
  objectsPerUser: number;
  /** The generation whose staging is verified (entries the pass carried unchanged are skipped). */
  generation: number;
  /** Re-copies of one object before the user fails. */
  maxRecopies?: number;
}

export interface VerifyUserResult {
  verified: number;
  verifiedBytes: number;
  recopied: number;
  transferredObjects: number;
  transferredBytes: number;
}

interface VerifyCheckpoint {
  /** Staging pages fully verified so far (in key order of their names). */
  pagesDone: number;
  result: VerifyUserResult;
}

const b64ToHex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

/**
 * ETag and size of every key the target lists after `startAfter` up to and including `last` (one
 * listing call per 1,000 keys).
 */
async function listRange(target: Site, prefix: string, startAfter: string | undefined, last: string, signal?: AbortSignal): Promise<Map<string, { etag: string; size: number }>> {
  const found = new Map<string, { etag: string; size: number }>();
  let after = startAfter;
  for (;;) {
    let r;
    try {
      r = await listObjectsPage(target, { Prefix: prefix, StartAfter: after, MaxKeys: 1000 }, signal);
    } catch (err) {
      throw describeS3Error(err, { site: target.name, bucket: target.bucket, key: prefix, action: 'ListObjectsV2 (verify)' });
    }
    const items = r.Contents ?? [];
    for (const o of items) if (compareKeys(o.Key!, last) <= 0) found.set(o.Key!, { etag: stripQuotes(o.ETag), size: o.Size ?? 0 });
    const end = items.at(-1)?.Key;
    if (!r.IsTruncated || end === undefined || compareKeys(end, last) >= 0) return found;
    after = end;
  }
}

export function createVerifyActivities(deps: ActivityDeps) {
  /**
   * Checks every object the copy recorded: mode `full` re-reads the target and recomputes SHA-256;
   * mode `checksum` compares the checksum the target server stored. A mismatch re-copies the object
   * (only over the ETag this migration wrote) up to `maxRecopies` times; if it persists the user fails
   * with a non-retryable VerifyMismatch naming the key. A read that fails for any other reason than the
   * object having changed (access denied, timeout, 5xx) is an error, never a mismatch: it is thrown
   * (transient: retried; permanent: the user fails naming site and key) and nothing is re-copied.
   * Idempotent; resumes at the page in its heartbeat.
   */
  function verifyUserObjects(input: VerifyUserInput, held?: StagingPage[]): Promise<VerifyUserResult> {
    return runActivity(async ({ ctx, resumed: prior, signal, checkpointWith, beat }) => {
      const target = targetSite(deps, input.targetSite);
      const maxRecopies = input.maxRecopies ?? 3;
      const resumed = prior as VerifyCheckpoint | undefined;
      const result: VerifyUserResult = resumed?.result ?? { verified: 0, verifiedBytes: 0, recopied: 0, transferredObjects: 0, transferredBytes: 0 };
      const limit = pLimit(input.objectsPerUser);

      /** The target's listing of the page being verified (mode `checksum`): the fast path for most objects. */
      let listed: Map<string, { etag: string; size: number }> | undefined;

      const check = async (e: StagedEntry, full = input.mode === 'full'): Promise<string | undefined> => {
        if (full) {
          // The read is pinned to the ETag the copy recorded, so it reads exactly that object or fails.
          // Only "the object changed or is gone" (412/404) can be a mismatch, and a HEAD says which; any
          // other read error (access denied, a timeout, a reset) says nothing about the bytes, so it is
          // thrown: transient ones retry the activity, permanent ones fail the user. Never a re-copy.
          const h = await inObjectSlot(deps, () => hashObject(target, e.key, e.targetEtag, signal, deps)).catch((err: unknown) => {
            if (err instanceof SourceChangedError) return undefined;
            throw err;
          });
          if (!h) {
            const head = await headObject(target, e.key, signal);
            if (!head) return 'missing from the target';
            if (head.etag !== e.targetEtag) return `target ETag is ${head.etag}, expected ${e.targetEtag}`;
            return 'changed while being read';
          }
          if (h.size !== e.size) return `size ${h.size}, expected ${e.size}`;
          if (h.sha256 !== e.sha256) return `SHA-256 ${h.sha256}, expected ${e.sha256}`;
          return undefined;
        }
        // Fast path: the target lists the very object the copy wrote (same ETag and size), and the target
        // server itself confirmed this SHA-256 (echoed at write time, or stored when the copy found it).
        // Anything else, including a multipart object, is checked with a HEAD of its stored checksum.
        const l = listed?.get(e.key);
        if (l && l.etag === e.targetEtag && l.size === e.size && e.targetChecksum === Buffer.from(e.sha256, 'hex').toString('base64')) return undefined;
        const head = await headObject(target, e.key, signal);
        if (!head) return 'missing from the target';
        if (head.etag !== e.targetEtag) return `target ETag is ${head.etag}, expected ${e.targetEtag}`;
        if (head.size !== e.size) return `size ${head.size}, expected ${e.size}`;
        if (head.metadata[META.sha256] !== e.sha256) return `recorded SHA-256 ${head.metadata[META.sha256]}, expected ${e.sha256}`;
        const stored = head.checksumSha256;
        // The copy knew the target would store none (a multipart object above the site's copyObjectMaxBytes
        // on a store whose UploadPartCopy reports no usable checksum): its bytes are read instead.
        if (!stored && !e.targetChecksum) return check(e, true);
        if (!stored) return 'the target stores no SHA-256 checksum (use verify mode "full" with this site)';
        const expected = e.targetChecksum || Buffer.from(e.sha256, 'hex').toString('base64');
        if (stored !== expected && !(stored.indexOf('-') < 0 && b64ToHex(stored) === e.sha256)) return `stored checksum ${stored}, expected ${expected}`;
        return undefined;
      };

      let progress: VerifyCheckpoint = { pagesDone: resumed?.pagesDone ?? 0, result: { ...result } };
      checkpointWith(() => progress);
      const pages = await passPages(target, input.migrationId, input.userId, input.generation, signal, held);
      // The next page's staging record and target listing are read while this page's objects are checked.
      const load = (i: number) => {
        const p = (async () => {
          const staging = await pages[i]!.read();
          const lastKey = staging.entries.at(-1)?.key;
          const l = input.mode === 'checksum' && input.prefix !== undefined && lastKey !== undefined
            ? await listRange(target, input.prefix, staging.cursor, lastKey, signal)
            : undefined;
          return { staging, listed: l };
        })();
        p.catch(() => undefined); // awaited in page order
        return p;
      };
      const first = resumed?.pagesDone ?? 0;
      let next = first < pages.length ? load(first) : undefined;
      for (let i = first; i < pages.length; i++) {
        const loaded = await next!;
        next = i + 1 < pages.length ? load(i + 1) : undefined;
        const staging = loaded.staging;
        listed = loaded.listed;
        // A retried attempt redoes this whole page, so heartbeats carry the totals as of its start.
        const atPageStart = { ...result };
        progress = { pagesDone: i, result: atPageStart };
        let changed = false;
        await Promise.all(
          staging.entries.map((e, idx) =>
            limit(async () => {
              // Carried unchanged from the previous generation: verified then, and the pass's listing showed
              // the same ETag and size in the target and the same ETags in the sources. No request.
              if (e.carried) return;
              let problem = await check(e);
              for (let n = 0; problem && n < maxRecopies; n++) {
                ctx.log.warn('verify mismatch; re-copying', { key: e.key, problem, attempt: n + 1 });
                const head = await headObject(target, e.key, signal);
                if (head && head.metadata[META.migration] !== input.migrationId) {
                  break; // someone else's object now: never overwritten
                }
                const out = await inObjectSlot(deps, () => copyObject({
                  source: site(deps, e.sourceSite), target,
                  object: { site: e.sourceSite, key: e.key, etag: e.sourceEtag, size: e.size, lastModified: e.sourceLastModified },
                  migrationId: input.migrationId, overwriteEtag: head?.etag, settings: deps.copy, budget: deps.budget, hasher: deps.hasher, signal,
                })).catch((err) => {
                  if (err instanceof SourceChangedError) {
                    throw ApplicationFailure.create({
                      type: 'VerifyMismatch',
                      nonRetryable: true,
                      message: `user ${input.userId}: object ${JSON.stringify(e.key)} failed verification (${problem}) and its source at site ${e.sourceSite} changed since it was copied; run \`clover retry\``,
                    });
                  }
                  throw err;
                });
                result.recopied++;
                result.transferredObjects++;
                result.transferredBytes += out.size;
                staging.entries[idx] = { ...e, sha256: out.sha256, targetEtag: out.targetEtag, targetChecksum: out.targetChecksum, outcome: 'copied' };
                e = staging.entries[idx];
                changed = true;
                problem = await check(e);
              }
              if (problem) {
                throw ApplicationFailure.create({
                  type: 'VerifyMismatch',
                  nonRetryable: true,
                  message: `user ${input.userId}: object ${JSON.stringify(e.key)} at site ${target.name} failed verification after ${maxRecopies} re-copies: ${problem}`,
                });
              }
              result.verified++;
              result.verifiedBytes += e.size;
              beat();
            }),
          ),
        );
        // A held page was changed in place, and the commit reads it from there.
        if (changed && !held) await writeStaging(target, input.migrationId, input.userId, staging, signal);
        progress = { pagesDone: i + 1, result: { ...result } };
        beat();
      }
      return result;
    });
  }
  return { verifyUserObjects };
}
