import type { Command } from 'commander';
import { auditMigration, type AuditReport } from '../src/audit/verify';
import { ExitCode } from '../src/config/errors';
import { formatBytes, loadSites, out } from './common';

export function printAudit(r: AuditReport): void {
  out(`verify ${r.migrationId}: ${r.manifests} manifest(s), ${r.users} user(s), ${r.objects} object(s), ${formatBytes(r.bytes)}; ${r.objectsChecked} object(s) re-read and hashed`);
  if (r.manifests === 0) out('no committed manifest found for this migration in any site');
  if (r.rolledBack > 0) out(`${r.rolledBack} user(s) rolled back: their manifests are marked so and their objects were not checked`);
  for (const p of r.problems.slice(0, 50)) out(`${p.kind === 'error' ? 'ERROR' : 'MISMATCH'} site ${p.site} ${p.manifest}${p.key !== undefined ? ` key ${JSON.stringify(p.key)}` : ''}: ${p.problem}`);
  if (r.problems.length > 50) out(`... and ${r.problems.length - 50} more`);
  const errors = r.problems.filter((p) => p.kind === 'error').length;
  out(r.ok ? 'OK: every manifest digest holds and every object matches its SHA-256' : `FAILED: ${r.problems.length - errors} mismatch(es), ${errors} read error(s)`);
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('auditor\'s check from storage alone: manifests, digests and the SHA-256 of every object')
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
