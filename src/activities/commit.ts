import { buildManifest, type ConflictRecord, type ManifestEntry } from '../domain/manifest';
import { putManifest } from '../storage/manifests';
import { listStagingPages, readStaging } from '../storage/staging';
import { targetSite, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

export interface CommitManifestInput {
  migrationId: string;
  userId: string;
  targetSite: string;
  userPrefix: string;
}

export interface CommitManifestResult {
  manifestKey: string;
  digest: string;
  objects: number;
  bytes: number;
  copied: number;
  skipped: number;
  conflicts: number;
}

export function createCommitActivities(deps: ActivityDeps) {
  /**
   * Writes the user's manifest into the target site from its verified staging records: one entry per
   * object plus a digest. Written last, like a pointer file: its presence means the user is migrated
   * and verified. Refuses (ManifestInvalid) staging that lists a key twice. Idempotent: the same
   * staging records give the same entries.
   */
  function commitManifest(input: CommitManifestInput): Promise<CommitManifestResult> {
    // Heartbeats (from the scaffold) let a killed worker be noticed within the heartbeat timeout.
    return runActivity(async ({ signal }) => {
      const target = targetSite(deps, input.targetSite);
      const entries: ManifestEntry[] = [];
      const conflicts: ConflictRecord[] = [];
      for (const key of await listStagingPages(target, input.migrationId, input.userId, signal)) {
        const page = await readStaging(target, key, signal);
        for (const { targetChecksum: _c, ...e } of page.entries) entries.push(e);
        conflicts.push(...page.conflicts);
      }
      const manifest = buildManifest({
        migrationId: input.migrationId, userId: input.userId, targetSite: target.name, bucket: target.bucket,
        userPrefix: input.userPrefix, committedAt: new Date().toISOString(), entries, conflicts,
      });
      const key = await putManifest(target, manifest, signal);
      const copied = entries.filter((e) => e.outcome === 'copied').length;
      return {
        manifestKey: key, digest: manifest.digest, objects: manifest.objectCount, bytes: manifest.totalBytes,
        copied, skipped: entries.length - copied, conflicts: conflicts.length,
      };
    });
  }
  return { commitManifest };
}
