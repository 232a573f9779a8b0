import type { Command } from 'commander';
import { workflowUiUrl } from '../src/config/temporal';
import { retryMigration } from '../src/operator/migrations';
import { connectClient, out } from './common';
import { printFinal, watch } from './progress';

export function registerRetry(program: Command): void {
  program
    .command('retry')
    .description('re-run the failed users of a finished migration (users already committed are skipped)')
    .argument('<migrationId>')
    .option('--wait', 'show progress and exit 0 only when every user is migrated')
    .action(async (id: string, o: { wait?: boolean }) => {
      const { client, cfg, close } = await connectClient();
      try {
        const h = await retryMigration(client, id);
        out(`retrying migration ${id}: ${workflowUiUrl(cfg, h.workflowId)}`);
        if (o.wait) process.exitCode = printFinal(await watch(client, id));
      } finally {
        await close();
      }
    });
}
