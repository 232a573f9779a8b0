import { Command, CommanderError } from 'commander';
import { CloverError, ExitCode } from '../src/config/errors';
import { registerStack } from './stack';
import { registerDemo } from './demo';
import { registerWorker } from './worker';
import { registerStart } from './start';
import { registerStatus } from './status';
import { registerVerify } from './verify';
import { registerEstimate } from './estimate';
import { registerReport } from './report';
import { registerRetry } from './retry';
import { registerPause } from './pause';
import { registerCancel } from './cancel';
import { registerCutover } from './cutover';
import { registerSync } from './sync';
import { registerRollback } from './rollback';
import { registerKeygen } from './keygen';
import { registerEvidence } from './evidence';
import { registerBench } from '../bench/bench';
import { registerBenchDelta } from '../bench/delta';

/**
 * `clover` entry point: one subcommand per file under scripts/. Every failure ends here and prints one
 * line (what went wrong and what to do) with the exit code README documents; `CLOVER_DEBUG=1` adds the stack.
 */
export function main(argv: string[]): void {
  const program = new Command('clover')
    .description('Clover: moves each user\'s data shard into the EU site chosen for that user, verified end to end.')
    .showHelpAfterError('(run `clover --help` for usage)')
    .exitOverride();
  registerStack(program);
  registerDemo(program);
  registerWorker(program);
  registerStart(program);
  registerStatus(program);
  registerVerify(program);
  registerEstimate(program);
  registerReport(program);
  registerRetry(program);
  registerPause(program);
  registerCancel(program);
  registerSync(program);
  registerCutover(program);
  registerRollback(program);
  registerKeygen(program);
  registerEvidence(program);
  registerBench(program);
  registerBenchDelta(program);
  program.parseAsync(argv).catch(fail);
}

export function fail(err: unknown): never {
  if (err instanceof CommanderError) {
    // commander already printed its message (unknown option, missing argument, --help).
    process.exit(err.exitCode === 0 ? 0 : ExitCode.badInput);
  }
  if (err instanceof CloverError) {
    process.stderr.write(`clover: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const e = err as Error;
  process.stderr.write(`clover: unexpected error: ${e?.message ?? String(err)}${process.env.CLOVER_DEBUG ? `\n${e?.stack}` : ' (set CLOVER_DEBUG=1 for details)'}\n`);
  process.exit(ExitCode.unreachable);
}
