import type { Command } from 'commander';
import { pauseMigration } from '../src/operator/lifecycle';
import { connectClient, out } from './common';
import { recordOperatorCommand, runRecorded } from './record';

/** `clover pause ID` and `clover resume ID`: the two directions of one switch. */
export function registerPause(program: Command): void {
  for (const [name, paused, text] of [['pause', true, 'hold a running migration: no new user starts, running copies stop at their next checkpoint'], ['resume', false, 'go on with a paused migration']] as const) {
    program
      .command(name)
      .description(text)
      .argument('<migrationId>')
      .option('--sites <file>', 'sites file, for the evidence ledger (default: CLOVER_SITES, else the local stack\'s)')
      .action(async (id: string, o: { sites?: string }) => {
        const { client, close } = await connectClient();
        try {
          const intent = await recordOperatorCommand({ client, migrationId: id, command: name, args: {}, sitesFile: o.sites });
          await runRecorded(intent, async () => {
            const s = await pauseMigration(client, id, paused);
            out(paused ? `migration ${id} paused at ${s.pausedAt}; ${s.usersInFlight} user(s) hold at their next checkpoint` : `migration ${id} resumed`);
          });
        } finally {
          await close();
        }
      });
  }
}
