/**
 * Where Clover keeps its own records in a target site's bucket. Everything lives under `_clover/`,
 * which a plan's userPrefix may not use, so records never mix with user data.
 */
export const CONTROL_ROOT = '_clover/';

export function migrationPrefix(migrationId: string): string {
  return `${CONTROL_ROOT}migrations/${migrationId}/`;
}

/** The normalised user list `clover start` uploads (JSON lines), read a page at a time by the workflow. */
export function usersListKey(migrationId: string): string {
  return `${migrationPrefix(migrationId)}users.jsonl`;
}

/** One staging record per listing page of a user's copy, before the manifest is committed. */
export function stagingPrefix(migrationId: string, userId: string): string {
  return `${migrationPrefix(migrationId)}staging/${userId}/`;
}

export function stagingKey(migrationId: string, userId: string, page: number): string {
  return `${stagingPrefix(migrationId, userId)}${String(page).padStart(8, '0')}.json`;
}

export function manifestsPrefix(migrationId: string): string {
  return `${migrationPrefix(migrationId)}manifests/`;
}

/** The user's committed manifest: written last; its presence means the user is migrated and verified. */
export function manifestKey(migrationId: string, userId: string): string {
  return `${manifestsPrefix(migrationId)}${userId}.json`;
}

/**
 * Written by a rollback before it touches a user, and checked by that user's source deletion before it
 * deletes: the two destructive steps of one user never interleave.
 */
export function rollbackFenceKey(migrationId: string, userId: string): string {
  return `${migrationPrefix(migrationId)}rollback-fence/${userId}.json`;
}

/**
 * Progress records of a destructive step (`op`: `dispose` or `rollback`) of one user and manifest
 * generation (`manifestGeneration`): one per batch, written before the batch's first delete or restore
 * is issued and again with its outcomes after.
 */
export function progressPrefix(migrationId: string, userId: string, op: string, generation: string): string {
  return `${migrationPrefix(migrationId)}progress/${userId}/${op}/${generation}/`;
}

export function userPrefixFor(template: string, userId: string): string {
  return template.split('{userId}').join(userId);
}
