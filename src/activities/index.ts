import { createArchiveActivities } from './archive';
import { createCommitActivities } from './commit';
import { createCopyActivities } from './copy';
import { createEvidenceActivities } from './evidence';
import { createFenceActivities } from './fence';
import type { ActivityDeps } from './deps';
import { createUserActivities } from './users';
import { createVerifyActivities } from './verify';
import { createLifecycleActivities } from './lifecycle';
import { createRollbackActivities } from './rollback';
import { createSmallUserActivities } from './small-user';

export type { ActivityDeps } from './deps';

/** Every activity the worker registers, built once from injected dependencies. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createUserActivities(deps),
    ...createCopyActivities(deps),
    ...createVerifyActivities(deps),
    ...createCommitActivities(deps),
    ...createLifecycleActivities(deps),
    ...createRollbackActivities(deps),
    ...createFenceActivities(deps),
    ...createEvidenceActivities(deps),
    ...createArchiveActivities(deps),
    ...createSmallUserActivities(deps),
  };
}

export type CloverActivities = ReturnType<typeof createActivities>;
