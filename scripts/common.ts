import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { UnreachableError } from '../src/config/errors';
import { loadSitesFile, type Sites } from '../src/config/sites';
import { temporalConfig, type TemporalConfig } from '../src/config/temporal';
import { defaultSigningKeyFile, loadSigningKey } from '../src/evidence/keys';
import type { SigningKey } from '../src/evidence/ledger';

/** `--sites`, else CLOVER_SITES, else the local stack's generated file. */
export function sitesPath(opt?: string): string {
  return resolve(opt ?? process.env.CLOVER_SITES ?? resolve(process.env.CLOVER_STACK_DIR ?? resolve(__dirname, '..', '.clover'), 'local-sites.json'));
}

export function loadSites(opt?: string): Sites {
  return loadSitesFile(sitesPath(opt));
}

/** The evidence signing key for the sites file in use: CLOVER_SIGNING_KEY_FILE, else the local stack's (see defaultSigningKeyFile). */
export function signingKeyPath(sitesOpt?: string): string | undefined {
  return defaultSigningKeyFile(sitesPath(sitesOpt));
}

/** The signing key itself (undefined when none is configured); an InputError names a bad key file. */
export function loadSigningKeyFor(sitesOpt?: string): SigningKey | undefined {
  return loadSigningKey(process.env, { sitesFile: sitesPath(sitesOpt) });
}

export async function connectClient(): Promise<{ client: Client; cfg: TemporalConfig; close: () => Promise<void> }> {
  const cfg = temporalConfig();
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: cfg.address, tls: cfg.tls, apiKey: cfg.apiKey, connectTimeout: 5000 });
    await connection.workflowService.getSystemInfo({});
  } catch (err) {
    throw new UnreachableError(`cannot reach Temporal at ${cfg.address}: ${(err as Error).message} (start the local stack with \`npm run stack -- up\`, or set TEMPORAL_ADDRESS)`);
  }
  return { client: new Client({ connection, namespace: cfg.namespace }), cfg, close: () => connection.close() };
}

export const out = (line = '') => process.stdout.write(`${line}\n`);

/** Bytes for people (1024-based units): one definition, shared with the HTML report. */
export { humanBytes as formatBytes } from '../src/audit/report-html';
