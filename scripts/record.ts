import type { Client } from '@temporalio/client';
import type { Sites } from '../src/config/sites';
import { operatorActor } from '../src/evidence/keys';
import type { SigningKey } from '../src/evidence/ledger';
import { appendLedger } from '../src/evidence/storage';
import { migrationInput } from '../src/operator/migrations';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import { loadSigningKeyFor, loadSites } from './common';

const warn = (line: string) => process.stderr.write(`${line}\n`);

/**
 * The CLI's evidence key, or undefined (one warning on stderr) when CLOVER_SIGNING_KEY_FILE is unset:
 * the command goes on unrecorded. A key file that is set but unreadable is an error.
 */
export function cliSigningKey(sitesOpt?: string): SigningKey | undefined {
  const key = loadSigningKeyFor(sitesOpt);
  if (!key) warn('no signing key (CLOVER_SIGNING_KEY_FILE): this command is not recorded in the evidence ledger');
  return key;
}

/**
 * Records an accepted operator command (`operator-command`: the command, its arguments, who ran it, from
 * which host) in the migration's ledger, in the site of its user list (the plan's default target).
 * Without a key: one warning, nothing recorded. Sites file unreadable (a command that did not need one
 * before): a warning, nothing recorded. A failed append fails the command, before it acts.
 */
export async function recordOperatorCommand(opts: {
  client: Client; migrationId: string; command: string; args: Record<string, unknown>;
  sites?: Sites; sitesFile?: string; ledgerSite?: string;
}): Promise<void> {
  const key = cliSigningKey(opts.sitesFile);
  if (!key) return;
  let sites = opts.sites;
  if (!sites) {
    try {
      sites = loadSites(opts.sitesFile);
    } catch (err) {
      warn(`cannot load the sites file (${(err as Error).message}): this command is not recorded in the evidence ledger`);
      return;
    }
  }
  const ledgerSite = opts.ledgerSite ?? (await migrationInput(opts.client, opts.migrationId)).input.usersSite;
  const clients = createSiteClients(sites, { maxSockets: 2 });
  try {
    const site = clients.get(ledgerSite);
    if (!site) {
      warn(`site ${ledgerSite} (the migration's ledger) is not in the sites file: this command is not recorded in the evidence ledger`);
      return;
    }
    await appendLedger(site, opts.migrationId, key, {
      type: 'operator-command', actor: operatorActor(), data: { command: opts.command, migrationId: opts.migrationId, args: opts.args },
    }, AbortSignal.timeout(60_000));
  } finally {
    destroySiteClients(clients);
  }
}
