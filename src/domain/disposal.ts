import type { ManifestEntry } from './manifest';

/**
 * One manifest entry's disposal, as its progress record holds it (one per key: the entry's source site
 * and every `alsoAt` duplicate).
 */
export interface DisposalOutcome {
  key: string;
  /** The entry's source site. */
  site: string;
  /** `deleted`: gone from every site of the entry; `kept`: left in at least one site (see `kept`). */
  outcome: 'deleted' | 'kept';
  /**
   * The sites where Clover deleted it, or found it gone after a delete an interrupted run of its own may
   * have issued. Absent in records written before duplicates were deleted: then `outcome: deleted`
   * means the entry's `site`.
   */
  sites?: string[];
  /** Sites where it was already gone before Clover issued any delete of it (erased by the application): not Clover's doing. */
  goneBefore?: string[];
  /** Sites where it was left, with why. */
  kept?: { site: string; reason: string }[];
  /** The first kept reason (records written before per-site reasons have only this). */
  reason?: string;
}

/**
 * The sites where Clover itself deleted the entry's object (what a rollback may restore): from the
 * key's disposal record, or the entry's source site for an old record with no `sites`. A key with no
 * record, or only an interrupted one, gives `undefined`: the caller decides (see rollbackUser).
 */
export function sitesDeletedByClover(o: DisposalOutcome | undefined, e: Pick<ManifestEntry, 'sourceSite'>): string[] | undefined {
  if (!o) return undefined;
  if (o.sites) return o.sites;
  return o.outcome === 'deleted' ? [e.sourceSite] : [];
}

/** Every per-site kept reason of the disposal outcomes (old records: one, at the entry's source site). */
export function keptAtDisposal(outcomes: Iterable<DisposalOutcome>): { key: string; site: string; reason: string }[] {
  const kept: { key: string; site: string; reason: string }[] = [];
  for (const o of outcomes) {
    if (o.kept) for (const k of o.kept) kept.push({ key: o.key, site: k.site, reason: k.reason });
    else if (o.outcome === 'kept') kept.push({ key: o.key, site: o.site, reason: o.reason ?? '' });
  }
  return kept;
}

/** Source objects Clover deleted (or found gone after an interrupted delete of its own), summed over the outcomes. */
export function deletedCount(outcomes: Iterable<DisposalOutcome>): number {
  let n = 0;
  for (const o of outcomes) n += o.sites ? o.sites.length : o.outcome === 'deleted' ? 1 : 0;
  return n;
}
