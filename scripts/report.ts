import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { residencyReport, USER_STATES, type ResidencyReport } from '../src/audit/report';
import { headline, renderReportHtml } from '../src/audit/report-html';
import { ExitCode } from '../src/config/errors';
import { formatBytes, loadSites, out } from './common';

/** Users named per list in the text summary, at most (--json names every one). */
const NAMED = 50;

export function printReport(r: ResidencyReport): void {
  out(`report ${r.migrationId} at ${r.generatedAt}: ${headline(r)}`);
  printResidency(r);
}

/** The report's lines after its headline: per jurisdiction and site, users per state, users with data outside the EEA (also `clover verify`'s). */
export function printResidency(r: ResidencyReport, indent = ''): void {
  const say = (line: string) => out(`${indent}${line}`);
  for (const j of ['EEA', 'outside EEA'] as const) {
    const sites = r.sites.filter((s) => s.jurisdiction === j);
    const sum = (f: (s: (typeof sites)[number]) => number) => sites.reduce((n, s) => n + f(s), 0);
    say(`${j}: ${sum((s) => s.objects)} object(s), ${formatBytes(sum((s) => s.bytes))}`);
    for (const s of sites) say(`  site ${s.name} (${s.region}, ${s.country}, ${s.role}): ${s.users} user(s), ${s.objects} object(s), ${formatBytes(s.bytes)}`);
  }
  say(`users: ${USER_STATES.map((s) => `${r.totals.byState[s]} ${s}`).join(', ')} (of ${r.totals.users})`);
  const outside = r.users.filter((u) => u.stillOutsideEEA.objects > 0);
  for (const u of outside.slice(0, NAMED)) {
    say(`OUTSIDE-EEA user ${u.userId} (${u.state}): ${u.stillOutsideEEA.objects} object(s), ${formatBytes(u.stillOutsideEEA.bytes)} in ${u.stillOutsideEEA.sites.join(', ')}`);
  }
  if (outside.length > NAMED) say(`... and ${outside.length - NAMED} more user(s) with data outside the EEA (--json lists every one)`);
  const unknown = r.users.filter((u) => u.errors?.length);
  for (const u of unknown.slice(0, NAMED)) say(`UNKNOWN user ${u.userId}: ${u.errors!.join('; ')}`);
  if (unknown.length > NAMED) say(`... and ${unknown.length - NAMED} more user(s) whose sources could not all be listed`);
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('residency report from storage alone: per site and jurisdiction users, objects and bytes; per user where its data is and what is still outside the EEA')
    .argument('<migrationId>')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .option('--json', 'print the full report as JSON')
    .option('--html <file>', 'also write the report as one self-contained HTML page')
    .action(async (id: string, o: { sites?: string; json?: boolean; html?: string }) => {
      const report = await residencyReport(loadSites(o.sites), id);
      if (o.html) writeFileSync(o.html, renderReportHtml(report));
      if (o.json) out(JSON.stringify(report, null, 2));
      else {
        printReport(report);
        if (o.html) out(`HTML report written to ${o.html}`);
      }
      process.exitCode = ExitCode.ok;
    });
}
