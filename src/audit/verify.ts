import pLimit from 'p-limit';
import { InputError } from '../config/errors';
import type { Sites } from '../config/sites';
import { manifestsPrefix, usersListKey } from '../domain/layout';
import { manifestDigest, type Manifest } from '../domain/manifest';
import { createSiteClients, destroySiteClients, type SiteClients } from '../storage/clients';
import { StorageError, isNotFound } from '../storage/errors';
import { getJson } from '../storage/json-records';
import { listAllKeys } from '../storage/listing';
import { headObject } from '../storage/object-meta';
import { hashObject } from '../storage/pinned-read';

export interface AuditProblem {
  /**
   * `mismatch`: storage holds something other than the manifest says (bytes, size, a missing object, an
   * altered manifest). `error`: it could not be read (access denied, timeout, 5xx): nothing is known
   * about those bytes, so it is never reported as a mismatch.
   */
  kind: 'mismatch' | 'error';
  site: string;
  manifest: string;
  key?: string;
  problem: string;
}

export interface AuditReport {
  migrationId: string;
  manifests: number;
  users: number;
  objects: number;
  bytes: number;
  objectsChecked: number;
  /** Users whose migration was rolled back: their manifests are reported, their objects not checked. */
  rolledBack: number;
  problems: AuditProblem[];
  ok: boolean;
}

/** True when some site holds the migration's user list (`clover start` writes it before anything else). */
async function userListStored(clients: SiteClients, migrationId: string): Promise<boolean> {
  for (const s of clients.values()) if (await headObject(s, usersListKey(migrationId))) return true;
  return false;
}

/**
 * The auditor's check, from storage alone (no Temporal): reads every committed manifest of the
 * migration in every site, checks its digest, re-reads every listed object and recomputes its SHA-256.
 * An id that no site knows (no manifest, no user list) is bad input (InputError), not a failed audit.
 */
export async function auditMigration(
  sites: Sites, migrationId: string,
  opts: { concurrency?: number; onProgress?: (checked: number) => void; /** Clients to use instead of ones built from `sites` (the caller's: not destroyed here). */ clients?: SiteClients } = {},
): Promise<AuditReport> {
  const clients = opts.clients ?? createSiteClients(sites, { maxSockets: opts.concurrency ?? 16 });
  const limit = pLimit(opts.concurrency ?? 16);
  const report: AuditReport = { migrationId, manifests: 0, users: 0, objects: 0, bytes: 0, objectsChecked: 0, rolledBack: 0, problems: [], ok: false };
  const users = new Set<string>();
  try {
    for (const s of clients.values()) {
      for (const key of await listAllKeys(s, manifestsPrefix(migrationId), 'listing manifests')) {
        report.manifests++;
        let m: Manifest | undefined;
        try {
          m = await getJson<Manifest>(s, key, 'a manifest');
        } catch (err) {
          report.problems.push({ kind: 'error', site: s.name, manifest: key, problem: `unreadable: ${(err as Error).message}` });
          continue;
        }
        if (!m) {
          report.problems.push({ kind: 'mismatch', site: s.name, manifest: key, problem: 'listed, then gone before it could be read' });
          continue;
        }
        if (m.format !== 'clover-manifest/1' || manifestDigest(m) !== m.digest) {
          report.problems.push({ kind: 'mismatch', site: s.name, manifest: key, problem: 'manifest digest does not match its content (the manifest was altered)' });
          continue;
        }
        if (m.targetSite !== s.name || m.migrationId !== migrationId) {
          report.problems.push({ kind: 'mismatch', site: s.name, manifest: key, problem: `manifest names site ${m.targetSite} and migration ${m.migrationId}` });
          continue;
        }
        users.add(m.userId);
        if (m.rolledBack) {
          report.rolledBack++;
          continue;
        }
        report.objects += m.entries.length;
        report.bytes += m.totalBytes;
        await Promise.all(
          m.entries.map((e) =>
            limit(async () => {
              try {
                const h = await hashObject(s, e.key, undefined);
                if (h.size !== e.size) report.problems.push({ kind: 'mismatch', site: s.name, manifest: key, key: e.key, problem: `size ${h.size}, manifest says ${e.size}` });
                else if (h.sha256 !== e.sha256) report.problems.push({ kind: 'mismatch', site: s.name, manifest: key, key: e.key, problem: `SHA-256 ${h.sha256}, manifest says ${e.sha256}` });
              } catch (err) {
                // A missing object is a mismatch (the manifest lists it); any other failed read is an error.
                if (isNotFound(err) || (err instanceof StorageError && err.status === 404 && err.type !== 'NoSuchBucket')) {
                  report.problems.push({ kind: 'mismatch', site: s.name, manifest: key, key: e.key, problem: 'missing: the manifest lists it, the site does not hold it' });
                } else {
                  report.problems.push({ kind: 'error', site: s.name, manifest: key, key: e.key, problem: `could not be read, so it was not checked: ${(err as Error).message}` });
                }
              }
              report.objectsChecked++;
              opts.onProgress?.(report.objectsChecked);
            }),
          ),
        );
      }
    }
    if (report.manifests === 0 && !(await userListStored(clients, migrationId))) {
      throw new InputError(`no migration with id "${migrationId}" in any site of the sites file (no manifest and no user list ${usersListKey(migrationId)}); check the id, or --sites`);
    }
  } finally {
    if (!opts.clients) destroySiteClients(clients);
  }
  report.users = users.size;
  report.ok = report.manifests > 0 && report.problems.length === 0;
  return report;
}
