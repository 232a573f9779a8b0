import { createHash } from 'node:crypto';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { InputError } from '../config/errors';
import type { Sites } from '../config/sites';
import { isEea } from '../domain/eea';
import { isCurrentManifestKey, manifestsPrefix, userPrefixFor, usersListKey } from '../domain/layout';
import { compareKeys, type Manifest, type ManifestEntry } from '../domain/manifest';
import { createSiteClients, destroySiteClients, type Site, type SiteClients } from '../storage/clients';
import { describeS3Error, isNotFound } from '../storage/errors';
import { getJson } from '../storage/json-records';
import { listAllKeys, listObjectsPage } from '../storage/listing';
import { forEachVersion, listsVersions } from '../storage/versions';

/** Keys named per user in `stillOutsideEEA.keys`, at most. */
export const OUTSIDE_KEYS_LISTED = 20;

export type Jurisdiction = 'EEA' | 'outside EEA';
export type UserState = 'migrated' | 'cut over' | 'rolled back' | 'no manifest';
export const USER_STATES: readonly UserState[] = ['migrated', 'cut over', 'rolled back', 'no manifest'];

export interface SiteResidency {
  name: string;
  region: string;
  /** The site's country (ISO 3166-1 alpha-2, from the sites file). */
  country: string;
  jurisdiction: Jurisdiction;
  /** `source`: one of the plan's sources; `target`: an EEA site users are routed to; `unused`: neither. */
  role: 'source' | 'target' | 'unused';
  /** Users with at least one object of theirs here, their objects and bytes (what storage holds now). */
  users: number;
  objects: number;
  bytes: number;
}

export interface UserResidency {
  userId: string;
  country?: string;
  /** The EU site the newest manifest names (absent without a manifest). */
  targetSite?: string;
  generation?: number;
  state: UserState;
  /** Objects and bytes in the EU site per the newest manifest generation (0 once rolled back). */
  objects: number;
  bytes: number;
  /** SHA-256 (hex) over the sorted entries' `key\tsha256\n` lines (absent without a manifest, or rolled back). */
  sha256Total?: string;
  /** What a listing of the user's prefix in every source found now: objects still outside the EEA. */
  stillOutsideEEA: { objects: number; bytes: number; keys: string[]; sites: string[] };
  /** Listings that failed: what is outside the EEA is then not fully known. */
  errors?: string[];
}

export interface ResidencyReport {
  migrationId: string;
  generatedAt: string;
  /** Where the user list and the users' source prefixes came from, for the reader. */
  sources: string[];
  userPrefix: string;
  sites: SiteResidency[];
  users: UserResidency[];
  totals: {
    users: number;
    byState: Record<UserState, number>;
    /** Users with a manifest (not rolled back) and nothing left in any source (every listing succeeded). */
    eeaOnly: number;
    /** Users with at least one object in a source. */
    outsideEEA: number;
    eeaObjects: number;
    eeaBytes: number;
    outsideObjects: number;
    outsideBytes: number;
    /** Listings that failed (see the users' `errors`). */
    errors: number;
  };
}

/** One object found under a user's prefix in a source site. */
export interface FoundObject { site: string; key: string; size: number }

/** Everything the report is built from, as read from storage. */
export interface StoredMigration {
  migrationId: string;
  generatedAt: string;
  /** The stored user list (`users.jsonl`), in its order. */
  users: { userId: string; country?: string }[];
  /** The newest committed manifest of each user that has one. */
  manifests: Map<string, Manifest>;
  /** The plan's sources (every manifest's `sources`; without any, every site outside the EEA). */
  sources: string[];
  userPrefix: string;
  /** Per user: every object found under its prefix in the sources. */
  outside: Map<string, FoundObject[]>;
  /** Per user: listings that failed. */
  errors: Map<string, string[]>;
}

/** SHA-256 over the entries sorted by key (S3 order), one `key\tsha256\n` line each. */
export function entriesSha256(entries: readonly Pick<ManifestEntry, 'key' | 'sha256'>[]): string {
  const h = createHash('sha256');
  for (const e of [...entries].sort((a, b) => compareKeys(a.key, b.key))) h.update(`${e.key}\t${e.sha256}\n`);
  return h.digest('hex');
}

export function jurisdictionOf(country: string): Jurisdiction {
  return isEea(country) ? 'EEA' : 'outside EEA';
}

export function userState(m: Manifest | undefined): UserState {
  if (!m) return 'no manifest';
  if (m.rolledBack) return 'rolled back';
  if (m.sourceDisposition) return 'cut over';
  return 'migrated';
}

/** The pure part: the report from what was read (no I/O). */
export function buildResidencyReport(sites: Sites, st: StoredMigration): ResidencyReport {
  const sourceSet = new Set(st.sources);
  const siteRows = new Map<string, SiteResidency & { userSet: Set<string> }>();
  for (const [name, cfg] of Object.entries(sites)) {
    const jurisdiction = jurisdictionOf(cfg.jurisdiction);
    const targeted = [...st.manifests.values()].some((m) => m.targetSite === name);
    const role = sourceSet.has(name) ? 'source' : targeted || jurisdiction === 'EEA' ? 'target' : 'unused';
    siteRows.set(name, { name, region: cfg.region, country: cfg.jurisdiction, jurisdiction, role, users: 0, objects: 0, bytes: 0, userSet: new Set() });
  }
  const siteRow = (name: string) => {
    let r = siteRows.get(name);
    if (!r) {
      // A site a manifest names that the sites file does not: reported, its jurisdiction unknown (so not the EEA).
      r = { name, region: '?', country: '?', jurisdiction: 'outside EEA', role: sourceSet.has(name) ? 'source' : 'target', users: 0, objects: 0, bytes: 0, userSet: new Set() };
      siteRows.set(name, r);
    }
    return r;
  };

  const byState = Object.fromEntries(USER_STATES.map((s) => [s, 0])) as Record<UserState, number>;
  const totals: ResidencyReport['totals'] = { users: 0, byState, eeaOnly: 0, outsideEEA: 0, eeaObjects: 0, eeaBytes: 0, outsideObjects: 0, outsideBytes: 0, errors: 0 };
  const seen = new Set<string>();
  const users: UserResidency[] = [];
  // Every user of the list, then any user with a manifest the list does not name (reported, not dropped).
  const listed = new Set(st.users.map((r) => r.userId));
  const rows = [...st.users, ...[...st.manifests.keys()].filter((u) => !listed.has(u)).map((userId) => ({ userId, country: undefined }))];
  for (const row of rows) {
    if (seen.has(row.userId)) continue;
    seen.add(row.userId);
    const m = st.manifests.get(row.userId);
    const state = userState(m);
    const inEu = m && !m.rolledBack ? m.entries : [];
    const objects = inEu.length;
    const bytes = inEu.reduce((n, e) => n + e.size, 0);
    const found = [...(st.outside.get(row.userId) ?? [])].sort((a, b) => compareKeys(a.key, b.key) || a.site.localeCompare(b.site));
    const errors = st.errors.get(row.userId);
    const u: UserResidency = {
      userId: row.userId,
      ...(row.country ? { country: row.country } : {}),
      ...(m ? { targetSite: m.targetSite, generation: m.generation } : {}),
      state, objects, bytes,
      ...(m && !m.rolledBack ? { sha256Total: entriesSha256(m.entries) } : {}),
      stillOutsideEEA: {
        objects: found.length,
        bytes: found.reduce((n, o) => n + o.size, 0),
        keys: found.slice(0, OUTSIDE_KEYS_LISTED).map((o) => o.key),
        sites: [...new Set(found.map((o) => o.site))].sort(),
      },
      ...(errors?.length ? { errors } : {}),
    };
    users.push(u);
    totals.users++;
    byState[state]++;
    totals.eeaObjects += objects;
    totals.eeaBytes += bytes;
    totals.outsideObjects += u.stillOutsideEEA.objects;
    totals.outsideBytes += u.stillOutsideEEA.bytes;
    totals.errors += errors?.length ?? 0;
    if (u.stillOutsideEEA.objects > 0) totals.outsideEEA++;
    else if ((state === 'migrated' || state === 'cut over') && !errors?.length) totals.eeaOnly++;
    if (m && !m.rolledBack) {
      const t = siteRow(m.targetSite);
      t.userSet.add(row.userId);
      t.objects += objects;
      t.bytes += bytes;
    }
    for (const o of found) {
      const s = siteRow(o.site);
      s.userSet.add(row.userId);
      s.objects++;
      s.bytes += o.size;
    }
  }
  const siteList = [...siteRows.values()]
    .map(({ userSet, ...r }) => ({ ...r, users: userSet.size }))
    .sort((a, b) => (a.jurisdiction === b.jurisdiction ? a.name.localeCompare(b.name) : a.jurisdiction === 'EEA' ? -1 : 1));
  return { migrationId: st.migrationId, generatedAt: st.generatedAt, sources: st.sources, userPrefix: st.userPrefix, sites: siteList, users, totals };
}

/** Reads the stored user list (`users.jsonl`) from whichever site holds it; undefined when none does. */
export async function readStoredUsers(clients: SiteClients, migrationId: string): Promise<{ userId: string; country?: string }[] | undefined> {
  const key = usersListKey(migrationId);
  for (const s of clients.values()) {
    let text: string;
    try {
      const r = await s.s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: key }));
      text = await r.Body!.transformToString('utf8');
    } catch (err) {
      if (isNotFound(err)) continue;
      throw describeS3Error(err, { site: s.name, bucket: s.bucket, key, action: 'reading the user list' });
    }
    return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { userId: string; country?: string });
  }
  return undefined;
}

/** The newest committed manifest of every user, in every site (not checked here: `clover verify` does that). */
export async function readCurrentManifests(clients: SiteClients, migrationId: string): Promise<Map<string, Manifest>> {
  const out = new Map<string, Manifest>();
  for (const s of clients.values()) {
    const keys = (await listAllKeys(s, manifestsPrefix(migrationId), 'listing manifests')).filter((k) => isCurrentManifestKey(migrationId, k));
    for (const key of keys) {
      const m = await getJson<Manifest>(s, key, 'a manifest');
      if (m && m.migrationId === migrationId) out.set(m.userId, m);
    }
  }
  return out;
}

/** Per site client (one report run): whether its bucket keeps versions, asked once. */
const versioning = new WeakMap<Site, Promise<boolean>>();

/**
 * Every object under `prefix` in `site`, with its size. In a versioned bucket every version holding
 * data (noncurrent ones and those of erased keys included: data outside the EEA all the same).
 */
export async function listWithSizes(site: Site, prefix: string, what: string): Promise<{ key: string; size: number }[]> {
  const out: { key: string; size: number }[] = [];
  if (!versioning.has(site)) versioning.set(site, listsVersions(site));
  if (await versioning.get(site)) {
    await forEachVersion(site, prefix, what, (v) => {
      if (!v.deleteMarker) out.push({ key: v.key, size: v.size });
    });
    return out;
  }
  let token: string | undefined;
  do {
    let r;
    try {
      r = await listObjectsPage(site, { Prefix: prefix, ContinuationToken: token });
    } catch (err) {
      throw describeS3Error(err, { site: site.name, bucket: site.bucket, key: prefix, action: what });
    }
    for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 });
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/**
 * The residency report, from storage alone (read access only): the stored user list, the newest
 * manifest of each user, and a listing of each user's prefix in every source site. The plan itself is
 * not stored: its sources and user prefix come from the manifests (every one names them); with no
 * manifest at all, every site outside the EEA is taken as a source and the prefix is `users/{userId}/`.
 */
export async function residencyReport(
  sites: Sites, migrationId: string,
  opts: { concurrency?: number; clients?: SiteClients; now?: () => Date } = {},
): Promise<ResidencyReport> {
  const clients = opts.clients ?? createSiteClients(sites, { maxSockets: opts.concurrency ?? 16 });
  const limit = pLimit(opts.concurrency ?? 16);
  try {
    const manifests = await readCurrentManifests(clients, migrationId);
    const stored = await readStoredUsers(clients, migrationId);
    if (!stored && manifests.size === 0) {
      throw new InputError(`no migration with id "${migrationId}" in any site of the sites file (no manifest and no user list ${usersListKey(migrationId)}); check the id, or --sites`);
    }
    return await residencyFromRead(clients, sites, migrationId, { manifests, users: stored ?? [] }, { limit, now: opts.now });
  } finally {
    if (!opts.clients) destroySiteClients(clients);
  }
}

/**
 * The residency report from what a caller has already read (the newest manifests, the stored user list)
 * and, in `listed`, the source listings it already made (user -> site -> objects found; `clover verify`
 * lists every source of a cut-over user): only the (user, source) pairs not in `listed` are listed here.
 */
export async function residencyFromRead(
  clients: SiteClients, sites: Sites, migrationId: string,
  read: { manifests: Map<string, Manifest>; users: { userId: string; country?: string }[]; listed?: Map<string, Map<string, FoundObject[]>> },
  opts: { limit?: ReturnType<typeof pLimit>; now?: () => Date } = {},
): Promise<ResidencyReport> {
  const limit = opts.limit ?? pLimit(16);
  const { manifests } = read;
  const generatedAt = (opts.now?.() ?? new Date()).toISOString();
  const named = [...manifests.values()].flatMap((m) => m.sources ?? []);
  const sources = named.length > 0 ? [...new Set(named)].sort() : Object.keys(sites).filter((n) => !isEea(sites[n]!.jurisdiction)).sort();
  const any = [...manifests.values()][0];
  const userPrefix = any ? any.userPrefix.split(any.userId).join('{userId}') : 'users/{userId}/';
  const users = read.users;
  const everyone = [...new Set([...users.map((u) => u.userId), ...manifests.keys()])];
  const outside = new Map<string, FoundObject[]>();
  const errors = new Map<string, string[]>();
  await Promise.all(everyone.flatMap((userId) => sources.map((name) => limit(async () => {
    const already = read.listed?.get(userId)?.get(name);
    if (already) {
      if (already.length) outside.set(userId, [...(outside.get(userId) ?? []), ...already]);
      return;
    }
    const s = clients.get(name);
    const m = manifests.get(userId);
    const prefix = m?.userPrefix ?? userPrefixFor(userPrefix, userId);
    if (!s) {
      errors.set(userId, [...(errors.get(userId) ?? []), `source site ${name} is not in the sites file: not listed`]);
      return;
    }
    try {
      const found = await listWithSizes(s, prefix, 'listing a user\'s prefix in a source');
      if (found.length) outside.set(userId, [...(outside.get(userId) ?? []), ...found.map((o) => ({ site: name, ...o }))]);
    } catch (err) {
      errors.set(userId, [...(errors.get(userId) ?? []), (err as Error).message]);
    }
  }))));
  return buildResidencyReport(sites, { migrationId, generatedAt, users, manifests, sources, userPrefix, outside, errors });
}
