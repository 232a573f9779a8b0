import type { Command } from 'commander';
import { cutoverUsers } from '../src/operator/lifecycle';
import { cutoverExitCode, cutoverLines, cutoverSummary } from '../src/operator/pass-results';
import { connectClient, out } from './common';
import { recordOperatorCommand, runRecorded } from './record';

export function registerCutover(program: Command): void {
  program
    .command('cutover')
    .description('cut users over: final pass, then delete the sources that still match (the named users, or every user waiting); approves deletions above maxDeletes')
    .argument('<migrationId>')
    .option('--user <userId...>', 'only these users (repeatable); a finished user not yet cut over gets a cut-over run of its own')
    .option('--wait', 'wait for each user\'s cut-over and print what it deleted and the residue; exit 0 only if every user was cut over with no residue')
    .option('--sites <file>', 'sites file, for the evidence ledger (default: CLOVER_SITES, else the local stack\'s)')
    .action(async (id: string, o: { user?: string[]; wait?: boolean; sites?: string }) => {
      const { client, close } = await connectClient();
      try {
        const intent = await recordOperatorCommand({ client, migrationId: id, command: 'cutover', args: { users: o.user ?? 'all', wait: o.wait === true }, sitesFile: o.sites });
        await runRecorded(intent, async () => {
          const results = await cutoverUsers(client, id, o.user, o.wait === true);
          const sent = results.filter((r) => r.kind !== 'refused' || o.wait).length;
          if (!o.wait) out(`cutover sent to ${sent} user(s) of migration ${id}`);
          const lines = results.flatMap(cutoverLines);
          for (const l of lines) out(l);
          const summary = cutoverSummary(results);
          if (summary && results.length > 0) out(summary);
          // Nothing named and nothing waiting is not a failure: there was nothing to cut over.
          process.exitCode = results.length === 0 && !o.user?.length ? 0 : cutoverExitCode(results);
          return process.exitCode === 0 ? undefined : lines.join('; ');
        });
      } finally {
        await close();
      }
    });
}
