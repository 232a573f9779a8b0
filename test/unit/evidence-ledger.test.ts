import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRecord, ledgerProblems, missingResults, recordedFailures, recordHash, resultProblems, signingKeyFromPem, type Actor, type LedgerRecord } from '../../src/evidence/ledger';
import { defaultSigningKeyFile, ensureKeyPair, generateKeyPair, loadSigningKey, operatorActor, writeKeyPair } from '../../src/evidence/keys';
import { InputError } from '../../src/config/errors';

const actor: Actor = { who: 'alice', host: 'ops-1', via: 'cli' };
const key = signingKeyFromPem(generateKeyPair().privatePem);
const other = signingKeyFromPem(generateKeyPair().privatePem);

function chain(n: number, k = key): LedgerRecord[] {
  const out: LedgerRecord[] = [];
  for (let i = 0; i < n; i++) out.push(buildRecord(k, 'wave-1', out.at(-1), { type: 'operator-command', actor, data: { command: `c${i + 1}` } }));
  return out;
}

describe('ledger chain check', () => {
  it('holds for an intact chain, in any order read', () => {
    const c = chain(5);
    expect(ledgerProblems(c, 'wave-1', key.publicKey)).toEqual([]);
    expect(ledgerProblems([...c].reverse(), 'wave-1', key.publicKey)).toEqual([]);
    expect(c[1]!.prev).toBe(recordHash(c[0]!));
  });

  it('names a record deleted in the middle as a gap', () => {
    const c = chain(5);
    const p = ledgerProblems([c[0]!, c[1]!, c[3]!, c[4]!], 'wave-1', key.publicKey);
    expect(p).toContain('record 3 is missing (a gap in the chain)');
  });

  it('names two records swapped (their seqs exchanged): signatures and prev both fail', () => {
    const c = chain(5);
    const swapped = [c[0]!, c[1]!, { ...c[3]!, seq: 3 }, { ...c[2]!, seq: 4 }, c[4]!];
    const p = ledgerProblems(swapped, 'wave-1', key.publicKey);
    expect(p.some((x) => x.startsWith('record 3 (operator-command): its signature does not verify'))).toBe(true);
    expect(p.some((x) => x.startsWith('record 3 (operator-command) does not follow record 2'))).toBe(true);
    expect(p.some((x) => x.startsWith('record 5 (operator-command) does not follow record 4'))).toBe(true);
  });

  it('names a record re-signed with another key', () => {
    const c = chain(4);
    const forged = buildRecord(other, 'wave-1', c[1], { type: 'operator-command', actor, data: { command: 'c3' }, at: c[2]!.at });
    const p = ledgerProblems([c[0]!, c[1]!, forged, c[3]!], 'wave-1', key.publicKey);
    expect(p).toContain(`record 3 (operator-command): its signature does not verify with the given public key (key ${other.keyId})`);
    // Its content changed nothing but the key, yet the next record no longer names it.
    expect(p.some((x) => x.startsWith('record 4 (operator-command) does not follow record 3'))).toBe(true);
  });

  it('names a record edited', () => {
    const c = chain(3);
    const edited = { ...c[1]!, data: { command: 'something else' } };
    const p = ledgerProblems([c[0]!, edited, c[2]!], 'wave-1', key.publicKey);
    expect(p.some((x) => x.startsWith('record 2 (operator-command): its signature does not verify'))).toBe(true);
    expect(p.some((x) => x.startsWith('record 3 (operator-command) does not follow record 2'))).toBe(true);
  });

  it('names a fork: two records with one seq', () => {
    const c = chain(2);
    const rival = buildRecord(key, 'wave-1', c[0], { type: 'operator-command', actor, data: { command: 'rival' } });
    const p = ledgerProblems([...c, rival], 'wave-1', key.publicKey);
    expect(p).toContain('record 2 exists 2 times (a fork)');
  });

  it('names an empty ledger and another migration\'s record', () => {
    expect(ledgerProblems([], 'wave-1', key.publicKey)).toEqual(['the ledger has no record']);
    expect(ledgerProblems(chain(1), 'wave-2', key.publicKey)).toContain('record 1 names migration "wave-1", not "wave-2"');
  });
});

describe('signing keys', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'clover-keys-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the private key 0600, never replaces it, and loads it from CLOVER_SIGNING_KEY_FILE', () => {
    const k = writeKeyPair(dir);
    expect(statSync(k.privateKeyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(k.publicKeyFile, 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    expect(() => writeKeyPair(dir)).toThrow(InputError);
    expect(loadSigningKey({ CLOVER_SIGNING_KEY_FILE: k.privateKeyFile })!.keyId).toBe(k.keyId);
    expect(loadSigningKey({})).toBeUndefined();
  });

  it('refuses a key readable by others, not a PEM, or not Ed25519, naming the file', () => {
    const k = writeKeyPair(dir);
    chmodSync(k.privateKeyFile, 0o640);
    expect(() => loadSigningKey({ CLOVER_SIGNING_KEY_FILE: k.privateKeyFile })).toThrow(`chmod 600 ${k.privateKeyFile}`);
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'hello', { mode: 0o600 });
    expect(() => loadSigningKey({ CLOVER_SIGNING_KEY_FILE: junk })).toThrow(`the signing key ${junk} is not a PEM private key`);
    const rsa = join(dir, 'rsa.pem');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    writeFileSync(rsa, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(() => loadSigningKey({ CLOVER_SIGNING_KEY_FILE: rsa })).toThrow(`the signing key ${rsa} is not an Ed25519 private key (it is rsa, not Ed25519)`);
    expect(() => loadSigningKey({ CLOVER_SIGNING_KEY_FILE: join(dir, 'none.pem') })).toThrow(`cannot read the signing key ${join(dir, 'none.pem')}: ENOENT`);
  });

  it('defaults to the key beside a local stack\'s sites file, only when CLOVER_SIGNING_KEY_FILE is unset', () => {
    const stack = join(dir, '.clover');
    mkdirSync(stack);
    const sites = join(stack, 'local-sites.json');
    expect(defaultSigningKeyFile(sites, {})).toBeUndefined();
    writeKeyPair(stack);
    expect(defaultSigningKeyFile(sites, {})).toBe(join(stack, 'signing-key.pem'));
    expect(defaultSigningKeyFile(join(stack, 'prod-sites.json'), {})).toBeUndefined();
    expect(defaultSigningKeyFile(sites, { CLOVER_SIGNING_KEY_FILE: '/x/k.pem' })).toBe('/x/k.pem');
  });

  it('the local stack\'s key is made once: a later start keeps it', () => {
    const file = ensureKeyPair(dir);
    const before = readFileSync(file, 'utf8');
    expect(ensureKeyPair(dir)).toBe(file);
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('names the operator: CLOVER_OPERATOR, else the OS user', () => {
    expect(operatorActor({ CLOVER_OPERATOR: 'bob' })).toMatchObject({ who: 'bob', via: 'cli' });
    expect(operatorActor({}).who).toBeTruthy();
  });
});

describe('operator results and recorded failures', () => {
  const append = (records: LedgerRecord[], type: LedgerRecord['type'], data: Record<string, unknown>) => {
    records.push(buildRecord(key, 'wave-1', records.at(-1), { type, actor, data }));
    return records.at(-1)!;
  };

  it('a command with its result is answered; one without is a NO-RESULT line naming seq, command and who', () => {
    const r: LedgerRecord[] = [];
    const start = append(r, 'operator-command', { command: 'start' });
    append(r, 'operator-result', { command: 'start', intentSeq: start.seq, intentHash: recordHash(start), outcome: 'accepted', exitCode: 0 });
    const pause = append(r, 'operator-command', { command: 'pause' });
    expect(resultProblems(r)).toEqual([]);
    expect(missingResults(r)).toEqual([expect.stringMatching(new RegExp(`^NO-RESULT record ${pause.seq} \\(operator-command pause by alice at ops-1, .*\\): no operator-result names it`))]);
  });

  it('a result naming no earlier command, or a command with another hash, is a problem', () => {
    const r: LedgerRecord[] = [];
    const cmd = append(r, 'operator-command', { command: 'cutover' });
    append(r, 'operator-result', { command: 'cutover', intentSeq: cmd.seq, intentHash: '0'.repeat(64), outcome: 'refused', exitCode: 1 });
    append(r, 'operator-result', { command: 'sync', intentSeq: 9, intentHash: 'x', outcome: 'accepted', exitCode: 0 });
    expect(resultProblems(r)).toEqual([
      `record 2 (operator-result) names intent 1 with hash ${'0'.repeat(64)}; record 1 hashes to ${recordHash(cmd)}`,
      'record 3 (operator-result) names intent 9, which is not an operator command before it',
    ]);
  });

  it('recordedFailures keeps the newest failure of each user', () => {
    const r: LedgerRecord[] = [];
    append(r, 'user-failed', { userId: 'u1', reason: 'first', phase: 'copy' });
    append(r, 'user-committed', { userId: 'u2', generation: 1 });
    append(r, 'user-failed', { userId: 'u1', reason: 'second', phase: 'verify' });
    expect([...recordedFailures(r)]).toEqual([['u1', { reason: 'second', phase: 'verify', seq: 3 }]]);
  });
});
