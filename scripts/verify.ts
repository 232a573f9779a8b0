import type { Command } from 'commander';
import { auditMigration, type AuditReport } from '../src/audit/verify';
import { ExitCode } from '../src/config/errors';
import { formatBytes, loadSites, out } from './common';

export function printAudit(r: AuditReport): void {
  out(`verify ${r.migrationId}: ${r.manifests} manifest(s), ${r.users} user(s), ${r.objects} object(s), ${formatBytes(r.bytes)}; ${r.objectsChecked} object(s) re-read and hashed`);
  if (r.manifests === 0) out('no committed manifest found for this migration in any site');
  if (r.rolledBack > 0) out(`${r.rolledBack} user(s) rolled back: their manifests are marked so and their objects were not checked`);
  if (r.cutOver > 0) out(`${r.cutOver} user(s) cut over: their prefix was listed in every source; ${r.residue} object(s) found there`);
  for (const p of r.problems.slice(0, 50)) {
    if (p.kind === 'incomplete') out(`INCOMPLETE user ${p.userId}: ${p.problem}`);
    else if (p.kind === 'unlisted') out(`UNLISTED site ${p.site} key ${JSON.stringify(p.key)} (user ${p.userId}): ${p.problem}`);
    else if (p.kind === 'residue') out(`OUTSIDE-EEA site ${p.site} key ${JSON.stringify(p.key)} (user ${p.userId}): ${p.problem}`);
    else out(`${p.kind === 'error' ? 'ERROR' : 'MISMATCH'} site ${p.site} ${p.manifest}${p.key !== undefined ? ` key ${JSON.stringify(p.key)}` : ''}: ${p.problem}`);
  }
  if (r.problems.length > 50) out(`... and ${r.problems.length - 50} more (--json lists every one)`);
  const errors = r.problems.filter((p) => p.kind === 'error').length;
  const residue = r.problems.filter((p) => p.kind === 'residue').length;
  const incomplete = r.problems.filter((p) => p.kind === 'incomplete').length;
  const unlisted = r.problems.filter((p) => p.kind === 'unlisted').length;
  if (r.listedUsers !== undefined) out(`${r.listedUsers} user(s) in the stored user list: ${r.listedUsers - r.incomplete} with a committed manifest, ${r.incomplete} without`);
  out(r.ok
    ? 'OK: every manifest digest holds, every object matches its SHA-256, and nothing of a cut-over user is left in a source'
    : `FAILED: ${r.problems.length - errors - residue - incomplete - unlisted} mismatch(es), ${residue} object(s) still in a source after cut-over, ${errors} read error(s)` +
      `${incomplete ? `, ${incomplete} user(s) without a committed manifest` : ''}${unlisted ? `, ${unlisted} object(s) in an EU site that no manifest lists` : ''}`);
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('auditor\'s check from storage alone: manifests, digests, the SHA-256 of every object, nothing left in a source after cut-over, every listed user has a manifest, and no EU object that no manifest lists')
    .argument('<migrationId>')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .option('--json', 'print the report as JSON')
    .action(async (id: string, o: { sites?: string; json?: boolean }) => {
      const report = await auditMigration(loadSites(o.sites), id);
      if (o.json) out(JSON.stringify(report, null, 2));
      else printAudit(report);
      process.exitCode = report.ok ? ExitCode.ok : ExitCode.failures;
    });
}
