import type { Command } from 'commander';
import { cancelMigration } from '../src/operator/lifecycle';
import { connectClient, out } from './common';
import { recordOperatorCommand, runRecorded } from './record';

export function registerCancel(program: Command): void {
  program
    .command('cancel')
    .description('stop a running migration and its users cleanly (uploads aborted; finished users keep their manifests)')
    .argument('<migrationId>')
    .option('--sites <file>', 'sites file, for the evidence ledger (default: CLOVER_SITES, else the local stack\'s)')
    .action(async (id: string, o: { sites?: string }) => {
      const { client, close } = await connectClient();
      try {
        const intent = await recordOperatorCommand({ client, migrationId: id, command: 'cancel', args: {}, sitesFile: o.sites });
        await runRecorded(intent, async () => {
          const s = await cancelMigration(client, id);
          out(`migration ${id} cancelled: ${s.usersDone} user(s) had finished (manifests committed), ${s.usersCancelled} stopped, ${s.usersFailed} failed`);
          out(`undo what was copied with: npx clover rollback ${id}`);
        });
      } finally {
        await close();
      }
    });
}
