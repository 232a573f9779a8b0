import type { Command } from 'commander';
import { auditMigration, type AuditReport } from '../src/audit/verify';
import { ExitCode, InputError } from '../src/config/errors';
import { checkBundle } from '../src/evidence/bundle';
import { readPublicKeyFile } from '../src/evidence/keys';
import { formatBytes, loadSites, out } from './common';
import { printResidency } from './report';
import { headline } from '../src/audit/report-html';

export function printAudit(r: AuditReport): void {
  out(`verify ${r.migrationId}: ${r.manifests} manifest(s), ${r.users} user(s), ${r.objects} object(s), ${formatBytes(r.bytes)}; ${r.objectsChecked} object(s) re-read and hashed`);
  if (r.manifests === 0) out('no committed manifest found for this migration in any site');
  if (r.rolledBack > 0) out(`${r.rolledBack} user(s) rolled back: their manifests are marked so and their objects were not checked`);
  if (r.cutOver > 0) out(`${r.cutOver} user(s) cut over: their prefix was listed in every source; ${r.residue} object(s) found there`);
  for (const p of r.problems.slice(0, 50)) {
    if (p.kind === 'ledger') out(`LEDGER ${p.problem}`);
    else if (p.kind === 'incomplete') out(`INCOMPLETE user ${p.userId}: ${p.problem}`);
    else if (p.kind === 'failed') out(`FAILED user ${p.userId}: ${p.problem}`);
    else if (p.kind === 'unlisted') out(`UNLISTED site ${p.site} key ${JSON.stringify(p.key)} (user ${p.userId}): ${p.problem}`);
    else if (p.kind === 'residue') out(`OUTSIDE-EEA site ${p.site} key ${JSON.stringify(p.key)} (user ${p.userId}): ${p.problem}`);
    else out(`${p.kind === 'error' ? 'ERROR' : 'MISMATCH'} site ${p.site} ${p.manifest}${p.key !== undefined ? ` key ${JSON.stringify(p.key)}` : ''}: ${p.problem}`);
  }
  if (r.problems.length > 50) out(`... and ${r.problems.length - 50} more (--json lists every one)`);
  const errors = r.problems.filter((p) => p.kind === 'error').length;
  const residue = r.problems.filter((p) => p.kind === 'residue').length;
  const incomplete = r.problems.filter((p) => p.kind === 'incomplete').length;
  const failed = r.problems.filter((p) => p.kind === 'failed').length;
  const unlisted = r.problems.filter((p) => p.kind === 'unlisted').length;
  const ledger = r.problems.filter((p) => p.kind === 'ledger').length;
  const unsigned = r.problems.filter((p) => p.kind === 'signature').length;
  if (r.ledgerRecords !== undefined) {
    if (r.ledgerHead) out(`ledger head: record ${r.ledgerHead.seq}, hash ${r.ledgerHead.hash} (note it: \`verify --head ${r.ledgerHead.hash}\` later shows nothing up to it was removed)`);
    out(`evidence: ${r.ledgerRecords} ledger record(s) read; ${r.signaturesVerified ?? 0} newest manifest generation(s) signed with the given key${unsigned ? `, ${unsigned} not` : ''}`);
  }
  for (const w of r.warnings ?? []) out(`WARNING ${w}`);
  if (r.listedUsers !== undefined) {
    out(`${r.listedUsers} user(s) in the stored user list: ${r.listedUsers - r.incomplete - r.failed} with a committed manifest, ${r.failed ? `${r.failed} failed (recorded in the ledger), ` : ''}${r.incomplete} without${r.failed ? ' either' : ''}`);
  }
  if (r.residency) {
    out(`residency (as storage holds it now): ${headline(r.residency)}`);
    printResidency(r.residency, '  ');
  }
  out(r.ok
    ? `OK: every manifest digest holds, every object matches its SHA-256, and nothing of a cut-over user is left in a source${r.ledgerRecords !== undefined ? '; the ledger\'s chain and signatures hold, every committed digest is the stored generation\'s, and every newest manifest is signed with the given key' : ''}`
    : `FAILED: ${r.problems.length - errors - residue - incomplete - failed - unlisted - ledger} mismatch(es), ${residue} object(s) still in a source after cut-over, ${errors} read error(s)` +
      `${failed ? `, ${failed} user(s) failed (their data did not move)` : ''}${incomplete ? `, ${incomplete} user(s) without a committed manifest` : ''}${unlisted ? `, ${unlisted} object(s) in an EU site that no manifest lists` : ''}` +
      `${ledger ? `, ${ledger} ledger problem(s)` : ''}`);
}

/** `verify --evidence DIR --public-key FILE`: the offline check of a bundle; returns the exit code. */
export function verifyEvidence(dir: string, publicKeyFile: string | undefined, migrationId?: string, json?: boolean, head?: string): number {
  if (publicKeyFile === undefined) throw new InputError('--evidence needs --public-key FILE: the public key you trust (from the operator, not only the bundle\'s copy)');
  const publicKey = readPublicKeyFile(publicKeyFile);
  const r = checkBundle(dir, publicKey, migrationId, head);
  if (json) {
    out(JSON.stringify(r, null, 2));
    return r.problems.length + r.incomplete.length + r.failed.length === 0 ? ExitCode.ok : ExitCode.failures;
  }
  for (const p of r.problems) out(`PROBLEM: ${p}`);
  for (const u of r.incomplete) out(`INCOMPLETE user ${u}: no user-committed record and no recorded failure in the ledger`);
  for (const f of r.failed) out(`FAILED user ${f.userId}: ${f.reason} (in phase ${f.phase}; its data did not move)`);
  for (const w of r.warnings) out(`WARNING ${w}`);
  const types = Object.entries(r.byType).map(([t, n]) => `${n} ${t}`).join(', ') || 'none';
  const users = `${r.usersCommitted} user(s) committed${r.usersListed === undefined ? '' : ` of ${r.usersListed} listed`}` +
    `${r.failed.length ? `, ${r.failed.length} failed` : ''}${r.incomplete.length ? `, ${r.incomplete.length} without evidence` : ''}`;
  if (r.problems.length === 0 && r.incomplete.length === 0 && r.failed.length === 0) {
    out(`OK: migration ${r.migrationId}: ${r.records} record(s) (${types}), every signature verifies, the chain is unbroken to head ${r.headHash ?? 'none'}; ${r.manifestsReferenced} manifest reference(s), each in the bundle with its digest; ${users}`);
    return ExitCode.ok;
  }
  out(`FAILED: migration ${r.migrationId}: ${r.problems.length} problem(s) in ${r.records} record(s) (${types}); ${users}`);
  return ExitCode.failures;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('auditor\'s check from storage alone: manifests, digests, the SHA-256 of every object, nothing left in a source after cut-over, every listed user has a manifest, and no EU object that no manifest lists; or, with --evidence, an exported evidence bundle offline')
    .argument('[migrationId]', 'the migration (with --evidence: optional, taken from the bundle)')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .option('--evidence <dir>', 'check an exported evidence bundle offline instead: no network, no sites file, no Temporal')
    .option('--public-key <file>', 'the Ed25519 public key the ledger and the manifests must verify with (online: read from storage; with --evidence: the bundle)')
    .option('--head <hash>', 'with --public-key: the head record hash you noted at an earlier check; it must still be in the ledger (a removed tail leaves no gap otherwise)')
    .option('--json', 'print the report as JSON')
    .action(async (id: string | undefined, o: { sites?: string; json?: boolean; evidence?: string; publicKey?: string; head?: string }) => {
      if (o.head !== undefined && !/^[0-9a-f]{64}$/.test(o.head)) throw new InputError(`--head ${o.head} is not a record hash (64 lowercase hex digits, as \`verify\` prints after "ledger head:")`);
      if (o.head !== undefined && o.publicKey === undefined) throw new InputError('--head needs --public-key FILE: the ledger is read only with the key you trust');
      if (o.evidence !== undefined) {
        process.exitCode = verifyEvidence(o.evidence, o.publicKey, id, o.json, o.head);
        return;
      }
      if (id === undefined) throw new InputError('verify needs a migration id (or --evidence DIR --public-key FILE for an exported bundle)');
      const publicKey = o.publicKey !== undefined ? readPublicKeyFile(o.publicKey) : undefined;
      const report = await auditMigration(loadSites(o.sites), id, { publicKey, notedHead: o.head });
      if (o.json) out(JSON.stringify(report, null, 2));
      else printAudit(report);
      process.exitCode = report.ok ? ExitCode.ok : ExitCode.failures;
    });
}
