import { stagingKey, stagingPrefix } from '../domain/layout';
import type { ConflictRecord, ManifestEntry } from '../domain/manifest';
import type { Site } from './clients';
import { getJson, putJson } from './json-records';
import { listAllKeys } from './listing';

/** An entry as the copy staged it: the manifest entry plus the SHA-256 checksum the target reported. */
export type StagedEntry = ManifestEntry & { targetChecksum: string };

/** One listing page of a user's copy, as stored under the staging prefix until the manifest is committed. */
export interface StagingPage {
  page: number;
  cursor?: string;
  nextCursor?: string;
  entries: StagedEntry[];
  conflicts: ConflictRecord[];
}

/** Writes page `staging.page` of the user's staging records; a redone page overwrites its own record. */
export function writeStaging(target: Site, migrationId: string, userId: string, staging: StagingPage, signal?: AbortSignal): Promise<void> {
  return putJson(target, stagingKey(migrationId, userId, staging.page), staging, 'a staging record', { signal });
}

/** The keys of the user's staging records, in page order. */
export async function listStagingPages(target: Site, migrationId: string, userId: string, signal?: AbortSignal): Promise<string[]> {
  return (await listAllKeys(target, stagingPrefix(migrationId, userId), 'listing staging records', signal)).sort();
}

export async function readStaging(target: Site, key: string, signal?: AbortSignal): Promise<StagingPage> {
  const page = await getJson<StagingPage>(target, key, 'a staging record', signal);
  if (!page) throw new Error(`staging record ${key} at site ${target.name} vanished while being read`);
  return page;
}
