import { createHash, sign, verify, type KeyObject } from 'node:crypto';

/** One migrated object, as the auditor sees it. */
export interface ManifestEntry {
  key: string;
  size: number;
  /** SHA-256 of the whole object, hex. */
  sha256: string;
  sourceSite: string;
  sourceEtag: string;
  sourceLastModified: string;
  targetEtag: string;
  /**
   * `copied`: written by this migration. (`present`, an object another migration wrote, is no longer
   * produced: an EU object belongs to the migration whose manifest lists it, and is never adopted.)
   */
  outcome: 'copied' | 'present';
  /**
   * Other sources that hold the same bytes at this key (a duplicate across sources): every one of them
   * is deleted at cut-over, each conditionally on its own ETag, and restored by a rollback.
   */
  alsoAt?: { site: string; etag: string }[];
  /**
   * Sources whose different bytes at this key lost to the copied ones (conflictPolicy newest-wins):
   * recorded so a delta pass knows them (no read), never deleted at cut-over (they are residue).
   */
  superseded?: { site: string; etag: string }[];
  /**
   * In a versioned source: the version id the copy read (absent for a plain bucket, or a copy found
   * already made by an interrupted attempt). At cut-over that version must still be the current one.
   */
  sourceVersionId?: string;
}

/** An object the application erased at its source, carried over to the EU copy by a delta pass. */
export interface ErasureRecord {
  key: string;
  size: number;
  sha256: string;
  /** The site that held it (the manifest entry's `sourceSite`). */
  sourceSite: string;
  /** When the pass found it gone from every source and removed the EU copy. */
  erasedAt: string;
  /** The generation that recorded it. */
  generation: number;
}

/** What one pass (the first, or a delta pass) did: counts only. */
export interface PassSummary {
  kind: 'first' | 'delta';
  /** New keys copied / changed keys copied over the EU copy / erasures carried over / entries that needed no request. */
  copied: number;
  overwritten: number;
  erased: number;
  unchanged: number;
  conflicts: number;
}

/** An object found in a source site under the user's prefix after the sources were emptied. */
export interface ResidueItem {
  key: string;
  site: string;
  etag: string;
  /** Why it is there, when Clover knows (kept because it changed, written after the final pass, a conflict). */
  reason: string;
}

/** A key found in two sources with different bytes, or a target key Clover may not overwrite. */
export interface ConflictRecord {
  key: string;
  /**
   * `sources-differ`: two sources hold different bytes at the key; `foreign-target`: the target holds an
   * object at the key that this migration did not write; `target-changed`: the EU copy this migration
   * wrote was changed or replaced by someone else since (neither overwritten nor deleted).
   */
  kind: 'sources-differ' | 'foreign-target' | 'target-changed';
  /** For sources-differ: the site whose object was migrated (newest-wins), or none (fail). */
  chosenSite?: string;
  sites: { site: string; etag: string; lastModified: string; size: number; sha256?: string }[];
  resolution: 'newest-wins' | 'failed-user' | 'left-in-place';
}

/** What a conflict is, in words (callers add what came of it). */
export function describeConflict(c: ConflictRecord): string {
  const sites = c.sites.map((s) => s.site).join(' and ');
  switch (c.kind) {
    case 'foreign-target': return 'the EU site holds an object at this key that this migration did not write';
    case 'target-changed': return 'the EU copy was changed by someone else since Clover wrote it';
    default: return c.resolution === 'newest-wins'
      ? `sources ${sites} hold different bytes; the newest (${c.chosenSite ?? '?'}) was copied`
      : `sources ${sites} hold different bytes (conflictPolicy "fail")`;
  }
}

export interface Manifest {
  format: 'clover-manifest/1';
  migrationId: string;
  userId: string;
  targetSite: string;
  bucket: string;
  userPrefix: string;
  /** The plan's source sites (where a residue check looks after cut-over). */
  sources?: string[];
  committedAt: string;
  /**
   * 1 for the first pass; each delta pass and each amendment (disposal, rollback) commits the next one.
   * Every generation is kept, write-once, at manifestGenerationKey; manifestKey holds the newest.
   */
  generation: number;
  /** The digest of the generation this one replaced (a chain back to generation 1). */
  previousDigest?: string;
  /** Who wrote this generation (workflow, run and activity): a retried attempt recognises its own write. */
  writtenBy?: string;
  /** What the pass that produced this generation did (absent in an amendment's copy). */
  pass?: PassSummary;
  objectCount: number;
  totalBytes: number;
  entries: ManifestEntry[];
  /** Conflicts found by the pass that produced this generation. */
  conflicts: ConflictRecord[];
  /** Every erasure carried over so far (all generations): a rollback never restores these. */
  erasures: ErasureRecord[];
  /**
   * Set when the source objects were deleted (cut-over). `residue`: what a listing of the user's prefix
   * in every source found afterwards (first RESIDUE_LISTED), `residueCount` all of it.
   */
  sourceDisposition?: {
    state: 'deleted'; at: string; deleted: number; keptChanged: { key: string; site: string; reason: string }[];
    residue?: ResidueItem[]; residueCount?: number;
    /** With the plan's `purgeErased`: erased keys (current version a delete marker) whose every version Clover deleted. */
    purgedErased?: number;
  };
  /**
   * Set when the user was rolled back: sources restored, EU copies removed. `erased`: objects not
   * restored because the application erased them (carried-over erasures, and entries erased at the
   * source after the last pass), first RESIDUE_LISTED; `erasedCount` all of them.
   */
  rolledBack?: {
    at: string; restored: number; targetDeleted: number; kept: { key: string; reason: string }[];
    erased?: { key: string; reason: string }[]; erasedCount?: number;
  };
  /** SHA-256 (hex) of the canonical JSON of every other field (`signature` excluded). */
  digest: string;
  /**
   * Ed25519 signature (base64) by the worker's evidence key over the canonical JSON of every other field
   * (`digest` included): what an edit with a recomputed plain digest cannot forge. Absent when the
   * worker had no key.
   */
  signature?: { keyId: string; value: string };
}

/** JSON with object keys sorted at every level: the same data always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function manifestDigest(m: Omit<Manifest, 'digest'> & { digest?: string }): string {
  const { digest: _ignored, signature: _unsigned, ...rest } = m;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** `m` signed with `key` (Ed25519 is deterministic: a retried attempt signs it the same). */
export function signManifest(m: Manifest, key: { privateKey: KeyObject; keyId: string }): Manifest {
  const { signature: _old, ...unsigned } = m;
  return { ...unsigned, signature: { keyId: key.keyId, value: sign(null, Buffer.from(canonicalJson(unsigned)), key.privateKey).toString('base64') } };
}

/** Why `m`'s signature does not hold with `publicKey` (key id `keyId`), or undefined when it does. */
export function manifestSignatureProblem(m: Manifest, publicKey: KeyObject, keyId: string): string | undefined {
  const { signature, ...unsigned } = m;
  if (!signature || typeof signature.value !== 'string') return 'it has no signature, and this worker signs every manifest';
  if (signature.keyId !== keyId) return `it is signed with key ${JSON.stringify(signature.keyId)}, not this worker's key ${keyId}`;
  let ok: boolean;
  try {
    ok = verify(null, Buffer.from(canonicalJson(unsigned)), publicKey, Buffer.from(signature.value, 'base64'));
  } catch {
    ok = false;
  }
  return ok ? undefined : 'its signature does not verify with the evidence key (the manifest was altered)';
}

/** Compares keys the way S3 lists them: by their UTF-8 bytes. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A manifest that would break an invariant (a key listed twice); never committed. */
export class InvalidManifestError extends Error {
  readonly type = 'ManifestInvalid';
  readonly permanent = true;
  constructor(message: string) {
    super(message);
    this.name = 'InvalidManifestError';
  }
}

/** Residue items kept in a manifest (the count has all of them). */
export const RESIDUE_LISTED = 1000;

/** Another writer committed a generation of this user's manifest first: nothing was overwritten. */
export class ManifestConflictError extends Error {
  readonly type = 'ManifestConflict';
  readonly permanent = true;
  constructor(message: string) {
    super(message);
    this.name = 'ManifestConflictError';
  }
}

/** The manifest of `fields`, entries in listing order, with its digest. Throws InvalidManifestError when a key appears twice. */
export function buildManifest(fields: Omit<Manifest, 'digest' | 'format' | 'objectCount' | 'totalBytes' | 'sourceDisposition' | 'rolledBack'>): Manifest {
  const entries = [...fields.entries].sort((a, b) => compareKeys(a.key, b.key));
  const twice = entries.filter((e, i) => i > 0 && entries[i - 1]?.key === e.key);
  if (twice.length > 0) {
    throw new InvalidManifestError(
      `user ${fields.userId}: the staging records list ${twice.length} key(s) more than once (first ${JSON.stringify(twice[0]?.key)}); ` +
        'no manifest was committed. Remove the staging records and run `clover retry`',
    );
  }
  const base = {
    format: 'clover-manifest/1' as const,
    ...fields,
    entries,
    objectCount: entries.length,
    totalBytes: entries.reduce((n, e) => n + e.size, 0),
  };
  return { ...base, digest: manifestDigest(base) };
}

/**
 * The next generation of `m` with `changes` applied (an amendment: disposal, residue, rollback):
 * same entries, generation + 1, chained to `m`'s digest, digest recomputed.
 */
export function amendManifest(m: Manifest, changes: Partial<Pick<Manifest, 'sourceDisposition' | 'rolledBack'>>, writtenBy?: string): Manifest {
  const next = { ...m, ...changes, generation: (m.generation ?? 1) + 1, previousDigest: m.digest, writtenBy, pass: undefined, signature: undefined };
  return { ...next, digest: manifestDigest(next) };
}

/**
 * Names the pass's content (entries, conflicts, erasures, commit time) independently of the
 * generation number and later amendments (`sourceDisposition`, `rolledBack`): progress records of
 * destructive steps are kept under it, so an amendment keeps its pass's records and another pass
 * never inherits an earlier pass's records.
 */
export function manifestGeneration(m: Manifest): string {
  return manifestDigest({
    ...m, sourceDisposition: undefined, rolledBack: undefined, generation: 0, previousDigest: undefined, writtenBy: undefined, pass: undefined, signature: undefined,
  }).slice(0, 16);
}

/** Every site holding the entry's bytes: its source site, then the duplicates. */
export function entrySites(e: ManifestEntry): { site: string; etag: string }[] {
  return [{ site: e.sourceSite, etag: e.sourceEtag }, ...(e.alsoAt ?? [])];
}
