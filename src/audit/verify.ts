import type { KeyObject } from 'node:crypto';
import pLimit from 'p-limit';
import { InputError } from '../config/errors';
import type { Sites } from '../config/sites';
import { isCurrentManifestKey, manifestGenerationKey, manifestKey, manifestsPrefix, usersListKey } from '../domain/layout';
import { entrySites, manifestDigest, manifestSignatureProblem, type Manifest } from '../domain/manifest';
import { findLedgerSite, manifestHasDigest, manifestReference, misplacedRecordProblem } from '../evidence/bundle';
import { keyIdOf, ledgerHead, ledgerProblems, missingResults, notedHeadProblem, recordedFailures, resultProblems, type LedgerRecord } from '../evidence/ledger';
import { ledgerKey, ledgerPrefix } from '../evidence/storage';
import { residueClassifier } from '../domain/residue';
import { createSiteClients, destroySiteClients, type Site, type SiteClients } from '../storage/clients';
import { StorageError, isNotFound } from '../storage/errors';
import { getJson } from '../storage/json-records';
import { listAllKeys } from '../storage/listing';
import { hashObject } from '../storage/pinned-read';
import { forEachObject, forEachSourceObject } from '../storage/residue-listing';
import { readStoredUsers, residencyFromRead, type FoundObject, type ResidencyReport } from './report';

export interface AuditProblem {
  /**
   * `mismatch`: storage holds something other than the manifest says (bytes, size, a missing object, an
   * altered manifest). `error`: it could not be read (access denied, timeout, 5xx): nothing is known
   * about those bytes, so it is never reported as a mismatch. `incomplete`: a user of the stored user
   * list has no committed manifest and no recorded failure (evidence is missing: a cancelled or not yet
   * migrated user, or a failure that was never recorded). `failed`: a user of the list with no committed
   * manifest and a `user-failed` ledger record (its data did not move; the evidence says why). `unlisted`: an object in the target under a user's prefix
   * that the user's newest manifest generation does not list. With a public key only: `ledger`, the
   * ledger's chain or signatures do not hold, or a record's manifest digest is not the stored
   * generation's; `signature`, a newest manifest generation is unsigned or its signature does not verify.
   */
  kind: 'mismatch' | 'error' | 'residue' | 'incomplete' | 'failed' | 'unlisted' | 'ledger' | 'signature';
  site: string;
  manifest: string;
  key?: string;
  /** The user whose manifest the problem is about (set for `residue`, `incomplete` and `unlisted`). */
  userId?: string;
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
  /** Users cut over (sources deleted, not rolled back): their prefix was listed in every source. */
  cutOver: number;
  /** Objects found in a source under a cut-over user's prefix (each one is a `residue` problem). */
  residue: number;
  /** Users in the stored user list (`users.jsonl`); undefined when no site holds it. */
  listedUsers?: number;
  /** Users of the list with no committed manifest (each one an `incomplete` problem). */
  incomplete: number;
  /** Users of the list with no committed manifest and a recorded failure (each one a `failed` problem). */
  failed: number;
  /** With a public key: the newest record's seq and hash (what an auditor notes, and names next time with `--head`). */
  ledgerHead?: { seq: number; hash: string };
  /** With a public key: NO-RESULT lines, operator commands whose outcome was never recorded (not a failure). */
  warnings?: string[];
  /** Per site and jurisdiction, users and bytes; per user, what is still outside the EEA (`clover report`'s). */
  residency?: ResidencyReport;
  /** Objects in a target under a user's prefix that no manifest lists (each one an `unlisted` problem). */
  unlisted: number;
  /** With a public key: the ledger's records read (undefined: no key given, evidence not checked). */
  ledgerRecords?: number;
  /** With a public key: the newest manifest generations whose signature verifies. */
  signaturesVerified?: number;
  problems: AuditProblem[];
  ok: boolean;
}

/** The migration's ledger as read: its site and every record read, with the key it is stored under. */
interface ReadLedger {
  site: Site;
  stored: { key: string; record: LedgerRecord }[];
}

/** Reads the ledger (found as `evidence export` finds it); a listing or read that fails is an `error` problem. */
async function readLedgerRecords(clients: SiteClients, migrationId: string, report: AuditReport): Promise<ReadLedger | undefined> {
  let found: Awaited<ReturnType<typeof findLedgerSite>>;
  try {
    found = await findLedgerSite(clients, migrationId);
  } catch (err) {
    report.problems.push({ kind: 'error', site: '-', manifest: ledgerPrefix(migrationId), problem: `the ledger could not be listed, so it was not checked: ${(err as Error).message}` });
    return undefined;
  }
  if (!found) return undefined;
  const stored: ReadLedger['stored'] = [];
  for (const key of found.keys) {
    try {
      const record = await getJson<LedgerRecord>(found.site, key, 'a ledger record');
      if (record) stored.push({ key, record });
    } catch (err) {
      report.problems.push({ kind: 'error', site: found.site.name, manifest: key, problem: `a ledger record could not be read: ${(err as Error).message}` });
    }
  }
  return { site: found.site, stored };
}

/**
 * The evidence, online and read-only (with the public key the auditor trusts): the ledger of the
 * migration read in full, each record under its own seq, its chain and signatures (`ledgerProblems`),
 * each operator result naming its command, and each record naming a manifest generation against the
 * stored generation's digest. Problems are `ledger` ones.
 */
async function checkLedger(clients: SiteClients, migrationId: string, publicKey: KeyObject, report: AuditReport, ledger: ReadLedger | undefined, notedHead?: string): Promise<void> {
  const add = (problem: string, manifest = ledgerPrefix(migrationId), site = '-') => report.problems.push({ kind: 'ledger', site, manifest, problem });
  if (!ledger) {
    report.ledgerRecords = 0;
    if (!report.problems.some((p) => p.kind === 'error' && p.manifest === ledgerPrefix(migrationId))) {
      add(`no ledger of migration ${migrationId} in any site (${ledgerPrefix(migrationId)}): nothing vouches for this migration`);
    }
    return;
  }
  const { site } = ledger;
  const records = ledger.stored.map((x) => x.record);
  for (const { key, record } of ledger.stored) {
    const misplaced = misplacedRecordProblem(key, key.slice(ledgerPrefix(migrationId).length), record);
    if (misplaced) add(misplaced, key, site.name);
  }
  report.ledgerRecords = records.length;
  const noted = notedHead === undefined ? undefined : notedHeadProblem(records, notedHead);
  for (const p of [...ledgerProblems(records, migrationId, publicKey), ...resultProblems(records), ...(noted ? [noted] : [])]) add(p, ledgerPrefix(migrationId), site.name);
  report.ledgerHead = ledgerHead(records);
  for (const r of [...records].sort((a, b) => a.seq - b.seq)) {
    if (r.type !== 'user-committed' && r.type !== 'delta-pass') continue;
    const ref = manifestReference(r, migrationId);
    if (!ref) {
      add(`record ${r.seq} (${r.type}) names no manifest generation and digest`, ledgerPrefix(migrationId), site.name);
      continue;
    }
    const key = `${manifestsPrefix(migrationId)}${ref.rel}`;
    const holder = ref.site !== undefined ? clients.get(ref.site) : site;
    if (!holder) {
      report.problems.push({ kind: 'error', site: ref.site ?? '-', manifest: key, problem: `record ${r.seq} (${r.type}) names site ${ref.site ?? '-'}, which is not in the sites file, so its manifest was not checked` });
      continue;
    }
    let stored: unknown;
    try {
      stored = await getJson<unknown>(holder, key, 'a manifest generation');
    } catch (err) {
      report.problems.push({ kind: 'error', site: holder.name, manifest: key, problem: `record ${r.seq} (${r.type}): the manifest generation it names could not be read, so its digest was not checked: ${(err as Error).message}` });
      continue;
    }
    if (stored === undefined) add(`record ${r.seq} (${r.type}) names manifest ${key}, which site ${holder.name} does not hold`, key, holder.name);
    else if (!manifestHasDigest(stored, ref.digest)) add(`record ${r.seq} (${r.type}) names manifest ${key} with digest ${ref.digest}; the stored generation does not hash to it (manifest edited)`, key, holder.name);
  }
}

/** The signature of a newest manifest generation, with the auditor's key (a `signature` problem when it does not hold). */
function checkSignature(s: Site, m: Manifest, key: string, publicKey: KeyObject, report: AuditReport): void {
  const problem = m.signature === undefined
    ? 'unsigned: it carries no signature, so nothing shows the worker holding the evidence key wrote it'
    : manifestSignatureProblem(m, publicKey, keyIdOf(publicKey))?.replace('this worker\'s key', 'the given public key');
  if (problem === undefined) report.signaturesVerified = (report.signaturesVerified ?? 0) + 1;
  else report.problems.push({ kind: 'signature', site: s.name, manifest: key, userId: m.userId, problem });
}

/**
 * One link of the generation chain: generation N's `previousDigest` must be the digest of the kept
 * generation N-1 (which must itself hold). Undefined when it does, or for a first generation.
 */
async function chainProblem(s: Site, m: Manifest): Promise<Pick<AuditProblem, 'kind' | 'problem'> | undefined> {
  if (typeof m.generation !== 'number' || m.generation <= 1) return undefined;
  const prevKey = manifestGenerationKey(m.migrationId, m.userId, m.generation - 1);
  let prev: Manifest | undefined;
  try {
    prev = await getJson<Manifest>(s, prevKey, 'a manifest generation');
  } catch (err) {
    return { kind: 'error', problem: `generation ${m.generation - 1} (${prevKey}) could not be read, so the chain was not checked: ${(err as Error).message}` };
  }
  if (!prev) return { kind: 'mismatch', problem: `generation ${m.generation - 1} is missing (${prevKey}): the chain of generations is broken` };
  if (manifestDigest(prev) !== prev.digest) return { kind: 'mismatch', problem: `generation ${m.generation - 1} (${prevKey}) was altered: its digest does not match its content` };
  if (m.previousDigest !== prev.digest) return { kind: 'mismatch', problem: `generation ${m.generation} names previous digest ${m.previousDigest ?? 'none'}, but generation ${m.generation - 1} has ${prev.digest}` };
  return undefined;
}

/**
 * After a cut-over nothing of the user may be left in a source: lists the user's prefix in every
 * source of the manifest (`m.sources`, else every site its entries name) and reports each object
 * found as a `residue` problem, with why it is there when the manifest knows.
 */
async function checkResidue(clients: SiteClients, m: Manifest, manifest: string, report: AuditReport, listed: Map<string, Map<string, FoundObject[]>>): Promise<void> {
  const sites = m.sources ?? [...new Set(m.entries.flatMap((e) => [...entrySites(e), ...(e.superseded ?? [])].map((p) => p.site)))];
  const classify = residueClassifier(m, m.sourceDisposition?.keptChanged ?? []);
  for (const name of sites) {
    const src = clients.get(name);
    if (!src) {
      report.problems.push({ kind: 'error', site: name, manifest, userId: m.userId, problem: `source site ${name} is not in the sites file, so what user ${m.userId} left there was not checked` });
      continue;
    }
    try {
      const found: FoundObject[] = [];
      await forEachSourceObject(src, m.userPrefix, 'listing a cut-over user\'s prefix in a source', (o) => {
        found.push({ site: name, key: o.key, size: o.size ?? 0 });
        report.residue++;
        report.problems.push({ kind: 'residue', site: name, manifest, key: o.key, userId: m.userId, problem: `still in a source after cut-over; ${classify(o).reason}` });
      });
      // Kept for the residency report, which then does not list this prefix again.
      if (!listed.has(m.userId)) listed.set(m.userId, new Map());
      listed.get(m.userId)!.set(name, found);
    } catch (err) {
      report.problems.push({ kind: 'error', site: name, manifest, userId: m.userId, problem: `the user's prefix could not be listed, so what is left there was not checked: ${(err as Error).message}` });
    }
  }
}

/**
 * Completeness in the target: every object under the user's prefix in its EU site must be one the
 * newest manifest generation lists; anything else is an `unlisted` problem.
 */
async function checkUnlisted(s: Site, m: Manifest, manifest: string, report: AuditReport): Promise<void> {
  const listed = new Set(m.entries.map((e) => e.key));
  try {
    await forEachObject(s, m.userPrefix, 'listing a user\'s prefix in its EU site', (o) => {
      if (listed.has(o.key)) return;
      report.unlisted++;
      report.problems.push({ kind: 'unlisted', site: s.name, manifest, key: o.key, userId: m.userId, problem: 'in the EU site but in no manifest of this migration' });
    });
  } catch (err) {
    report.problems.push({ kind: 'error', site: s.name, manifest, userId: m.userId, problem: `the user's prefix could not be listed in its EU site, so objects no manifest lists were not looked for: ${(err as Error).message}` });
  }
}

/**
 * The auditor's check, from storage alone (no Temporal): reads the newest committed manifest generation
 * of every user in every site, checks its digest and its link to the generation before, re-reads every
 * listed object and recomputes its SHA-256; for a user cut over (and not rolled back), lists the
 * user's prefix in every source and reports whatever is still there (`residue`). Completeness: every
 * user of the stored user list has a committed manifest (`incomplete`), and every object under a
 * user's prefix in its EU site is listed by its newest manifest generation (`unlisted`).
 * An id that no site knows (no manifest, no user list) is bad input (InputError), not a failed audit.
 */
export async function auditMigration(
  sites: Sites, migrationId: string,
  opts: {
    concurrency?: number;
    /** The Ed25519 public key the auditor trusts: then the ledger and every newest manifest's signature are checked too. */
    publicKey?: KeyObject;
    /** With a public key: the head record hash the auditor noted at an earlier visit (a removed tail is then a `ledger` problem). */
    notedHead?: string;
    onProgress?: (checked: number) => void; /** Clients to use instead of ones built from `sites` (the caller's: not destroyed here). */ clients?: SiteClients } = {},
): Promise<AuditReport> {
  const clients = opts.clients ?? createSiteClients(sites, { maxSockets: opts.concurrency ?? 16 });
  const limit = pLimit(opts.concurrency ?? 16);
  const report: AuditReport = { migrationId, manifests: 0, users: 0, objects: 0, bytes: 0, objectsChecked: 0, rolledBack: 0, cutOver: 0, residue: 0, incomplete: 0, failed: 0, unlisted: 0, problems: [], ok: false };
  const users = new Set<string>();
  /** Users with a current manifest key in some site, valid or not (an altered one is a mismatch, not also incomplete). */
  const withManifest = new Set<string>();
  /** The newest valid manifest of each user, and the sources already listed (for the residency report). */
  const newest = new Map<string, Manifest>();
  const listedSources = new Map<string, Map<string, FoundObject[]>>();
  try {
    for (const s of clients.values()) {
      // The newest generation of each user (`manifests/<userId>.json`); the kept generations live under `manifests/<userId>/`.
      const current = (await listAllKeys(s, manifestsPrefix(migrationId), 'listing manifests')).filter((k) => isCurrentManifestKey(migrationId, k));
      for (const key of current) {
        report.manifests++;
        withManifest.add(key.slice(manifestsPrefix(migrationId).length, -'.json'.length));
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
        newest.set(m.userId, m);
        if (opts.publicKey) checkSignature(s, m, key, opts.publicKey, report);
        const chain = await chainProblem(s, m);
        if (chain) report.problems.push({ ...chain, site: s.name, manifest: key });
        await checkUnlisted(s, m, key, report);
        if (m.sourceDisposition && !m.rolledBack) {
          report.cutOver++;
          await checkResidue(clients, m, key, report, listedSources);
        }
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
    let listed: { userId: string; country?: string }[] | undefined;
    try {
      listed = await readStoredUsers(clients, migrationId);
    } catch (err) {
      report.problems.push({ kind: 'error', site: '-', manifest: usersListKey(migrationId), problem: `the user list could not be read, so completeness was not checked: ${(err as Error).message}` });
      listed = [];
    }
    if (report.manifests === 0 && !listed) {
      throw new InputError(`no migration with id "${migrationId}" in any site of the sites file (no manifest and no user list ${usersListKey(migrationId)}); check the id, or --sites`);
    }
    // With a key; without one only when a listed user has no manifest: its recorded failure tells a
    // failed user from one whose evidence is missing (one GET per record: not read when nothing needs it).
    const missing = (listed ?? []).some((r) => !withManifest.has(r.userId));
    const ledger = opts.publicKey || missing ? await readLedgerRecords(clients, migrationId, report) : undefined;
    const ledgerRecords = ledger?.stored.map((x) => x.record) ?? [];
    if (listed) {
      report.listedUsers = listed.length;
      const failures = recordedFailures(ledgerRecords);
      for (const u of new Set(listed.map((r) => r.userId))) {
        if (withManifest.has(u)) continue;
        const f = failures.get(u);
        if (f) {
          report.failed++;
          report.problems.push({ kind: 'failed', site: '-', manifest: ledgerKey(migrationId, f.seq), userId: u, problem: `${f.reason} (in phase ${f.phase}; its data did not move)` });
          continue;
        }
        report.incomplete++;
        report.problems.push({ kind: 'incomplete', site: '-', manifest: manifestKey(migrationId, u), userId: u, problem: 'no committed manifest and no recorded failure' });
      }
    }
    if (opts.publicKey) {
      report.signaturesVerified ??= 0;
      await checkLedger(clients, migrationId, opts.publicKey, report, ledger, opts.notedHead);
      report.warnings = missingResults(ledgerRecords);
    }
    try {
      report.residency = await residencyFromRead(clients, sites, migrationId, { manifests: newest, users: listed ?? [], listed: listedSources }, { limit });
    } catch (err) {
      report.problems.push({ kind: 'error', site: '-', manifest: usersListKey(migrationId), problem: `the residency report could not be built: ${(err as Error).message}` });
    }
  } finally {
    if (!opts.clients) destroySiteClients(clients);
  }
  report.users = users.size;
  report.ok = report.manifests > 0 && report.problems.length === 0;
  return report;
}
