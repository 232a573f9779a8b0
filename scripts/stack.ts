import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../src/config/errors';
import { defaultPorts, stackStatus, startStack, stopStack } from '../src/stack/local-stack';
import { ensureTools } from '../src/stack/tools';

/** The local stack lives in `.clover/` under the project root (or CLOVER_STACK_DIR). */
export function stackDir(): string {
  return resolve(process.env.CLOVER_STACK_DIR ?? resolve(__dirname, '..', '.clover'));
}

const say = (l: string) => process.stdout.write(`${l}\n`);

export async function stackUp(): Promise<void> {
  const ports = defaultPorts();
  const tools = await ensureTools();
  const state = await startStack({ dir: stackDir(), tools, ports, say });
  say('');
  say(`Temporal:   ${state.temporalAddress} (namespace default)`);
  say(`Web UI:     ${state.uiUrl}`);
  for (const [name, port] of Object.entries(ports.sites)) say(`S3 ${name.padEnd(6)}  http://127.0.0.1:${port}`);
  say(`Sites file: ${state.sitesFile}`);
  if (state.signingKeyFile) say(`Signing key: ${state.signingKeyFile} (evidence; used by default with this sites file)`);
  if (state.auditorSitesFile) say(`Auditor sites file: ${state.auditorSitesFile} (read-only accounts: clover verify ID --sites ${state.auditorSitesFile} --public-key ${state.signingKeyFile ? state.signingKeyFile.replace(/\.pem$/, '.pub.pem') : 'FILE'})`);
  say(`Logs:       ${state.dir}/logs/`);
}

export function registerStack(program: Command): void {
  program
    .command('stack')
    .description('the local stack: a Temporal dev server and four S3 sites (sg, us, eu-ie, eu-no)')
    .argument('<action>', 'up | down | status')
    .option('--wipe', 'with down: also delete the stack\'s data (workflows and objects)')
    .action(async (action: string, opts: { wipe?: boolean }) => {
      if (action === 'up') return stackUp();
      if (action === 'down') {
        const n = await stopStack(stackDir(), { wipe: opts.wipe, say });
        if (n === 0) say('no stack process was running');
        return;
      }
      if (action === 'status') {
        const { state, services } = await stackStatus(stackDir());
        if (!state || services.length === 0) {
          say('the local stack is not running (start it with `npm run stack -- up`)');
          return;
        }
        for (const s of services) {
          say(`${s.name.padEnd(14)} pid ${String(s.pid).padEnd(8)} port ${String(s.port).padEnd(6)} ${s.running ? (s.answering ? 'running' : 'running, not answering') : 'stopped'}`);
        }
        say(`web UI ${state.uiUrl}; sites file ${state.sitesFile}`);
        return;
      }
      throw new InputError(`unknown stack action "${action}": use up, down or status`);
    });
}
