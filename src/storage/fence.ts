import { rollbackFenceKey } from '../domain/layout';
import type { Site } from './clients';
import { StorageError } from './errors';
import { putJson } from './json-records';
import { headObject } from './object-meta';

/** Sets the user's rollback fence in `target` (idempotent): from now on no source deletion of the user starts a delete. */
export async function raiseRollbackFence(target: Site, migrationId: string, userId: string, signal?: AbortSignal): Promise<void> {
  await putJson(target, rollbackFenceKey(migrationId, userId), { migrationId, userId, raisedAt: new Date().toISOString() }, 'a rollback fence', { signal });
}

/** Thrown by a source deletion that finds the user's rollback fence up: it stops before its next delete. */
export class FencedError extends StorageError {
  constructor(migrationId: string, userId: string) {
    super(`user ${userId} of migration ${migrationId} is being rolled back: source deletion stopped before its next delete`, 'RolledBack', true);
  }
}

/**
 * A check of the user's rollback fence for a run of deletes: `assertDown()` throws FencedError once the
 * fence is up, looking at storage at most every `everyMs` (a rollback waits far longer than that for the
 * deletion's workflow to close before it touches anything).
 */
export function rollbackFenceCheck(target: Site, migrationId: string, userId: string, signal?: AbortSignal, everyMs = 1000) {
  let checkedAt = 0;
  let pending: Promise<boolean> | undefined;
  return async function assertDown(): Promise<void> {
    if (!pending || Date.now() - checkedAt >= everyMs) {
      checkedAt = Date.now();
      pending = headObject(target, rollbackFenceKey(migrationId, userId), signal).then((h) => h !== undefined);
    }
    if (await pending) throw new FencedError(migrationId, userId);
  };
}
