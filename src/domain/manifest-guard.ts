import type { KeyObject } from 'node:crypto';
import { InvalidManifestError, manifestDigest, manifestSignatureProblem, type Manifest } from './manifest';

/** What a destructive step expects of the manifest it is about to act on (from the plan, not from the manifest). */
export interface ManifestExpectations {
  migrationId: string;
  userId: string;
  /** The user's resolved key prefix (the plan's `userPrefix` with the user id filled in). */
  userPrefix: string;
  /** The plan's source sites. */
  sources: readonly string[];
  /**
   * The worker's evidence key, when it has one: then the manifest must carry a signature that verifies
   * with it (an unsigned one is refused too).
   */
  publicKey?: { key: KeyObject; keyId: string };
}

/**
 * The first reason `m` must not drive a deletion or a restore, or undefined when it may: its digest
 * holds (and its signature, when a key is expected), it names this migration, user and prefix, and every entry's key lies under that prefix and
 * names one of the plan's sources, and so does every site of its `alsoAt` duplicates and `superseded`
 * sources. Manifests of every generation (a pass's or an amendment's) are checked alike. Pure.
 */
export function manifestProblem(m: Manifest, expect: ManifestExpectations): string | undefined {
  if (m.format !== 'clover-manifest/1') return `unknown format ${JSON.stringify(m.format)}`;
  if (m.migrationId !== expect.migrationId) return `it names migration ${JSON.stringify(m.migrationId)}, not ${JSON.stringify(expect.migrationId)}`;
  if (m.userId !== expect.userId) return `it names user ${JSON.stringify(m.userId)}, not ${JSON.stringify(expect.userId)}`;
  if (m.userPrefix !== expect.userPrefix) return `its userPrefix ${JSON.stringify(m.userPrefix)} is not the user's prefix ${JSON.stringify(expect.userPrefix)}`;
  if (!Array.isArray(m.entries)) return 'it has no entry list';
  if (expect.publicKey) {
    const bad = manifestSignatureProblem(m, expect.publicKey.key, expect.publicKey.keyId);
    if (bad) return bad;
  }
  if (manifestDigest(m) !== m.digest) return 'its digest does not match its content (the manifest was altered)';
  const sources = new Set(expect.sources);
  for (const [i, e] of m.entries.entries()) {
    const which = `entry ${i} (key ${JSON.stringify(e.key)})`;
    if (typeof e.key !== 'string' || !e.key.startsWith(expect.userPrefix) || e.key.length === expect.userPrefix.length) {
      return `${which} lies outside the user's prefix ${JSON.stringify(expect.userPrefix)}`;
    }
    if (!sources.has(e.sourceSite)) return `${which} names source site ${JSON.stringify(e.sourceSite)}, which is not one of the plan's sources (${[...sources].join(', ')})`;
    for (const [field, list] of [['alsoAt', e.alsoAt], ['superseded', e.superseded]] as const) {
      if (list === undefined) continue;
      if (!Array.isArray(list)) return `${which} has an ${field} that is not a list`;
      const bad = list.find((s) => !sources.has(s?.site));
      if (bad) return `${which} names site ${JSON.stringify(bad?.site)} in ${field}, which is not one of the plan's sources (${[...sources].join(', ')})`;
    }
  }
  return undefined;
}

/**
 * Throws a permanent InvalidManifestError (type `ManifestInvalid`) naming the user, the manifest key and
 * the first problem when `m` fails `manifestProblem`. Every destructive step calls it before acting.
 */
export function assertManifestValid(m: Manifest, expect: ManifestExpectations, manifestKey: string): void {
  const problem = manifestProblem(m, expect);
  if (problem) {
    throw new InvalidManifestError(`user ${expect.userId}: manifest ${manifestKey} is not valid: ${problem}; nothing of this user was deleted or restored`);
  }
}
