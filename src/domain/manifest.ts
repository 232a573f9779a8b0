import { createHash } from 'node:crypto';

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
  /** `copied`: written by this migration; `present`: already in the target with the same source identity. */
  outcome: 'copied' | 'present';
}

/** A key found in two sources with different bytes, or a target key Clover may not overwrite. */
export interface ConflictRecord {
  key: string;
  kind: 'sources-differ' | 'foreign-target';
  /** For sources-differ: the site whose object was migrated (newest-wins), or none (fail). */
  chosenSite?: string;
  sites: { site: string; etag: string; lastModified: string; size: number; sha256?: string }[];
  resolution: 'newest-wins' | 'failed-user' | 'left-in-place';
}

export interface Manifest {
  format: 'clover-manifest/1';
  migrationId: string;
  userId: string;
  targetSite: string;
  bucket: string;
  userPrefix: string;
  committedAt: string;
  objectCount: number;
  totalBytes: number;
  entries: ManifestEntry[];
  conflicts: ConflictRecord[];
  /** Set when the source objects were deleted after the grace period. */
  sourceDisposition?: { state: 'deleted'; at: string; deleted: number; keptChanged: { key: string; site: string; reason: string }[] };
  /** Set when the user was rolled back: sources restored, EU copies removed. */
  rolledBack?: { at: string; restored: number; targetDeleted: number; kept: { key: string; reason: string }[] };
  /** SHA-256 (hex) of the canonical JSON of every other field. */
  digest: string;
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
  const { digest: _ignored, ...rest } = m;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
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

/** The manifest with `changes` applied and its digest recomputed. */
export function amendManifest(m: Manifest, changes: Partial<Pick<Manifest, 'sourceDisposition' | 'rolledBack'>>): Manifest {
  const next = { ...m, ...changes };
  return { ...next, digest: manifestDigest(next) };
}

/**
 * Names the committed manifest independently of its later amendments (`sourceDisposition`,
 * `rolledBack`): progress records of destructive steps are kept per generation, so a manifest
 * committed again later (another pass) never inherits an earlier generation's records.
 */
export function manifestGeneration(m: Manifest): string {
  return manifestDigest({ ...m, sourceDisposition: undefined, rolledBack: undefined }).slice(0, 16);
}
