import type { KeyObject } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { LimitFunction } from 'p-limit';
import type { ByteBudget } from '../storage/byte-budget';
import type { Site, SiteClients } from '../storage/clients';
import type { Hasher } from '../storage/hash-pool';
import type { CopySettings } from '../storage/copy-request';
import { isEea } from '../domain/eea';
import type { SigningKey } from '../evidence/ledger';
import type { LedgerTarget } from '../evidence/record';
import type { Retention } from '../storage/json-records';

/** What the worker builds once and injects into every activity (tests pass their own). */
export interface ActivityDeps {
  clients: SiteClients;
  budget: ByteBudget;
  copy: CopySettings;
  /** Where object bytes are hashed: the worker's hash threads (default: the activity's own thread). */
  hasher?: Hasher;
  /** One copy activity call returns after this many listing pages or this long, so progress is durable in history. */
  batch: { maxPages: number; maxMillis: number; listPageSize: number };
  /**
   * The evidence key (CLOVER_SIGNING_KEY_FILE): manifests are signed with it, ledger records written,
   * and disposal and rollback refuse a manifest whose signature does not verify. None: no evidence.
   */
  signingKey?: SigningKey;
  /**
   * Objects moved at once across every activity of this worker (`--max-objects-in-flight`), on top of
   * each user's `objectsPerUser`: while one user lists, stages, verifies or commits, the others' copies
   * take its share. None: each user's own limit only.
   */
  objectSlots?: LimitFunction;
  /**
   * A first pass tried as a local activity (`--local-first-pass-mib`) goes on only for a user whose one
   * listing page holds at most this many bytes, none above the multipart threshold; any other user is
   * handed back to the workflow (deferred) for a regular activity. None or 0: every user is handed back.
   */
  localFirstPassBytes?: number;
}

/** Runs `fn` (one object's transfer) in one of the worker's object slots, when it has a limit. */
export function inObjectSlot<T>(deps: ActivityDeps, fn: () => Promise<T>): Promise<T> {
  return deps.objectSlots ? deps.objectSlots(fn) : fn();
}

/**
 * Where the migration's ledger is written, when the input names its site (older histories do not) and
 * the worker has a key: that site, with the plan's evidence retention (Object Lock) when it has one.
 */
export function ledgerOf(deps: ActivityDeps, input: { ledgerSite?: string; evidenceRetention?: Retention }): LedgerTarget | undefined {
  return input.ledgerSite === undefined || !deps.signingKey ? undefined : { site: site(deps, input.ledgerSite), retention: input.evidenceRetention };
}

/** What the manifest guard expects of a signature: this worker's key, when it has one. */
export function expectedKey(deps: ActivityDeps): { key: KeyObject; keyId: string } | undefined {
  return deps.signingKey && { key: deps.signingKey.publicKey, keyId: deps.signingKey.keyId };
}

export function site(deps: ActivityDeps, name: string): Site {
  const s = deps.clients.get(name);
  if (!s) {
    throw ApplicationFailure.create({
      type: 'UnknownSite',
      nonRetryable: true,
      message: `site "${name}" is not in this worker's sites file; give every worker the same sites file (CLOVER_SITES)`,
    });
  }
  return s;
}

/** Residency guard, again at the point of writing: a worker never writes user data outside the EEA. */
export function targetSite(deps: ActivityDeps, name: string): Site {
  const s = site(deps, name);
  if (!isEea(s.config.jurisdiction)) {
    throw ApplicationFailure.create({
      type: 'ResidencyViolation',
      nonRetryable: true,
      message: `refusing to write to site "${name}": its jurisdiction ${s.config.jurisdiction} is outside the EEA`,
    });
  }
  return s;
}
