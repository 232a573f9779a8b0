import type { Command } from 'commander';
import { stackUp } from './stack';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('bring the local stack up and run the demo migration')
    .action(async () => {
      await stackUp();
    });
}
