import { manifestGenerationKey, manifestKey } from '../domain/layout';
import { ManifestConflictError, type Manifest } from '../domain/manifest';
import type { Site } from './clients';
import { getJson, getJsonRecord, putJson, type Retention } from './json-records';

/** The user's newest committed manifest generation, or undefined when none was committed. */
export async function getManifest(target: Site, migrationId: string, userId: string, signal?: AbortSignal): Promise<Manifest | undefined> {
  return (await getCurrentManifest(target, migrationId, userId, signal))?.manifest;
}

/** The newest generation with the ETag of its copy at manifestKey (what the next commit is conditional on). */
export async function getCurrentManifest(target: Site, migrationId: string, userId: string, signal?: AbortSignal): Promise<{ manifest: Manifest; etag: string } | undefined> {
  const r = await getJsonRecord<Manifest>(target, manifestKey(migrationId, userId), 'the manifest', signal);
  return r && { manifest: r.value, etag: r.etag };
}

/** One kept generation of the user's manifest, or undefined. */
export function getManifestGeneration(target: Site, migrationId: string, userId: string, generation: number, signal?: AbortSignal): Promise<Manifest | undefined> {
  return getJson<Manifest>(target, manifestGenerationKey(migrationId, userId, generation), 'a manifest generation', signal);
}

/**
 * Commits `m` as the user's next generation, never overwriting another writer's:
 * 1. the generation is written once at manifestGenerationKey (If-None-Match). When that key exists,
 *    it is this writer's own earlier attempt (same `writtenBy`): that stored generation is the one
 *    committed; anyone else's: a ManifestConflictError;
 * 2. the newest-generation copy at manifestKey is replaced only while it is still `replaces` (If-Match
 *    on its ETag; If-None-Match for generation 1). When it moved on, and not to this very generation,
 *    a ManifestConflictError.
 * Returns the generation as stored and the key of the newest copy.
 */
export async function commitManifestGeneration(
  target: Site, m: Manifest, replaces: { etag: string } | undefined, signal?: AbortSignal,
  /** The plan's evidenceRetention: the generation (write-once) is written under S3 Object Lock. */
  retention?: Retention,
): Promise<{ manifest: Manifest; key: string }> {
  const genKey = manifestGenerationKey(m.migrationId, m.userId, m.generation);
  const who = `user ${m.userId}: manifest generation ${m.generation}`;
  let stored = m;
  const wrote = await putJson(target, genKey, m, 'a manifest generation', { signal, pretty: true, ifNoneMatch: '*', metadata: { 'clover-manifest-digest': m.digest }, retention });
  if (wrote === 'precondition-failed') {
    const existing = await getManifestGeneration(target, m.migrationId, m.userId, m.generation, signal);
    if (!existing || existing.writtenBy === undefined || existing.writtenBy !== m.writtenBy) {
      throw new ManifestConflictError(`${who} was already committed by another writer (${existing?.writtenBy ?? 'unknown'}); nothing was overwritten. Run the step again: it starts from the newest generation`);
    }
    stored = existing; // this writer's own earlier attempt
  }
  const key = manifestKey(m.migrationId, m.userId);
  const put = await putJson(target, key, stored, 'the manifest', {
    signal, pretty: true, metadata: { 'clover-manifest-digest': stored.digest },
    ...(replaces ? { ifMatch: replaces.etag } : { ifNoneMatch: '*' as const }),
  });
  if (put === 'precondition-failed') {
    const now = await getManifest(target, m.migrationId, m.userId, signal);
    if (now?.generation !== stored.generation || now.digest !== stored.digest) {
      throw new ManifestConflictError(
        `${who}: the newest manifest changed meanwhile (now generation ${now?.generation ?? 'none'}); nothing was overwritten. Run the step again: it starts from the newest generation`,
      );
    }
  }
  return { manifest: stored, key };
}
