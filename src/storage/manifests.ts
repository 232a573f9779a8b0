import { manifestKey } from '../domain/layout';
import type { Manifest } from '../domain/manifest';
import type { Site } from './clients';
import { getJson, putJson } from './json-records';

/** The user's committed manifest, or undefined when none was committed. */
export function getManifest(target: Site, migrationId: string, userId: string, signal?: AbortSignal): Promise<Manifest | undefined> {
  return getJson<Manifest>(target, manifestKey(migrationId, userId), 'the manifest', signal);
}

/** Writes the manifest (Clover's own record: overwriting it is how it is amended). */
export async function putManifest(target: Site, m: Manifest, signal?: AbortSignal): Promise<string> {
  const key = manifestKey(m.migrationId, m.userId);
  await putJson(target, key, m, 'the manifest', { signal, pretty: true, metadata: { 'clover-manifest-digest': m.digest } });
  return key;
}
