import type { Command } from 'commander';
import { ExitCode } from '../src/config/errors';
import { workflowUiUrl } from '../src/config/temporal';
import { startRollback } from '../src/operator/lifecycle';
import { migrationInput, requireConditionalDeletes } from '../src/operator/migrations';
import { routingTargets } from '../src/domain/routing';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import type { RollbackResult } from '../src/workflows/definitions';
import { connectClient, loadSites, out } from './common';
import { recordOperatorCommand, runRecorded } from './record';

export function printRollback(r: RollbackResult): number {
  const c = r.counters;
  out(`rollback of ${r.migrationId}: ${r.phase}`);
  out(`users: ${c.users}; sources restored: ${c.restored}; EU copies removed: ${c.targetDeleted}; partial copies removed: ${c.partialDeleted}; kept: ${c.kept}; uploads aborted: ${c.uploadsAborted}`);
  // Erased objects are what the application deleted: never restored, and not a failure of the rollback.
  const erased = c.erased ?? 0;
  if (erased > 0) out(`erased (not restored: the application erased them; not a problem): ${erased}`);
  for (const e of (r.erased ?? []).slice(0, 20)) out(`ERASED user ${e.userId} key ${JSON.stringify(e.key)}: ${e.reason}`);
  if (erased > (r.erased ?? []).length && (r.erased ?? []).length > 0) out(`... and ${erased - (r.erased ?? []).length} more erased`);
  for (const p of r.problems) out(`KEPT user ${p.userId}${p.key !== undefined ? ` key ${JSON.stringify(p.key)}` : ''}: ${p.problem}`);
  return r.phase === 'rolled-back' ? ExitCode.ok : ExitCode.failures;
}

export function registerRollback(program: Command): void {
  program
    .command('rollback')
    .description('undo a migration (cancelling it first if it runs): restore deleted sources, remove the EU copies that still match')
    .argument('<migrationId>')
    .option('--user <userId...>', 'only these users')
    .option('--wait', 'wait for the rollback and print what it did; exit 0 only if nothing had to be kept (erased objects are reported, not failures)')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .action(async (id: string, o: { user?: string[]; wait?: boolean; sites?: string }) => {
      const sites = loadSites(o.sites);
      const { client, cfg, close } = await connectClient();
      try {
        // Rollback deletes EU copies: only where the store is proven to enforce conditional deletes.
        const { input } = await migrationInput(client, id);
        const clients = createSiteClients(sites, { maxSockets: 4 });
        try {
          await requireConditionalDeletes(clients, routingTargets(input.settings.routing));
        } finally {
          destroySiteClients(clients);
        }
        const intent = await recordOperatorCommand({
          client, migrationId: id, command: 'rollback', args: { users: o.user ?? 'all', wait: o.wait === true }, sites, sitesFile: o.sites,
          ledgerSite: input.usersSite, retention: input.settings.evidenceRetention,
        });
        await runRecorded(intent, async () => {
          const h = await startRollback(client, id, o.user);
          out(`rollback of ${id} running: ${workflowUiUrl(cfg, h.workflowId)}`);
          if (o.wait) process.exitCode = printRollback(await h.result());
        });
      } finally {
        await close();
      }
    });
}
