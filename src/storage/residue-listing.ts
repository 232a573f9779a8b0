import type { ListedObject } from '../domain/residue';
import type { Site } from './clients';
import { forEachListed } from './listing';
import { stripQuotes } from './object-meta';
import { forEachVersion, listsVersions } from './versions';

/**
 * Every object under `prefix` in `site`, with its ETag, page by page (`onObject` per object, in
 * listing order): current versions only. `what` names the listing in errors.
 */
export function forEachObject(site: Site, prefix: string, what: string, onObject: (o: ListedObject) => void, signal?: AbortSignal): Promise<void> {
  return forEachListed(site, prefix, what, (o) => onObject({ key: o.Key!, site: site.name, etag: stripQuotes(o.ETag), size: o.Size ?? 0 }), signal);
}

/**
 * Every object a source holds under `prefix`: the residue check after a cut-over and `verify`. In a
 * versioned bucket every version holding data is one object (noncurrent ones and those of erased keys
 * included: they are data outside the EEA); delete markers hold none and are not listed.
 */
export async function forEachSourceObject(site: Site, prefix: string, what: string, onObject: (o: ListedObject) => void, signal?: AbortSignal): Promise<void> {
  if (!(await listsVersions(site, signal))) return forEachObject(site, prefix, what, onObject, signal);
  let key: string | undefined;
  let erased = false;
  await forEachVersion(site, prefix, what, (v) => {
    if (v.key !== key) {
      key = v.key;
      erased = v.latest && v.deleteMarker;
    }
    if (v.deleteMarker) return;
    onObject({ key: v.key, site: site.name, etag: v.etag, versionId: v.versionId, ...(v.latest ? {} : { noncurrent: true }), ...(erased ? { erased: true } : {}) });
  }, signal);
}
