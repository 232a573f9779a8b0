import type { Client } from '@temporalio/client';
import { CloverError, ExitCode } from '../src/config/errors';
import type { Sites } from '../src/config/sites';
import { operatorActor } from '../src/evidence/keys';
import { recordHash, type LedgerRecord, type SigningKey } from '../src/evidence/ledger';
import { appendLedger } from '../src/evidence/storage';
import { migrationInput } from '../src/operator/migrations';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import type { Retention } from '../src/storage/json-records';
import { loadSigningKeyFor, loadSites } from './common';

const warn = (line: string) => process.stderr.write(`${line}\n`);

/** A refusal's reason as recorded, at most. */
const REASON_MAX = 1000;

/**
 * The CLI's evidence key, or undefined (one warning on stderr) when CLOVER_SIGNING_KEY_FILE is unset:
 * the command goes on unrecorded. A key file that is set but unreadable is an error.
 */
export function cliSigningKey(sitesOpt?: string): SigningKey | undefined {
  const key = loadSigningKeyFor(sitesOpt);
  if (!key) warn('no signing key (CLOVER_SIGNING_KEY_FILE): this command is not recorded in the evidence ledger');
  return key;
}

/** An operator command recorded in a ledger (its intent), to which its result is appended. */
export interface CommandIntent {
  sites: Sites;
  ledgerSite: string;
  key: SigningKey;
  migrationId: string;
  command: string;
  record: LedgerRecord;
  retention?: Retention;
}

export interface CommandOutcome {
  /** `accepted`: the command did what was asked (exit 0); `refused`: it did not, or not all of it. */
  outcome: 'accepted' | 'refused';
  exitCode: number;
  reason?: string;
}

/**
 * Records an operator command's intent (`operator-command`: the command, its arguments, who ran it, from
 * which host) in the migration's ledger, in the site of its user list (the plan's default target),
 * before it acts. Without a key: one warning, nothing recorded. Sites file unreadable (a command that
 * did not need one before): a warning, nothing recorded. A failed append fails the command, before it acts.
 */
export async function recordOperatorCommand(opts: {
  client: Client; migrationId: string; command: string; args: Record<string, unknown>;
  sites?: Sites; sitesFile?: string; ledgerSite?: string; retention?: Retention;
}): Promise<CommandIntent | undefined> {
  const key = cliSigningKey(opts.sitesFile);
  if (!key) return undefined;
  let sites = opts.sites;
  if (!sites) {
    try {
      sites = loadSites(opts.sitesFile);
    } catch (err) {
      warn(`cannot load the sites file (${(err as Error).message}): this command is not recorded in the evidence ledger`);
      return undefined;
    }
  }
  let { ledgerSite, retention } = opts;
  if (ledgerSite === undefined) {
    const { input } = await migrationInput(opts.client, opts.migrationId);
    ledgerSite = input.usersSite;
    retention = input.settings.evidenceRetention;
  }
  const clients = createSiteClients(sites, { maxSockets: 2 });
  try {
    const site = clients.get(ledgerSite);
    if (!site) {
      warn(`site ${ledgerSite} (the migration's ledger) is not in the sites file: this command is not recorded in the evidence ledger`);
      return undefined;
    }
    const record = await appendLedger(site, opts.migrationId, key, {
      type: 'operator-command', actor: operatorActor(), data: { command: opts.command, migrationId: opts.migrationId, args: opts.args }, retention,
    }, AbortSignal.timeout(60_000));
    return { sites, ledgerSite, key, migrationId: opts.migrationId, command: opts.command, record, retention };
  } finally {
    destroySiteClients(clients);
  }
}

/**
 * Appends an `operator-result` record naming the intent's seq and hash: accepted or refused, with the
 * reason and the exit code. A failed append warns (the command has already acted; verify then shows
 * its intent without a result, NO-RESULT) and does not change the exit code.
 */
export async function recordCommandResult(intent: CommandIntent | undefined, o: CommandOutcome): Promise<void> {
  if (!intent) return;
  const clients = createSiteClients(intent.sites, { maxSockets: 2 });
  try {
    await appendLedger(clients.get(intent.ledgerSite)!, intent.migrationId, intent.key, {
      type: 'operator-result', actor: operatorActor(), retention: intent.retention,
      data: {
        command: intent.command, migrationId: intent.migrationId, intentSeq: intent.record.seq, intentHash: recordHash(intent.record),
        outcome: o.outcome, exitCode: o.exitCode, ...(o.reason ? { reason: o.reason.slice(0, REASON_MAX) } : {}),
      },
    }, AbortSignal.timeout(60_000));
  } catch (err) {
    warn(`the result of this command could not be recorded in the evidence ledger: ${(err as Error).message}`);
  } finally {
    destroySiteClients(clients);
  }
}

/**
 * Runs an operator command's body between its intent and its result in the ledger. The body returns
 * the reason for a partial refusal (exit code not 0), if any; a thrown error is recorded as refused with
 * its message and exit code, then rethrown for the CLI's one error line.
 */
export async function runRecorded(intent: CommandIntent | undefined, body: () => Promise<string | undefined | void>): Promise<void> {
  let reason: string | undefined | void;
  try {
    reason = await body();
  } catch (err) {
    const exitCode = err instanceof CloverError ? err.exitCode : ExitCode.unreachable;
    await recordCommandResult(intent, { outcome: 'refused', exitCode, reason: (err as Error).message ?? String(err) });
    throw err;
  }
  const exitCode = Number(process.exitCode ?? 0);
  await recordCommandResult(intent, { outcome: exitCode === 0 ? 'accepted' : 'refused', exitCode, ...(reason ? { reason } : {}) });
}
