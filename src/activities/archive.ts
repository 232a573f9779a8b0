import { ApplicationFailure } from '@temporalio/common';
import type { Tier } from '@aws-sdk/client-s3';
import { archivedLine } from '../domain/versions';
import { listArchived, requestRestore, restoreStatus, type ArchivedObject } from '../storage/archive';
import { site, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

export interface PrepareArchivedInput {
  userId: string;
  sources: string[];
  prefix: string;
  /** The plan's `restoreArchived`; absent: an archived object fails the user. */
  restore?: { days: number; tier: string };
}

export interface PrepareArchivedResult {
  /** Archived objects under the user's prefix. */
  archived: number;
  /** Of those, restores still running (the workflow waits on a durable timer and calls again). */
  pending: number;
}

/** Lines a failure message carries at most (the count names the rest). */
export const ARCHIVED_LINES = 20;

export function createArchiveActivities(deps: ActivityDeps) {
  /**
   * Before a user's first pass: its archived source objects (GLACIER, DEEP_ARCHIVE: unreadable until
   * restored). Without `restore` the user fails at once (permanent `ArchivedObjects`, one
   * `ARCHIVED site S key K (CLASS): …` line per key). With it, every archived object's HEAD is read:
   * no restore asked yet → RestoreObject; `ongoing-request="true"` → still pending; `"false"` → ready.
   * Idempotent: calling again only asks for what was not asked. Returns how many are still pending.
   */
  function prepareArchived(input: PrepareArchivedInput): Promise<PrepareArchivedResult> {
    return runActivity(async ({ signal, beat }) => {
      const archived: ArchivedObject[] = [];
      for (const name of input.sources) {
        archived.push(...await listArchived(site(deps, name), input.prefix, signal));
        beat();
      }
      if (archived.length === 0) return { archived: 0, pending: 0 };
      if (!input.restore) {
        const lines = archived.slice(0, ARCHIVED_LINES).map((o) => archivedLine(o.site, o.key, o.storageClass));
        const more = archived.length > ARCHIVED_LINES ? `\n... and ${archived.length - ARCHIVED_LINES} more archived object(s)` : '';
        throw ApplicationFailure.create({ type: 'ArchivedObjects', nonRetryable: true, message: `${lines.join('\n')}${more}` });
      }
      let pending = 0;
      for (const o of archived) {
        const src = site(deps, o.site);
        const state = await restoreStatus(src, o.key, signal);
        if (state === 'none') await requestRestore(src, o.key, input.restore.days, input.restore.tier as Tier, signal);
        if (state !== 'done') pending++;
        beat();
      }
      return { archived: archived.length, pending };
    });
  }
  return { prepareArchived };
}
