import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrationStatus } from '../src/operator/migrations';
import { connectClient, out } from './common';
import { statusRidingOut, summarize } from './progress';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('users done/failed/in flight, objects, bytes, rate and ETA of a migration')
    .argument('<migrationId>')
    .option('--json', 'print the status as JSON')
    .option('--watch', 'refresh every 2 seconds until the migration finishes')
    .action(async (id: string, o: { json?: boolean; watch?: boolean }) => {
      const { client, close } = await connectClient();
      try {
        for (;;) {
          // One look exits 3 when no worker answers; --watch waits for one.
          const s = o.watch ? await statusRidingOut(client, id) : await migrationStatus(client, id);
          if (o.json) out(JSON.stringify(s));
          else {
            if (o.watch && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
            for (const l of summarize(s)) out(l);
            for (const f of s.failed) out(`failed user ${f.userId}: ${f.reason}`);
          }
          if (!o.watch || (s.phase !== 'running' && s.phase !== 'paused')) break;
          await sleep(2000);
        }
      } finally {
        await close();
      }
    });
}
