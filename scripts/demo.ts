import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { auditMigration } from '../src/audit/verify';
import { ExitCode } from '../src/config/errors';
import { loadPlan } from '../src/config/plan';
import { migrationListUiUrl, workflowUiUrl } from '../src/config/temporal';
import { demoDataSet, seedObjects } from '../src/demo/seed';
import { startMigration } from '../src/operator/migrations';
import { exportEvidence } from '../src/evidence/bundle';
import { operatorActor } from '../src/evidence/keys';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import { connectClient, loadSites, out, sitesPath } from './common';
import { cliSigningKey, recordCommandResult } from './record';
import { printFinal, watch } from './progress';
import { stackDir, stackUp } from './stack';
import { printAudit, verifyEvidence } from './verify';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('bring the local stack up, seed sg and us with ~200 users, migrate them to the EU, verify')
    .option('--users <n>', 'number of demo users', (v) => Number(v), 200)
    .action(async (o: { users: number }) => {
      await stackUp();
      const sites = loadSites();
      const migrationId = `demo-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
      // Each run's users live under a prefix of their own: an EU object belongs to the migration that wrote
      // it, so a second demo over the first one's keys would (rightly) refuse to adopt them.
      const root = `demo/${migrationId}/users/`;
      const data = demoDataSet(o.users, undefined, undefined, root);
      out('');
      out(`seeding sg and us with ${data.users.length} users, ${data.objects.length + data.later.length} objects...`);
      const seeded = await seedObjects(sites, data.objects);
      await sleep(1100); // S3 LastModified has 1 s resolution: the conflicting "newer" copy must be visibly newer
      await seedObjects(sites, data.later);
      out(`seeded: ${seeded.written} written, ${seeded.present} already there`);

      const dir = join(stackDir(), 'demo');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'users.jsonl'), data.users.map((u) => JSON.stringify(u)).join('\n') + '\n');
      const planFile = join(dir, `${migrationId}.json`);
      writeFileSync(planFile, JSON.stringify({
        migrationId, sources: ['sg', 'us'],
        routing: { default: 'eu-ie', byCountry: { NO: 'eu-no', SE: 'eu-no', DK: 'eu-no', FI: 'eu-no', IS: 'eu-no' } },
        usersFile: 'users.jsonl', userPrefix: `${root}{userId}/`, verify: 'full', conflictPolicy: 'newest-wins', concurrency: { users: 8, objectsPerUser: 16 },
      }, null, 2));
      const plan = await loadPlan(planFile, sites);

      const logFile = join(stackDir(), 'logs', 'demo-worker.log');
      const fd = openSync(logFile, 'a');
      const worker = spawn(resolve(__dirname, '..', 'bin', 'clover.js'), ['worker', '--sites', sitesPath()], { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      out(`worker started (pid ${worker.pid}); its logs: ${logFile}`);
      const { client, cfg, close } = await connectClient();
      try {
        const key = cliSigningKey(sitesPath());
        const r = await startMigration(client, sites, plan, cfg.taskQueue, key && { key, actor: operatorActor(), args: { demo: true } });
        if (key && r.intent) {
          await recordCommandResult(
            { sites, ledgerSite: plan.settings.routing.default, key, migrationId, command: 'start', record: r.intent, retention: plan.settings.evidenceRetention },
            { outcome: 'accepted', exitCode: 0 },
          );
        }
        out(`migration ${migrationId} started: ${workflowUiUrl(cfg, r.workflowId)}`);
        const final = await watch(client, migrationId);
        out('');
        const code = printFinal(final);
        out('');
        out('auditor\'s check (clover verify, from storage alone):');
        const audit = await auditMigration(sites, migrationId);
        printAudit(audit);
        // The overseer's side: the evidence bundle, exported and checked offline with the public key alone.
        let evidenceOk = true;
        if (key) {
          out('');
          out('evidence (clover evidence export, then clover verify --evidence: offline, public key only):');
          const bundleDir = join(stackDir(), 'demo', `${migrationId}-evidence`);
          const publicKeyPem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
          const clients = createSiteClients(sites, { maxSockets: 8 });
          try {
            const b = await exportEvidence(clients, migrationId, bundleDir, publicKeyPem, key.publicKey);
            out(`exported ${b.records} ledger record(s) to ${bundleDir}`);
          } finally {
            destroySiteClients(clients);
          }
          evidenceOk = verifyEvidence(bundleDir, join(bundleDir, 'signing-key.pub.pem'), migrationId) === ExitCode.ok;
        }
        out('');
        out(`plan:    ${planFile}`);
        out(`web UI:  ${workflowUiUrl(cfg, r.workflowId)}`);
        out(`users:   ${migrationListUiUrl(cfg, migrationId)}`);
        out(`again:   npx clover verify ${migrationId}`);
        out(`report:  npx clover report ${migrationId} --html ${join(dir, `${migrationId}-report.html`)}`);
        process.exitCode = code === ExitCode.ok && audit.ok && evidenceOk ? ExitCode.ok : ExitCode.failures;
      } finally {
        await close();
        worker.kill('SIGTERM');
        await new Promise((ok) => (worker.exitCode !== null ? ok(null) : worker.once('exit', ok)));
      }
    });
}
