import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../src/config/errors';
import { exportEvidence } from '../src/evidence/bundle';
import { readPublicKeyFile } from '../src/evidence/keys';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import { loadSigningKeyFor, loadSites, out, signingKeyPath } from './common';

export function registerEvidence(program: Command): void {
  const evidence = program.command('evidence').description('the migration\'s signed evidence (ledger, manifests) for an independent auditor');
  evidence
    .command('export')
    .description('write a self-contained evidence bundle (ledger, manifests, user list, public key, README) that `clover verify --evidence` checks offline')
    .argument('<migrationId>')
    .requiredOption('--out <dir>', 'a new (or empty) folder for the bundle')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .option('--public-key <file>', 'public key to put in the bundle (default: the public half of CLOVER_SIGNING_KEY_FILE\'s key)')
    .action(async (id: string, o: { out: string; sites?: string; publicKey?: string }) => {
      let publicKey;
      let pem: string;
      if (o.publicKey) {
        publicKey = readPublicKeyFile(o.publicKey);
        pem = readFileSync(o.publicKey, 'utf8');
      } else {
        const key = loadSigningKeyFor(o.sites);
        if (!key) throw new InputError('no signing key: set CLOVER_SIGNING_KEY_FILE or give --public-key FILE (the public key the ledger is signed with)');
        publicKey = key.publicKey;
        pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      }
      const clients = createSiteClients(loadSites(o.sites), { maxSockets: 8 });
      try {
        const s = await exportEvidence(clients, id, resolve(o.out), pem, publicKey);
        out(`evidence of ${id} exported to ${resolve(o.out)}: ${s.records} ledger record(s) from site ${s.ledgerSite}, ${s.manifestFiles} manifest file(s), ${s.users} user(s) listed`);
        out(`head record hash ${s.headHash ?? 'none'}; key id ${s.keyId}${o.publicKey ? '' : ` (from ${signingKeyPath(o.sites)})`}`);
        out(`check it offline: clover verify --evidence ${resolve(o.out)} --public-key ${resolve(o.out, 'signing-key.pub.pem')}`);
      } finally {
        destroySiteClients(clients);
      }
    });
}
