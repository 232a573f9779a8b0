import type { Command } from 'commander';
import { cancelMigration } from '../src/operator/lifecycle';
import { connectClient, out } from './common';

export function registerCancel(program: Command): void {
  program
    .command('cancel')
    .description('stop a running migration and its users cleanly (uploads aborted; finished users keep their manifests)')
    .argument('<migrationId>')
    .action(async (id: string) => {
      const { client, close } = await connectClient();
      try {
        const s = await cancelMigration(client, id);
        out(`migration ${id} cancelled: ${s.usersDone} user(s) had finished (manifests committed), ${s.usersCancelled} stopped, ${s.usersFailed} failed`);
        out(`undo what was copied with: npx clover rollback ${id}`);
      } finally {
        await close();
      }
    });
}
