import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyIdOf, type SigningKey } from '../../src/evidence/ledger';

/** A fresh Ed25519 evidence key, written 0600 to a temporary file (for CLOVER_SIGNING_KEY_FILE). */
export function testSigningKey(): { file: string; key: SigningKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const file = join(mkdtempSync(join(tmpdir(), 'clover-key-')), 'signing-key.pem');
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { file, key: { privateKey, publicKey, keyId: keyIdOf(publicKey) } };
}
