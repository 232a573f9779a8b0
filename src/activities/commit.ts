import { manifestGenerationKey, manifestKey } from '../domain/layout';
import { buildManifest, compareKeys, describeConflict, ManifestConflictError, type ConflictRecord, type ErasureRecord, type Manifest, type ManifestEntry, type PassSummary, signManifest } from '../domain/manifest';
import { recordUserEvents, type UserEvent } from '../evidence/record';
import { commitManifestGeneration, getCurrentManifest } from '../storage/manifests';
import { passPages, removeStaging, type StagingPage } from '../storage/staging';
import type { Retention } from '../storage/json-records';
import { ledgerOf, targetSite, type ActivityDeps } from './deps';
import { runActivity, writer } from './scaffold';

export interface CommitManifestInput {
  migrationId: string;
  userId: string;
  targetSite: string;
  userPrefix: string;
  /** The plan's source sites (recorded in the manifest for the residue check). */
  sources: string[];
  /** The generation the pass built (1: the first pass); the newest committed one must be `generation - 1`. */
  generation: number;
  kind: 'first' | 'delta';
  /** From the workflow's clock, so a retried attempt writes the very same manifest. */
  committedAt: string;
  /** Where the migration's evidence ledger lives (the plan's default target); absent in histories from before it. */
  ledgerSite?: string;
  /** The plan's evidenceRetention: ledger records and manifest generations are written under Object Lock. */
  evidenceRetention?: Retention;
}

export interface CommitManifestResult {
  manifestKey: string;
  digest: string;
  generation: number;
  objects: number;
  bytes: number;
  copied: number;
  skipped: number;
  conflicts: number;
  pass: PassSummary;
  /** The first conflicts of this generation, with why. */
  conflictKeys: { key: string; reason: string }[];
}

/** The newest committed generation of a user's manifest, as a workflow needs it (small). */
export interface ManifestHead {
  generation: number;
  digest: string;
  committedAt: string;
  /** The sources were emptied (cut-over done): no pass may run any more. */
  cutOver: boolean;
  rolledBack: boolean;
}

export interface ReadManifestHeadInput {
  migrationId: string;
  userId: string;
  targetSite: string;
}

const CONFLICTS_REPORTED = 20;

export function conflictReason(c: ConflictRecord): string {
  const outcome = c.kind === 'foreign-target' ? '; left in place' : c.kind === 'target-changed' ? '; neither overwritten nor deleted' : '';
  return `${describeConflict(c)}${outcome}`;
}

export function createCommitActivities(deps: ActivityDeps) {
  /**
   * Commits the pass's manifest generation in the target site from its verified staging records: every
   * entry (written and carried), this pass's conflicts, and every erasure so far (the previous
   * generation's plus this pass's). Conditional on the newest generation being `generation - 1`
   * (ManifestConflict otherwise: nothing is overwritten). Refuses (ManifestInvalid) staging that lists a
   * key twice. Once committed, the user's staging up to this generation is removed. Idempotent: a
   * retried attempt finds its own generation and reports it.
   */
  function commitManifest(input: CommitManifestInput, held?: StagingPage[]): Promise<CommitManifestResult> {
    return runActivity(async ({ signal }) => {
      const target = targetSite(deps, input.targetSite);
      const who = writer();
      const current = await getCurrentManifest(target, input.migrationId, input.userId, signal);
      const report = (m: Manifest, key: string): CommitManifestResult => {
        const copied = m.entries.filter((e) => e.outcome === 'copied').length;
        return {
          manifestKey: key, digest: m.digest, generation: m.generation, objects: m.objectCount, bytes: m.totalBytes,
          copied, skipped: m.entries.length - copied, conflicts: m.conflicts.length,
          pass: m.pass ?? { kind: input.kind, copied: 0, overwritten: 0, erased: 0, unchanged: 0, conflicts: m.conflicts.length },
          conflictKeys: m.conflicts.slice(0, CONFLICTS_REPORTED).map((c) => ({ key: c.key, reason: conflictReason(c) })),
        };
      };
      const ledger = ledgerOf(deps, input);
      /** The ledger records of a committed generation: the pass, and the erasures it carried over. */
      const evidence = (m: Manifest): UserEvent[] => {
        const r = report(m, manifestGenerationKey(m.migrationId, m.userId, m.generation));
        const events: UserEvent[] = [{
          type: input.kind === 'first' ? 'user-committed' : 'delta-pass',
          data: {
            userId: m.userId, targetSite: m.targetSite, generation: m.generation, digest: m.digest, manifestKey: r.manifestKey,
            objects: r.objects, bytes: r.bytes, pass: r.pass,
          },
        }];
        const carried = m.erasures.filter((x) => x.generation === m.generation);
        if (input.kind === 'delta' && carried.length > 0) {
          events.push({
            type: 'erasure-carried-over',
            data: { userId: m.userId, generation: m.generation, erasures: carried.map((x) => ({ key: x.key, sha256: x.sha256, sourceSite: x.sourceSite })) },
          });
        }
        return events;
      };
      if (current?.manifest.generation === input.generation && current.manifest.writtenBy === who) {
        // An earlier attempt committed it (and may have removed the staging already), and may have recorded it.
        await recordUserEvents(deps.signingKey, ledger, input.migrationId, evidence(current.manifest), true, signal);
        return report(current.manifest, manifestKey(input.migrationId, input.userId));
      }
      const base = current?.manifest;
      if ((base?.generation ?? 0) !== input.generation - 1) {
        throw new ManifestConflictError(
          `user ${input.userId}: the pass built manifest generation ${input.generation}, but the newest committed generation is ${base?.generation ?? 'none'}; nothing was committed. Run the pass again`,
        );
      }
      const entries: ManifestEntry[] = [];
      const conflicts: ConflictRecord[] = [];
      const erasures: ErasureRecord[] = [...(base?.erasures ?? [])];
      const pass: PassSummary = { kind: input.kind, copied: 0, overwritten: 0, erased: 0, unchanged: 0, conflicts: 0 };
      let lastEnd: string | undefined;
      // Never an empty manifest for want of records: held pages always include page 0, and only a first pass holds them.
      if (held && (held.length === 0 || input.generation !== 1)) throw new Error(`user ${input.userId}: held pages are for a first pass with at least one page; got ${held.length} for generation ${input.generation}`);
      for (const { key, read } of await passPages(target, input.migrationId, input.userId, input.generation, signal, held)) {
        const page = await read();
        // Pages never overlap: a page redone after a crash replaced its own record and dropped later ones.
        const first = page.entries[0]?.key;
        if (lastEnd !== undefined && first !== undefined && compareKeys(first, lastEnd) <= 0) {
          throw new ManifestConflictError(`user ${input.userId}: staging page ${key} overlaps the page before it; nothing was committed. Run the pass again`);
        }
        lastEnd = page.entries.at(-1)?.key ?? lastEnd;
        for (const { targetChecksum: _c, carried, overwritten, ...e } of page.entries) {
          entries.push(e);
          if (carried) pass.unchanged++;
          else if (overwritten) pass.overwritten++;
          else pass.copied++;
        }
        conflicts.push(...page.conflicts);
        erasures.push(...page.erasures);
        pass.erased += page.erasures.length;
      }
      pass.conflicts = conflicts.length;
      const built = buildManifest({
        migrationId: input.migrationId, userId: input.userId, targetSite: target.name, bucket: target.bucket,
        userPrefix: input.userPrefix, sources: input.sources, committedAt: input.committedAt, generation: input.generation, previousDigest: base?.digest,
        writtenBy: who, pass, entries, conflicts, erasures,
      });
      const manifest = deps.signingKey ? signManifest(built, deps.signingKey) : built;
      const done = await commitManifestGeneration(target, manifest, current && { etag: current.etag }, signal, input.evidenceRetention);
      // Held pages were never staged (and the copy removed whatever an earlier run had staged for them).
      if (!held) await removeStaging(target, input.migrationId, input.userId, input.generation, undefined, signal);
      await recordUserEvents(deps.signingKey, ledger, input.migrationId, evidence(done.manifest), false, signal);
      return report(done.manifest, done.key);
    });
  }

  /** The newest committed generation of the user's manifest, or null when none was committed. */
  function readManifestHead(input: ReadManifestHeadInput): Promise<ManifestHead | null> {
    return runActivity(async ({ signal }) => {
      const m = (await getCurrentManifest(targetSite(deps, input.targetSite), input.migrationId, input.userId, signal))?.manifest;
      if (!m) return null;
      return { generation: m.generation ?? 1, digest: m.digest, committedAt: m.committedAt, cutOver: !!m.sourceDisposition, rolledBack: !!m.rolledBack };
    });
  }
  return { commitManifest, readManifestHead };
}
