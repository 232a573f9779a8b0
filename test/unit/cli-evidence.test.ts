import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { recordOperatorCommand } from '../../scripts/record';

/** A command that cannot record evidence says so in one line and goes on (no throw, Temporal untouched). */
describe('operator commands without evidence', () => {
  const saved = process.env.CLOVER_SIGNING_KEY_FILE;
  let lines: string[];
  let spy: jest.SpyInstance;
  beforeEach(() => {
    lines = [];
    spy = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (lines.push(String(s)), true));
  });
  afterEach(() => {
    spy.mockRestore();
    if (saved === undefined) delete process.env.CLOVER_SIGNING_KEY_FILE;
    else process.env.CLOVER_SIGNING_KEY_FILE = saved;
  });
  const untouched = new Proxy({}, { get: () => { throw new Error('Temporal must not be asked'); } }) as Client;

  it('no signing key: one warning line, nothing recorded', async () => {
    delete process.env.CLOVER_SIGNING_KEY_FILE;
    // A sites file that is not a local stack's: no key beside it either.
    await expect(recordOperatorCommand({ client: untouched, migrationId: 'm', command: 'pause', args: {}, sitesFile: join(tmpdir(), 'sites.json') })).resolves.toBeUndefined();
    expect(lines).toEqual(['no signing key (CLOVER_SIGNING_KEY_FILE): this command is not recorded in the evidence ledger\n']);
  });

  it('a key but no readable sites file: one warning line, nothing recorded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clover-cli-evidence-'));
    const file = join(dir, 'signing-key.pem');
    writeFileSync(file, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    process.env.CLOVER_SIGNING_KEY_FILE = file;
    await expect(recordOperatorCommand({ client: untouched, migrationId: 'm', command: 'sync', args: {}, sitesFile: join(dir, 'missing-sites.json') })).resolves.toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^cannot load the sites file .*: this command is not recorded in the evidence ledger\n$/);
  });
});
