/**
 * Test-only: appends N records to a migration's ledger with appendLedger, as one writer among several.
 * `node -r tsx/cjs test/support/append-ledger.ts <migrationId> <site> <n> <writer> <startAtMs>`; uses CLOVER_SITES
 * and CLOVER_SIGNING_KEY_FILE. Waits until <startAtMs> (epoch ms) so that writers start together. Prints
 * the seqs it got (one line), then `conflicts <n>`: how often another writer took a seq first.
 */
import { loadSitesFile } from '../../src/config/sites';
import { loadSigningKey } from '../../src/evidence/keys';
import { appendLedger } from '../../src/evidence/storage';
import { createSiteClients, destroySiteClients } from '../../src/storage/clients';

async function main(): Promise<void> {
  const [migrationId, siteName, n, writer, startAt] = process.argv.slice(2);
  const key = loadSigningKey();
  if (!key) throw new Error('CLOVER_SIGNING_KEY_FILE is not set');
  const clients = createSiteClients(loadSitesFile(process.env.CLOVER_SITES!), { maxSockets: 4 });
  const site = clients.get(siteName!)!;
  const seqs: number[] = [];
  let conflicts = 0;
  await new Promise((ok) => setTimeout(ok, Math.max(0, Number(startAt) - Date.now())));
  try {
    for (let i = 0; i < Number(n); i++) {
      const r = await appendLedger(site, migrationId!, key, {
        type: 'operator-command', actor: { who: `writer ${writer}`, host: 'test', via: 'worker' }, data: { writer, i },
      }, undefined, () => conflicts++);
      seqs.push(r.seq);
      // A pause between events, as a worker has: without it the writer that wins a race keeps winning.
      await new Promise((ok) => setTimeout(ok, 10 + Math.random() * 40));
    }
  } finally {
    destroySiteClients(clients);
  }
  process.stdout.write(`${seqs.join(' ')}\nconflicts ${conflicts}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
