import type { Command } from 'commander';
import { cutover } from '../src/operator/lifecycle';
import { connectClient, out } from './common';

export function registerCutover(program: Command): void {
  program
    .command('cutover')
    .description('end the grace period now and delete the sources that still match (one user, or all waiting); approves deletions above maxDeletes')
    .argument('<migrationId>')
    .option('--user <userId>', 'only this user')
    .action(async (id: string, o: { user?: string }) => {
      const { client, close } = await connectClient();
      try {
        const n = await cutover(client, id, o.user);
        out(`cutover sent to ${n} user(s) of migration ${id}`);
      } finally {
        await close();
      }
    });
}
