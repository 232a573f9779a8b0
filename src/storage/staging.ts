import { stagingKey, stagingPrefix } from '../domain/layout';
import type { ConflictRecord, ErasureRecord, ManifestEntry } from '../domain/manifest';
import { deleteRecord } from './delete';
import type { Site } from './clients';
import { getJson, putJson } from './json-records';
import { listAllKeys } from './listing';

/**
 * An entry as the pass staged it: the manifest entry plus the SHA-256 checksum the target reported
 * (empty for a carried entry), and `carried` when the pass took it unchanged from the previous
 * generation (no request was sent for it; verify skips it).
 */
export type StagedEntry = ManifestEntry & { targetChecksum: string; carried?: boolean; /** Written over an older EU copy of this migration. */ overwritten?: boolean };

/** One listing page of a user's pass, as stored under the staging prefix until its generation is committed. */
export interface StagingPage {
  /** The generation the pass builds. */
  generation: number;
  page: number;
  cursor?: string;
  nextCursor?: string;
  entries: StagedEntry[];
  conflicts: ConflictRecord[];
  /** Erasures this page carried over (keys no source holds any more whose EU copy was removed). */
  erasures: ErasureRecord[];
}

/** Writes page `staging.page` of the pass's staging records; a redone page overwrites its own record. */
export async function writeStaging(target: Site, migrationId: string, userId: string, staging: StagingPage, signal?: AbortSignal): Promise<void> {
  await putJson(target, stagingKey(migrationId, userId, staging.generation, staging.page), staging, 'a staging record', { signal });
}

/** The keys of the pass's staging records (all of the user's passes without `generation`), in page order. */
export async function listStagingPages(target: Site, migrationId: string, userId: string, generation?: number, signal?: AbortSignal): Promise<string[]> {
  return (await listAllKeys(target, stagingPrefix(migrationId, userId, generation), 'listing staging records', signal)).sort();
}

/**
 * Removes staging records: of the pass `generation` from page `fromPage` on (a pass redoing a page
 * drops whatever a crashed attempt staged after it), or with `fromPage` undefined every pass's records
 * of the user up to and including `generation` (once that generation is committed).
 */
export async function removeStaging(target: Site, migrationId: string, userId: string, generation: number, fromPage: number | undefined, signal?: AbortSignal): Promise<number> {
  const keys = await listStagingPages(target, migrationId, userId, undefined, signal);
  const doomed = keys.filter((k) => {
    const [gen, page] = k.slice(stagingPrefix(migrationId, userId).length).replace(/\.json$/, '').split('/').map(Number);
    if (gen === undefined || page === undefined || Number.isNaN(gen) || Number.isNaN(page)) return false;
    return fromPage === undefined ? gen <= generation : gen === generation && page >= fromPage;
  });
  for (const k of doomed) await deleteRecord(target, k, signal);
  return doomed.length;
}

/**
 * The pass's pages in order, each with its name (for messages) and how to read it: the staged records of
 * `generation`, or `held`, the pages a first pass kept in memory instead (activities/small-user.ts).
 */
export async function passPages(target: Site, migrationId: string, userId: string, generation: number, signal: AbortSignal, held?: StagingPage[]): Promise<{ key: string; read: () => Promise<StagingPage> }[]> {
  if (held) return held.map((page) => ({ key: `page ${page.page} (held in memory)`, read: async () => page }));
  return (await listStagingPages(target, migrationId, userId, generation, signal)).map((key) => ({ key, read: () => readStaging(target, key, signal) }));
}

export async function readStaging(target: Site, key: string, signal?: AbortSignal): Promise<StagingPage> {
  const page = await getJson<StagingPage>(target, key, 'a staging record', signal);
  if (!page) throw new Error(`staging record ${key} at site ${target.name} vanished while being read`);
  return page;
}
