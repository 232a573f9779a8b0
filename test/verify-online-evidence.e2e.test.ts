import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { AuditReport } from '../src/audit/verify';
import { manifestGenerationKey, manifestKey } from '../src/domain/layout';
import { manifestDigest, type Manifest } from '../src/domain/manifest';
import { readSigningKeyFile } from '../src/evidence/keys';
import { buildRecord, keyIdOf, type LedgerRecord } from '../src/evidence/ledger';
import { ledgerKey } from '../src/evidence/storage';
import { destroySiteClients } from '../src/storage/clients';
import { clients, get, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * `clover verify ID --public-key FILE`: the online audit also checks the evidence from storage, read
 * only: the ledger's chain and signatures, each committed digest against the stored generation, and
 * every newest manifest's signature. One small migration (2 users, kept sources) signed with the test
 * stack's key; each tampering is made in place, checked, and undone before the next.
 */
describe('verify --public-key (online evidence)', () => {
  const c = clients();
  const id = uniqueId('ev-online');
  const [u1, u2] = [`${id}-a`, `${id}-b`];
  const site = () => c.get('eu-ie')!;
  const pubFile = join(mkdtempSync(join(tmpdir(), 'clover-pub-')), 'signing-key.pub.pem');
  const key = readSigningKeyFile(process.env.CLOVER_SIGNING_KEY_FILE!);
  let worker: ChildProcess;

  beforeAll(async () => {
    writeFileSync(pubFile, key.publicKey.export({ type: 'spki', format: 'pem' }));
    worker = startWorkerProcess(uniqueId('ev-online-worker'));
    for (const u of [u1, u2]) for (let i = 0; i < 3; i++) await put(c, 'sg', `users/${u}/f-${i}`, `object ${i} of ${u}`);
    const plan = writePlan(tmpPlanDir(), {
      migrationId: id, sources: ['sg', 'us'], routing: { default: 'eu-ie' },
      users: [{ userId: u1, country: 'DE' }, { userId: u2, country: 'FR' }], verify: 'checksum', sourceDisposition: 'keep',
    });
    const r = await runCli(['start', '--plan', plan, '--wait']);
    expect(r.code).toBe(0);
  });
  afterAll(async () => {
    await stopProcess(worker);
    destroySiteClients(c);
  });

  const verify = (...extra: string[]) => runCli(['verify', id, '--public-key', pubFile, ...extra]);
  const bytes = async (k: string) => (await get(c, 'eu-ie', k))!.body;
  const remove = (k: string) => site().s3.send(new DeleteObjectCommand({ Bucket: site().bucket, Key: k }));
  /** Runs `tamper`, then puts back what the keys held. */
  const tampered = async (keys: string[], tamper: () => Promise<void>, check: () => Promise<void>) => {
    const saved = await Promise.all(keys.map(bytes));
    try {
      await tamper();
      await check();
    } finally {
      for (const [i, k] of keys.entries()) await put(c, 'eu-ie', k, saved[i]!);
    }
  };

  it('holds for an untouched migration: exit 0, the ledger read, both newest manifests signed', async () => {
    const v = await verify();
    expect(v.stdout).toMatch(/^evidence: \d+ ledger record\(s\) read; 2 newest manifest generation\(s\) signed with the given key$/m);
    expect(v.stdout).toMatch(/^OK: .*the ledger's chain and signatures hold/m);
    expect(v.code).toBe(0);
  });

  it('a manifest edited with its plain digest recomputed: the digest check passes, the signature does not', async () => {
    const k = manifestKey(id, u1);
    await tampered([k], async () => {
      const m = JSON.parse((await bytes(k)).toString()) as Manifest;
      const edited = { ...m, writtenBy: 'mallory' };
      await put(c, 'eu-ie', k, JSON.stringify({ ...edited, digest: manifestDigest(edited) }));
    }, async () => {
      expect((await runCli(['verify', id])).code).toBe(0); // without the key the edit goes unseen
      const v = await verify();
      expect(v.stdout).toContain(`MISMATCH site eu-ie ${k}: its signature does not verify with the evidence key`);
      expect(v.code).toBe(1);
      const j = JSON.parse((await verify('--json')).stdout) as AuditReport;
      expect(j.ok).toBe(false);
      expect(j.problems).toEqual([expect.objectContaining({ kind: 'signature', site: 'eu-ie', manifest: k, userId: u1 })]);
    });
  });

  it('a kept generation edited with its digest recomputed: the committed record\'s digest no longer matches it', async () => {
    const k = manifestGenerationKey(id, u1, 1);
    await tampered([k], async () => {
      const m = JSON.parse((await bytes(k)).toString()) as Manifest;
      const edited = { ...m, writtenBy: 'mallory' };
      await put(c, 'eu-ie', k, JSON.stringify({ ...edited, digest: manifestDigest(edited) }));
    }, async () => {
      const v = await verify();
      expect(v.stdout).toMatch(new RegExp(`^LEDGER record \\d+ \\(user-committed\\) names manifest ${k} with digest [0-9a-f]{64}; the stored generation does not hash to it \\(manifest edited\\)$`, 'm'));
      expect(v.code).toBe(1);
    });
  });

  it('an unsigned manifest is reported', async () => {
    const k = manifestKey(id, u2);
    await tampered([k], async () => {
      const { signature: _s, ...unsigned } = JSON.parse((await bytes(k)).toString()) as Manifest;
      await put(c, 'eu-ie', k, JSON.stringify(unsigned));
    }, async () => {
      const v = await verify();
      expect(v.stdout).toContain(`MISMATCH site eu-ie ${k}: unsigned`);
      expect(v.code).toBe(1);
    });
  });

  it('a middle ledger record deleted: a gap', async () => {
    const k = ledgerKey(id, 2);
    await tampered([k], () => remove(k).then(() => undefined), async () => {
      const v = await verify();
      expect(v.stdout).toMatch(/^LEDGER record 2 is missing \(a gap in the chain\)$/m);
      expect(v.stdout).toMatch(/ledger problem\(s\)$/m);
      expect(v.code).toBe(1);
      const j = JSON.parse((await verify('--json')).stdout) as AuditReport;
      expect(j.problems).toContainEqual(expect.objectContaining({ kind: 'ledger', problem: 'record 2 is missing (a gap in the chain)' }));
    });
  });

  it('two ledger records swapped (their files\' contents exchanged)', async () => {
    const [k1, k2] = [ledgerKey(id, 1), ledgerKey(id, 2)];
    await tampered([k1, k2], async () => {
      const [b1, b2] = [await bytes(k1), await bytes(k2)];
      await put(c, 'eu-ie', k1, b2);
      await put(c, 'eu-ie', k2, b1);
    }, async () => {
      const v = await verify();
      expect(v.stdout).toContain(`LEDGER ${k1} holds record 2, not the record its name says (records moved or swapped)`);
      expect(v.stdout).toContain(`LEDGER ${k2} holds record 1, not the record its name says`);
      expect(v.code).toBe(1);
    });
  });

  it('a record re-signed with another key', async () => {
    const records = await Promise.all([1, 2, 3].map(async (n) => JSON.parse((await bytes(ledgerKey(id, n))).toString()) as LedgerRecord));
    const target = records.find((r) => r.type === 'user-committed') ?? records[2]!;
    const k = ledgerKey(id, target.seq);
    const other = generateKeyPairSync('ed25519');
    const otherKey = { ...other, keyId: keyIdOf(other.publicKey) };
    await tampered([k], async () => {
      const previous = records[target.seq - 2];
      const forged = buildRecord(otherKey, id, previous, { type: target.type, actor: target.actor, data: target.data, at: target.at });
      expect(forged).toMatchObject({ seq: target.seq, prev: target.prev });
      await put(c, 'eu-ie', k, JSON.stringify(forged));
    }, async () => {
      const v = await verify();
      expect(v.stdout).toContain(`LEDGER record ${target.seq} (${target.type}): its signature does not verify with the given public key (key ${otherKey.keyId})`);
      expect(v.code).toBe(1);
    });
  });

  it('a user\'s newest manifest removed: INCOMPLETE still shows with --public-key', async () => {
    await remove(manifestKey(id, u2));
    const v = await verify();
    expect(v.stdout).toMatch(new RegExp(`^INCOMPLETE user ${u2}: no committed manifest and no recorded failure$`, 'm'));
    expect(v.code).toBe(1);
  });
});
