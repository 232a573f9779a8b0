import type { Command } from 'commander';
import { writeKeyPair } from '../src/evidence/keys';
import { out } from './common';

export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .description('write a new Ed25519 evidence signing key pair: DIR/signing-key.pem (0600) and DIR/signing-key.pub.pem; never replaces one')
    .requiredOption('--out <dir>', 'folder for the key pair (must exist)')
    .action((o: { out: string }) => {
      const k = writeKeyPair(o.out);
      out(`key id:      ${k.keyId}`);
      out(`private key: ${k.privateKeyFile} (mode 0600; set CLOVER_SIGNING_KEY_FILE to it for workers and commands)`);
      out(`public key:  ${k.publicKeyFile} (give this to the auditor)`);
    });
}
