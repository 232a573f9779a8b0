import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CloverError, ExitCode } from '../config/errors';

export interface ToolPaths {
  temporal: string;
  versitygw: string;
  /** Toxiproxy's server (the tests inject network faults with it; the stack itself does not run it). */
  toxiproxy: string;
}

/**
 * Runs scripts/bootstrap-tools.sh, which finds or builds the `temporal`, `versitygw` and toxiproxy binaries
 * (see README "Tools"). Its progress goes to our stderr; its stdout names the binaries.
 */
export async function ensureTools(): Promise<ToolPaths> {
  const script = join(__dirname, '..', '..', 'scripts', 'bootstrap-tools.sh');
  const out: Buffer[] = [];
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  });
  const vars = Object.fromEntries(
    Buffer.concat(out)
      .toString('utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  if (code !== 0 || !vars.CLOVER_TEMPORAL_BIN || !vars.CLOVER_VERSITYGW_BIN || !vars.CLOVER_TOXIPROXY_BIN) {
    throw new CloverError('the temporal, versitygw and toxiproxy tools are not available (see the line above for why)', ExitCode.unreachable);
  }
  return { temporal: vars.CLOVER_TEMPORAL_BIN, versitygw: vars.CLOVER_VERSITYGW_BIN, toxiproxy: vars.CLOVER_TOXIPROXY_BIN };
}
