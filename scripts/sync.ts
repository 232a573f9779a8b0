import type { Command } from 'commander';
import { syncUsers } from '../src/operator/lifecycle';
import { syncExitCode, syncLines, syncSummary } from '../src/operator/pass-results';
import { connectClient, out } from './common';
import { recordOperatorCommand, runRecorded } from './record';

export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('run a delta pass for users with a committed manifest: copy what is new or changed in the sources since the last pass, carry erasures, verify, commit a new manifest generation')
    .argument('<migrationId>')
    .option('--user <userId...>', 'only these users (repeatable; default: every user of the migration)')
    .option('--wait', 'wait for each pass and print what it did; exit 0 only if every user\'s pass is in step (no conflict)')
    .option('--sites <file>', 'sites file, for the evidence ledger (default: CLOVER_SITES, else the local stack\'s)')
    .action(async (id: string, o: { user?: string[]; wait?: boolean; sites?: string }) => {
      const { client, close } = await connectClient();
      try {
        const intent = await recordOperatorCommand({ client, migrationId: id, command: 'sync', args: { users: o.user ?? 'all', wait: o.wait === true }, sitesFile: o.sites });
        await runRecorded(intent, async () => {
          const results = await syncUsers(client, id, o.user, o.wait === true);
          const lines = results.flatMap(syncLines);
          for (const l of lines) out(l);
          const summary = syncSummary(results);
          if (summary) out(summary);
          process.exitCode = syncExitCode(results);
          return process.exitCode === 0 ? undefined : [...lines, summary].filter(Boolean).join('; ');
        });
      } finally {
        await close();
      }
    });
}
