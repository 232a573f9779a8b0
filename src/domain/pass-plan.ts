/**
 * Plans one listing page of a pass (the first pass or a delta pass): given what the sources list, what
 * the target lists and what the previous manifest generation recorded for the same key range, what to
 * do with each key. Pure: no S3, no Temporal; the copy activity executes the plan.
 *
 * The rules (an EU object belongs to the migration whose manifest lists it):
 * - a key no generation recorded is copied: straight to a create-only write when the target lists
 *   nothing there, otherwise after a look at what the target holds (`place`, expect `absent`/`unknown`);
 * - a recorded key whose sources and EU copy are as recorded costs nothing (`carry`);
 * - a recorded key whose sources changed is copied over the EU copy only while that copy still has the
 *   ETag the manifest recorded (`place`, expect that ETag: a conditional write);
 * - a recorded key that no source lists any more was erased by the application: its EU copy is deleted
 *   only while it still has the recorded ETag, and the erasure is recorded (`erase`);
 * - a recorded key whose EU copy has another ETag now was changed by someone else: it is reported and
 *   neither overwritten nor deleted (`target-changed`);
 * - a recorded key whose EU copy is gone is copied again (`place`, expect `absent`);
 * - a key only the target holds, that no generation recorded, is looked at (`orphan`): a copy this
 *   migration wrote in an interrupted pass whose source was erased since is an erasure too; anyone
 *   else's object is left alone.
 * A copy found changed (`target-changed`) is looked at before it is reported: when this migration wrote
 * it (an interrupted attempt of this very pass), it is still Clover's.
 */
import { compareKeys, entrySites, type ManifestEntry } from './manifest';

/** A source object as listed. */
export interface Listed {
  site: string;
  key: string;
  etag: string;
  size: number;
  lastModified: string;
  /** Set only for an archive class (GLACIER, DEEP_ARCHIVE): the object cannot be read without a restore. */
  storageClass?: string;
}

/** What the target lists at a key. */
export interface TargetListed {
  etag: string;
  size: number;
}

export type KeyPlan =
  | { kind: 'carry'; key: string; entry: ManifestEntry }
  | {
      kind: 'place';
      key: string;
      /** Every source listing the key (several: a duplicate or a conflict, resolved by the executor). */
      candidates: Listed[];
      /** What the write may replace: nothing (`absent`), what a look at the target decides (`unknown`), or this ETag only. */
      expect: { absent: true } | { unknown: true } | { etag: string };
      /** The previous generation's entry, when there is one (a changed or re-copied key). */
      previous?: ManifestEntry;
    }
  | { kind: 'erase'; key: string; entry: ManifestEntry; /** The EU copy is already gone: nothing to delete. */ targetGone: boolean }
  | { kind: 'target-changed'; key: string; entry: ManifestEntry; found: TargetListed; /** What the sources list now (none: erased as well). */ candidates: Listed[] }
  | { kind: 'orphan'; key: string; found: TargetListed };

const pairKey = (p: { site: string; etag: string }) => `${p.site}\u0000${p.etag}`;

/** The source (site, ETag) pairs a manifest entry accounts for: its own, its duplicates and the versions it superseded. */
function recordedPairs(e: ManifestEntry): Set<string> {
  return new Set([...entrySites(e), ...(e.superseded ?? [])].map(pairKey));
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/**
 * The plan of every key in the page: each key some source lists, the target lists or the previous
 * generation recorded, in S3's key order. The caller gives the three views of the same key range.
 */
export function planPage(
  sources: ReadonlyMap<string, readonly Listed[]>,
  target: ReadonlyMap<string, TargetListed>,
  previous: ReadonlyMap<string, ManifestEntry>,
): KeyPlan[] {
  const keys = new Set<string>([...sources.keys(), ...previous.keys(), ...target.keys()]);
  const plans: KeyPlan[] = [];
  for (const key of [...keys].sort(compareKeys)) {
    const candidates = [...(sources.get(key) ?? [])];
    const entry = previous.get(key);
    const found = target.get(key);
    if (!entry) {
      if (candidates.length > 0) plans.push({ kind: 'place', key, candidates, expect: found ? { unknown: true } : { absent: true } });
      else if (found) plans.push({ kind: 'orphan', key, found });
      continue;
    }
    if (found && found.etag !== entry.targetEtag) {
      plans.push({ kind: 'target-changed', key, entry, found, candidates });
      continue;
    }
    if (candidates.length === 0) {
      plans.push({ kind: 'erase', key, entry, targetGone: !found });
      continue;
    }
    if (!found) {
      plans.push({ kind: 'place', key, candidates, expect: { absent: true }, previous: entry });
      continue;
    }
    const unchanged = sameSet(new Set(candidates.map(pairKey)), recordedPairs(entry));
    plans.push(unchanged ? { kind: 'carry', key, entry } : { kind: 'place', key, candidates, expect: { etag: entry.targetEtag }, previous: entry });
  }
  return plans;
}

/**
 * The previous generation's entries in the page's key range: after `cursor` (exclusive) up to `upTo`
 * (inclusive; the end of the listing when undefined). `entries` are in key order.
 */
export function entriesInRange(entries: readonly ManifestEntry[], cursor: string | undefined, upTo: string | undefined): Map<string, ManifestEntry> {
  const out = new Map<string, ManifestEntry>();
  for (const e of entries) {
    if (cursor !== undefined && compareKeys(e.key, cursor) <= 0) continue;
    if (upTo !== undefined && compareKeys(e.key, upTo) > 0) break;
    out.set(e.key, e);
  }
  return out;
}
