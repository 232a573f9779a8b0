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

const pad = (n: number) => String(n).padStart(8, '0');

/**
 * One staging record per listing page of a user's pass, before the pass's manifest generation is
 * committed. Without `generation`: every pass's staging of the user (removed once a generation commits).
 */
export function stagingPrefix(migrationId: string, userId: string, generation?: number): string {
  return `${migrationPrefix(migrationId)}staging/${userId}/${generation === undefined ? '' : `${pad(generation)}/`}`;
}

export function stagingKey(migrationId: string, userId: string, generation: number, page: number): string {
  return `${stagingPrefix(migrationId, userId, generation)}${pad(page)}.json`;
}

export function manifestsPrefix(migrationId: string): string {
  return `${migrationPrefix(migrationId)}manifests/`;
}

/**
 * The user's newest committed manifest generation (a copy of it that names its generation): written
 * last, conditionally on the one it replaces; its presence means the user's first pass is migrated and verified.
 */
export function manifestKey(migrationId: string, userId: string): string {
  return `${manifestsPrefix(migrationId)}${userId}.json`;
}

/** Every generation of the user's manifest, write-once: `manifests/<userId>/<generation>.json`. */
export function manifestGenerationKey(migrationId: string, userId: string, generation: number): string {
  return `${manifestsPrefix(migrationId)}${userId}/${pad(generation)}.json`;
}

/** True for a key naming a newest-generation manifest (`manifests/<userId>.json`), not one of the kept generations. */
export function isCurrentManifestKey(migrationId: string, key: string): boolean {
  const rest = key.slice(manifestsPrefix(migrationId).length);
  return key.startsWith(manifestsPrefix(migrationId)) && !rest.includes('/') && rest.endsWith('.json');
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
