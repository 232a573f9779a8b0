import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadPlan, usersTotal } from '../src/config/plan';
import { migrationListUiUrl, workflowUiUrl } from '../src/config/temporal';
import { startMigration } from '../src/operator/migrations';
import { operatorActor } from '../src/evidence/keys';
import { connectClient, loadSites, out } from './common';
import { cliSigningKey, runRecorded } from './record';
import { printFinal, watch } from './progress';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('validate a plan and start its migration (or attach to it if it already runs)')
    .requiredOption('--plan <file>', 'plan file (JSON; see README "Plan file")')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .option('--wait', 'show progress and exit 0 only when every user is migrated and verified, 1 if some failed')
    .action(async (o: { plan: string; sites?: string; wait?: boolean }) => {
      const sites = loadSites(o.sites);
      const plan = await loadPlan(resolve(o.plan), sites);
      const key = cliSigningKey(o.sites);
      const { client, cfg, close } = await connectClient();
      try {
        const evidence = key && { key, actor: operatorActor(), args: { plan: resolve(o.plan), wait: o.wait === true } };
        const r = await startMigration(client, sites, plan, cfg.taskQueue, evidence);
        const intent = key && r.intent && {
          sites, ledgerSite: plan.settings.routing.default, key, migrationId: plan.settings.migrationId, command: 'start', record: r.intent, retention: plan.settings.evidenceRetention,
        };
        // The result of a new start: accepted once its workflow runs (what --wait then shows is the migration's, not the command's).
        await runRecorded(intent, async () => undefined);
        const verb = { started: 'started', attached: 'is already running; attached to', finished: 'already finished:' }[r.state];
        out(`migration ${plan.settings.migrationId} ${verb} ${r.workflowId} (${usersTotal(plan)} users)`);
        out(`web UI: ${workflowUiUrl(cfg, r.workflowId)}`);
        out(`users:  ${migrationListUiUrl(cfg, plan.settings.migrationId)}`);
        if (o.wait || r.state === 'finished') {
          const s = await watch(client, plan.settings.migrationId);
          process.exitCode = printFinal(s);
        }
      } finally {
        await close();
      }
    });
}
