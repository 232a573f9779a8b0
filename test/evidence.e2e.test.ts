import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, statSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestGenerationKey, manifestKey, usersListKey } from '../src/domain/layout';
import { buildManifest, manifestDigest } from '../src/domain/manifest';
import { defaultSigningKeyFile, writeKeyPair, loadSigningKey, operatorActor } from '../src/evidence/keys';
import { buildRecord, ledgerProblems, signingKeyFromPem, type LedgerRecord } from '../src/evidence/ledger';
import { appendLedger, ledgerKey, readLedger } from '../src/evidence/storage';
import { canonicalJson } from '../src/domain/manifest';
import { destroySiteClients } from '../src/storage/clients';
import { getJson, putJson } from '../src/storage/json-records';
import { clients, put, ROOT, runCli, uniqueId } from './helpers';

const c = clients();
afterAll(() => destroySiteClients(c));

function appender(migrationId: string, n: number, writer: string, startAt: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = join(ROOT, 'test', 'support', 'append-ledger.ts');
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', script, migrationId, 'eu-ie', String(n), writer, String(startAt)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((ok) => child.on('close', (code) => ok({ code, stdout, stderr })));
}

describe('evidence ledger against the real sites', () => {
  it('the test stack made its signing key beside its sites file (0600), and the setup hands it to tests and workers', () => {
    const file = join(process.env.CLOVER_TEST_STACK_DIR!, 'signing-key.pem');
    expect(process.env.CLOVER_SIGNING_KEY_FILE).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(defaultSigningKeyFile(process.env.CLOVER_SITES, {})).toBe(file);
  });

  it('two OS processes appending at once leave one unbroken chain of every record', async () => {
    const migrationId = uniqueId('ev-conc');
    const key = loadSigningKey()!;
    const N = 15;
    // Both start at one moment (after their start-up), so they race for the same seqs.
    const startAt = Date.now() + 8000;
    const [a, b] = await Promise.all([appender(migrationId, N, 'a', startAt), appender(migrationId, N, 'b', startAt)]);
    expect(a).toMatchObject({ code: 0 });
    expect(b).toMatchObject({ code: 0 });
    const records = await readLedger(c.get('eu-ie')!, migrationId);
    expect(records).toHaveLength(2 * N);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 2 * N }, (_, i) => i + 1));
    expect(ledgerProblems(records, migrationId, key.publicKey)).toEqual([]);
    // Each writer's records are all there, in its own order; the seqs each writer got are the ones stored.
    for (const w of ['a', 'b']) expect(records.filter((r) => r.data.writer === w).map((r) => r.data.i)).toEqual(Array.from({ length: N }, (_, i) => i));
    const seqsOf = (out: string) => out.trim().split('\n')[0]!.split(' ').map(Number);
    const conflictsOf = (out: string) => Number(/conflicts (\d+)/.exec(out)![1]);
    const got = [...seqsOf(a.stdout), ...seqsOf(b.stdout)].sort((x, y) => x - y);
    expect(got).toEqual(Array.from({ length: 2 * N }, (_, i) => i + 1));
    // They did race: a create-only write lost to the other writer at least once, and was retried.
    expect(conflictsOf(a.stdout) + conflictsOf(b.stdout)).toBeGreaterThan(0);
    process.stderr.write(`concurrent appends: ${conflictsOf(a.stdout)} + ${conflictsOf(b.stdout)} lost races, retried\n`);
    // And at once: the chain interleaves the two writers.
    const order = records.map((r) => r.data.writer).join('');
    expect(order).not.toBe('a'.repeat(N) + 'b'.repeat(N));
    expect(order).not.toBe('b'.repeat(N) + 'a'.repeat(N));
  });

  it('the site refuses a second create-only write of one key (what keeps the chain from forking)', async () => {
    const site = c.get('eu-ie')!;
    const k = ledgerKey(uniqueId('ev-once'), 1);
    expect(await putJson(site, k, { n: 1 }, 'probe', { ifNoneMatch: '*' })).not.toBe('precondition-failed');
    expect(await putJson(site, k, { n: 2 }, 'probe', { ifNoneMatch: '*' })).toBe('precondition-failed');
    expect(await getJson(site, k, 'probe')).toEqual({ n: 1 });
  });

  it('exports a bundle that verifies offline, the openssl one-record check works, and tampering is named', async () => {
    const migrationId = uniqueId('ev-bundle');
    const key = loadSigningKey()!;
    const site = c.get('eu-ie')!;
    // A user list, two manifest generations of one user, and a ledger naming them.
    // One user, committed: offline completeness holds (a listed user with neither a commit nor a recorded failure is INCOMPLETE).
    const usersJsonl = '{"userId":"u1","country":"FR"}\n';
    await put(c, 'eu-ie', usersListKey(migrationId), usersJsonl);
    const m1 = buildManifest({
      migrationId, userId: 'u1', targetSite: 'eu-ie', bucket: site.bucket, userPrefix: 'users/u1/', committedAt: '2026-01-01T00:00:00.000Z',
      generation: 1, entries: [], conflicts: [], erasures: [],
    } as Parameters<typeof buildManifest>[0]);
    await put(c, 'eu-ie', manifestGenerationKey(migrationId, 'u1', 1), JSON.stringify(m1));
    await put(c, 'eu-ie', manifestKey(migrationId, 'u1'), JSON.stringify(m1));
    const actor = operatorActor({ CLOVER_OPERATOR: 'auditor-test' });
    await appendLedger(site, migrationId, key, { type: 'plan-accepted', actor, data: { userListDigest: createHash('sha256').update(usersJsonl).digest('hex') } });
    await appendLedger(site, migrationId, key, { type: 'user-committed', actor, data: { userId: 'u1', generation: 1, digest: m1.digest, manifestKey: manifestGenerationKey(migrationId, 'u1', 1) } });
    await appendLedger(site, migrationId, key, { type: 'operator-command', actor, data: { command: 'cutover' } });
    await appendLedger(site, migrationId, key, { type: 'operator-command', actor, data: { command: 'pause' } });

    const work = mkdtempSync(join(tmpdir(), 'clover-evidence-'));
    try {
      const dir = join(work, 'bundle');
      const exp = await runCli(['evidence', 'export', migrationId, '--out', dir]);
      expect(exp).toMatchObject({ code: 0 });
      expect(exp.stdout).toContain('4 ledger record(s) from site eu-ie, 2 manifest file(s), 1 user(s) listed');
      expect(readdirSync(join(dir, 'ledger'))).toEqual([1, 2, 3, 4].map((n) => ledgerKey(migrationId, n).split('/').at(-1)));
      expect(existsSync(join(dir, 'manifests', 'eu-ie', 'u1', '00000001.json'))).toBe(true);
      for (const f of ['users.jsonl', 'signing-key.pub.pem', 'bundle.json', 'README.md']) expect(existsSync(join(dir, f))).toBe(true);
      expect(JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8'))).toMatchObject({ migrationId, records: 4, keyId: key.keyId });
      // The private key never reaches the bundle.
      const privatePem = readFileSync(process.env.CLOVER_SIGNING_KEY_FILE!, 'utf8');
      for (const f of execFileSync('find', [dir, '-type', 'f']).toString().trim().split('\n')) expect(readFileSync(f, 'utf8')).not.toContain(privatePem.split('\n')[1]);

      const pub = join(dir, 'signing-key.pub.pem');
      const ok = await runCli(['verify', '--evidence', dir, '--public-key', pub]);
      expect(ok.stdout).toMatch(/^OK: migration .*: 4 record\(s\) \(1 plan-accepted, 1 user-committed, 2 operator-command\).*1 manifest reference\(s\).*1 user\(s\) committed of 1 listed/m);
      expect(ok.code).toBe(0);

      // openssl alone, as the bundle's README says (jq and node for the canonical form).
      if (/^OpenSSL [3-9]/.test(execFileSync('openssl', ['version']).toString())) {
        const rec = join(dir, 'ledger', readdirSync(join(dir, 'ledger'))[1]!);
        const record = JSON.parse(readFileSync(rec, 'utf8')) as LedgerRecord;
        const { signature, ...unsigned } = record;
        writeFileSync(join(work, 'record.sig'), Buffer.from(signature, 'base64'));
        const viaJq = execFileSync('sh', ['-c', `jq -cS 'del(.signature)' '${rec}' | tr -d '\\n'`]).toString();
        expect(viaJq).toBe(canonicalJson(unsigned));
        writeFileSync(join(work, 'record.canonical'), viaJq);
        const verified = execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', join(work, 'record.canonical'), '-sigfile', join(work, 'record.sig')]).toString();
        expect(verified).toContain('Signature Verified Successfully');
        // The node one-liner of the README gives the same bytes.
        const readme = readFileSync(join(dir, 'README.md'), 'utf8');
        const nodeLine = /^ {4}node -e '(.*)' ledger\/000000000001\.json > record\.canonical$/m.exec(readme)![1]!;
        expect(execFileSync(process.execPath, ['-e', nodeLine, rec]).toString()).toBe(canonicalJson(unsigned));
        // The chain link, with sha256sum of the whole record's canonical form.
        const whole = execFileSync('sh', ['-c', `jq -cS . '${rec}' | tr -d '\\n'`]);
        const next = JSON.parse(readFileSync(join(dir, 'ledger', readdirSync(join(dir, 'ledger'))[2]!), 'utf8')) as LedgerRecord;
        expect(createHash('sha256').update(whole).digest('hex')).toBe(next.prev);
        // A forged record fails the same openssl check.
        writeFileSync(join(work, 'record.canonical'), viaJq.replace('"u1"', '"u9"'));
        expect(() => execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', join(work, 'record.canonical'), '-sigfile', join(work, 'record.sig')], { stdio: 'pipe' })).toThrow();
      } else {
        process.stderr.write('openssl older than 3.0: the one-record openssl check was skipped\n');
      }

      const tampered = async (name: string, change: (d: string) => void) => {
        const d = join(work, name);
        cpSync(dir, d, { recursive: true });
        change(d);
        return runCli(['verify', '--evidence', d, '--public-key', pub]);
      };
      const files = readdirSync(join(dir, 'ledger'));
      const deleted = await tampered('deleted', (d) => rmSync(join(d, 'ledger', files[1]!)));
      expect(deleted.code).toBe(1);
      expect(deleted.stdout).toContain('PROBLEM: record 2 is missing (a gap in the chain)');

      const swapped = await tampered('swapped', (d) => {
        renameSync(join(d, 'ledger', files[1]!), join(d, 'x'));
        renameSync(join(d, 'ledger', files[2]!), join(d, 'ledger', files[1]!));
        renameSync(join(d, 'x'), join(d, 'ledger', files[2]!));
      });
      expect(swapped.code).toBe(1);
      expect(swapped.stdout).toContain(`PROBLEM: ledger/${files[1]} holds record 3, not the record its name says (records moved or swapped)`);

      const other = mkdtempSync(join(work, 'k-'));
      writeKeyPair(other);
      const forger = signingKeyFromPem(readFileSync(join(other, 'signing-key.pem'), 'utf8'));
      const resigned = await tampered('resigned', (d) => {
        const r = JSON.parse(readFileSync(join(d, 'ledger', files[2]!), 'utf8')) as LedgerRecord;
        const prev = JSON.parse(readFileSync(join(d, 'ledger', files[1]!), 'utf8')) as LedgerRecord;
        writeFileSync(join(d, 'ledger', files[2]!), JSON.stringify(buildRecord(forger, migrationId, prev, { type: r.type, actor: r.actor, data: r.data, at: r.at })));
      });
      expect(resigned.code).toBe(1);
      expect(resigned.stdout).toContain(`PROBLEM: record 3 (operator-command): its signature does not verify with the given public key (key ${forger.keyId})`);

      const tail = await tampered('tail', (d) => rmSync(join(d, 'ledger', files[3]!)));
      expect(tail.code).toBe(1);
      expect(tail.stdout).toContain('bundle.json counts 4 record(s), the ledger/ folder holds 3');

      const edited = await tampered('manifest-edited', (d) => {
        const f = join(d, 'manifests', 'eu-ie', 'u1', '00000001.json');
        const m = JSON.parse(readFileSync(f, 'utf8'));
        m.userPrefix = 'users/u2/';
        m.digest = manifestDigest(m);
        writeFileSync(f, JSON.stringify(m));
      });
      expect(edited.code).toBe(1);
      expect(edited.stdout).toContain(`PROBLEM: record 2 (user-committed) names manifest u1/00000001.json with digest ${m1.digest}`);

      const users = await tampered('users-edited', (d) => writeFileSync(join(d, 'users.jsonl'), '{"userId":"u1","country":"DE"}\n'));
      expect(users.code).toBe(1);
      expect(users.stdout).toContain('PROBLEM: users.jsonl does not hash to the user list digest the plan-accepted record names');

      const removed = await tampered('manifest-removed', (d) => rmSync(join(d, 'manifests', 'eu-ie', 'u1', '00000001.json')));
      expect(removed.code).toBe(1);
      expect(removed.stdout).toContain('PROBLEM: record 2 (user-committed) references manifest u1/00000001.json, which is not in the bundle');

      // Bad input: one line, exit 2.
      const missing = await runCli(['verify', '--evidence', join(work, 'nope'), '--public-key', pub]);
      expect(missing.code).toBe(2);
      expect(missing.stderr.trim().split('\n')).toHaveLength(1);
      expect((await runCli(['verify', '--evidence', dir])).code).toBe(2);
      expect((await runCli(['evidence', 'export', migrationId, '--out', dir])).stderr).toContain('is not empty');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
