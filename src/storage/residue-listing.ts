import type { ListedObject } from '../domain/residue';
import type { Site } from './clients';
import { forEachListed } from './listing';
import { stripQuotes } from './object-meta';

/**
 * Every object under `prefix` in `site`, with its ETag, page by page (`onObject` per object, in
 * listing order): the residue check after a cut-over. `what` names the listing in errors.
 */
export function forEachObject(site: Site, prefix: string, what: string, onObject: (o: ListedObject) => void, signal?: AbortSignal): Promise<void> {
  return forEachListed(site, prefix, what, (o) => onObject({ key: o.Key!, site: site.name, etag: stripQuotes(o.ETag), size: o.Size ?? 0 }), signal);
}
