import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectRetentionCommand, PutBucketPolicyCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { AuditReport } from '../src/audit/verify';
import { loadSitesFile } from '../src/config/sites';
import { manifestGenerationKey } from '../src/domain/layout';
import { operatorActor, readSigningKeyFile } from '../src/evidence/keys';
import type { LedgerRecord } from '../src/evidence/ledger';
import { appendLedger, ledgerKey, readLedger } from '../src/evidence/storage';
import { AUDITOR_SITES_FILE, readOnlyBucketPolicy } from '../src/stack/local-stack';
import { createSiteClients, destroySiteClients, type SiteClients } from '../src/storage/clients';
import { get, put, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';

/**
 * Evidence an independent overseer can rely on, on the real stack:
 * - a migration whose plan asks for `evidenceRetention` writes its ledger records and manifest
 *   generations under S3 Object Lock (versitygw 1.7.0 enforces it on a bucket created with Object Lock):
 *   a record cannot be deleted or overwritten, and the migration still completes and verifies;
 *   the same plan against a bucket without Object Lock is refused before anything starts;
 * - a user that fails leaves a `user-failed` record: verify (online and offline) says FAILED, not INCOMPLETE;
 * - an operator command's outcome is recorded after its intent (a refused pause shows its refusal);
 *   an intent with no result (a crashed CLI) is a NO-RESULT warning, not a failure;
 * - verify prints the residency summary, and the ledger head to note: a removed last record is caught against it;
 * - the local stack's auditor account (auditor-sites.json) verifies with read access only: its
 *   PutObject and DeleteObject are refused.
 */
describe('evidence for an independent overseer', () => {
  const rootSitesFile = process.env.CLOVER_SITES!;
  const auditorSitesFile = join(dirname(rootSitesFile), AUDITOR_SITES_FILE);
  const dir = mkdtempSync(join(tmpdir(), 'clover-overseer-'));
  const pubFile = join(dir, 'signing-key.pub.pem');
  const key = readSigningKeyFile(process.env.CLOVER_SIGNING_KEY_FILE!);
  const lockedBucket = `clover-eu-ie-lock-${randomBytes(4).toString('hex')}`;
  /** The test stack's sites, with eu-ie's bucket replaced by one created with Object Lock. */
  const lockedSitesFile = join(dir, 'locked-sites.json');
  const locked = uniqueId('ov-locked'); // eu-ie (Object Lock): u1 migrates, u2 fails
  const plain = uniqueId('ov-plain'); // eu-no: u3 migrates; the auditor checks it
  const [u1, u2, u3] = [`${locked}-ok`, `${locked}-fails`, `${plain}-ok`];
  let c: SiteClients;
  let worker: ChildProcess;
  const env = { CLOVER_SITES: lockedSitesFile };
  const cli = (args: string[]) => runCli(args, env);
  const eu = () => c.get('eu-ie')!;

  beforeAll(async () => {
    writeFileSync(pubFile, key.publicKey.export({ type: 'spki', format: 'pem' }));
    const root = JSON.parse(readFileSync(rootSitesFile, 'utf8')) as { sites: Record<string, { bucket: string }> };
    root.sites['eu-ie']!.bucket = lockedBucket;
    writeFileSync(lockedSitesFile, JSON.stringify(root, null, 2), { mode: 0o600 });
    c = createSiteClients(loadSitesFile(lockedSitesFile), { maxSockets: 8 });
    await eu().s3.send(new CreateBucketCommand({ Bucket: lockedBucket, ObjectLockEnabledForBucket: true }));
    worker = startWorkerProcess(uniqueId('overseer-worker'), [], env);
    for (let i = 0; i < 2; i++) await put(c, 'sg', `users/${u1}/f-${i}`, `object ${i} of ${u1}`);
    await put(c, 'sg', `users/${u2}/mine.txt`, 'source bytes of u2');
    // u2 fails: its EU site already holds one of its keys, written by someone else (never overwritten).
    await put(c, 'eu-ie', `users/${u2}/mine.txt`, 'someone else wrote this');
    for (let i = 0; i < 2; i++) await put(c, 'sg', `users/${u3}/g-${i}`, `object ${i} of ${u3}`);
  });
  afterAll(async () => {
    await stopProcess(worker);
    destroySiteClients(c);
  });

  const lockedPlan = (sitesNote: string) => writePlan(tmpPlanDir(), {
    migrationId: `${locked}${sitesNote}`, sources: ['sg', 'us'], routing: { default: 'eu-ie' },
    users: [{ userId: u1, country: 'DE' }, { userId: u2, country: 'FR' }], verify: 'checksum', sourceDisposition: 'keep',
    evidenceRetention: { mode: 'COMPLIANCE', days: 1 },
  });

  it('a plan asking for evidence retention on a bucket without Object Lock is refused before start: exit 2, one line naming site and bucket', async () => {
    const bucket = loadSitesFile(rootSitesFile)['eu-ie']!.bucket;
    const r = await runCli(['start', '--plan', lockedPlan('-refused')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').filter((l) => !/no signing key/.test(l))).toEqual([
      `clover: plan field evidenceRetention: site eu-ie (bucket ${bucket}) has no S3 Object Lock, so evidence written there cannot be retained; use a bucket created with Object Lock enabled, or remove evidenceRetention from the plan`,
    ]);
    const root = createSiteClients(loadSitesFile(rootSitesFile), { maxSockets: 2 });
    try {
      expect(await get(root, 'eu-ie', `_clover/migrations/${locked}-refused/users.jsonl`)).toBeUndefined(); // nothing stored
    } finally {
      destroySiteClients(root);
    }
  });

  it('with Object Lock: the migration completes (u1) and records the failed user (u2); its records are retained and cannot be deleted or overwritten', async () => {
    const r = await cli(['start', '--plan', lockedPlan(''), '--wait']);
    expect(r.stdout).toMatch(new RegExp(`FAILED user ${u2}: `));
    expect(r.code).toBe(1);
    const ledger = await readLedger(eu(), locked);
    expect(ledger.map((x) => x.type)).toEqual(expect.arrayContaining(['plan-accepted', 'operator-command', 'operator-result', 'user-committed', 'user-failed']));
    const failed = ledger.find((x) => x.type === 'user-failed')!;
    expect(failed.data).toMatchObject({ userId: u2, phase: expect.any(String), reason: expect.stringContaining('could not be migrated') });
    expect(String(failed.data.reason).length).toBeLessThanOrEqual(1000);

    const first = ledgerKey(locked, 1);
    const gen = manifestGenerationKey(locked, u1, 1);
    for (const k of [first, gen, ledgerKey(locked, failed.seq)]) {
      const ret = await eu().s3.send(new GetObjectRetentionCommand({ Bucket: lockedBucket, Key: k }));
      expect(ret.Retention?.Mode).toBe('COMPLIANCE');
      expect(ret.Retention!.RetainUntilDate!.getTime()).toBeGreaterThan(Date.now() + 23 * 3600_000);
    }
    const before = (await get(c, 'eu-ie', first))!.body;
    await expect(eu().s3.send(new DeleteObjectCommand({ Bucket: lockedBucket, Key: first }))).rejects.toMatchObject({ name: 'AccessDenied' });
    await expect(eu().s3.send(new PutObjectCommand({ Bucket: lockedBucket, Key: first, Body: '{"forged":true}' }))).rejects.toMatchObject({ name: 'AccessDenied' });
    await expect(eu().s3.send(new DeleteObjectCommand({ Bucket: lockedBucket, Key: gen }))).rejects.toMatchObject({ name: 'AccessDenied' });
    expect((await get(c, 'eu-ie', first))!.body.equals(before)).toBe(true);
  });

  it('verify online: u1 holds, u2 is FAILED (with its reason), not INCOMPLETE; then the residency summary; exit 1', async () => {
    const v = await cli(['verify', locked, '--public-key', pubFile]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`^FAILED user ${u2}: .*could not be migrated.* \\(in phase \\w+; its data did not move\\)$`, 'm'));
    expect(v.stdout).not.toMatch(/^(INCOMPLETE|LEDGER|MISMATCH|WARNING)/m);
    expect(v.stdout).toContain('2 user(s) in the stored user list: 1 with a committed manifest, 1 failed (recorded in the ledger), 0 without either');
    expect(v.stdout).toMatch(/^FAILED: 0 mismatch\(es\), 0 object\(s\) still in a source after cut-over, 0 read error\(s\), 1 user\(s\) failed \(their data did not move\)$/m);
    // The residency summary, from what verify read (u1's sources are kept, so both users still have data outside the EEA).
    expect(v.stdout).toMatch(/^residency \(as storage holds it now\): 0 of 2 users' data is in the EEA only; 2 users still have data outside the EEA$/m);
    expect(v.stdout).toMatch(/^ {2}EEA: 2 object\(s\), /m);
    expect(v.stdout).toMatch(/^ {4}site eu-ie \(eu-west-1, IE, target\): 1 user\(s\), 2 object\(s\), /m);
    expect(v.stdout).toMatch(/^ {4}site sg \(ap-southeast-1, SG, source\): 2 user\(s\), 3 object\(s\), /m);
    expect(v.stdout).toMatch(/^ {2}users: 1 migrated, 0 cut over, 0 rolled back, 1 no manifest \(of 2\)$/m);
    expect(v.stdout).toMatch(new RegExp(`^ {2}OUTSIDE-EEA user ${u2} \\(no manifest\\): 1 object\\(s\\), .* in sg$`, 'm'));
    expect(v.stdout).toMatch(new RegExp(`^ {2}OUTSIDE-EEA user ${u1} \\(migrated\\): 2 object\\(s\\), .* in sg$`, 'm'));
    const j = JSON.parse((await cli(['verify', locked, '--public-key', pubFile, '--json'])).stdout) as AuditReport;
    expect(j).toMatchObject({ ok: false, failed: 1, incomplete: 0, warnings: [] });
    expect(j.residency?.totals).toMatchObject({ users: 2, outsideEEA: 2 });
  });

  it('a refused operator command (pause of a finished migration) records its refusal after its intent; the bundle verifies offline with u2 FAILED', async () => {
    const p = await cli(['pause', locked]);
    expect(p.code).not.toBe(0);
    const ledger = await readLedger(eu(), locked);
    const intent = ledger.filter((x) => x.type === 'operator-command' && x.data.command === 'pause').at(-1)!;
    const result = ledger.find((x) => x.type === 'operator-result' && x.data.intentSeq === intent.seq) as LedgerRecord;
    expect(result.data).toMatchObject({ command: 'pause', outcome: 'refused', exitCode: p.code, reason: expect.stringContaining(locked) });
    expect(p.stderr).toContain(String(result.data.reason));
    expect(result.actor.who).toBe(operatorActor().who);
    const start = ledger.find((x) => x.type === 'operator-command' && x.data.command === 'start')!;
    expect(ledger.find((x) => x.type === 'operator-result' && x.data.intentSeq === start.seq)?.data).toMatchObject({ outcome: 'accepted', exitCode: 0 });

    const bundle = join(dir, 'bundle');
    expect((await cli(['evidence', 'export', locked, '--out', bundle])).code).toBe(0);
    const off = await runCli(['verify', '--evidence', bundle, '--public-key', pubFile]);
    expect(off.code).toBe(1);
    expect(off.stdout).toMatch(new RegExp(`^FAILED user ${u2}: .*could not be migrated.*\\(in phase \\w+; its data did not move\\)$`, 'm'));
    expect(off.stdout).not.toMatch(/^(PROBLEM|INCOMPLETE|WARNING)/m);
    expect(off.stdout).toMatch(/^FAILED: migration .*: 0 problem\(s\) in \d+ record\(s\) .*; 1 user\(s\) committed of 2 listed, 1 failed$/m);
  });

  it('the local stack\'s auditor account verifies with read access only (exit 0, residency printed); its PutObject and DeleteObject are refused', async () => {
    expect(statSync(auditorSitesFile).mode & 0o777).toBe(0o600);
    const plan = writePlan(tmpPlanDir(), {
      migrationId: plain, sources: ['sg', 'us'], routing: { default: 'eu-no' }, users: [{ userId: u3, country: 'NO' }], verify: 'checksum', sourceDisposition: 'keep',
    });
    expect((await cli(['start', '--plan', plan, '--wait'])).code).toBe(0);
    const v = await runCli(['verify', plain, '--sites', auditorSitesFile, '--public-key', pubFile]);
    expect(v.stderr).toBe('');
    expect(v.stdout).toMatch(/^OK: .*the ledger's chain and signatures hold/m);
    expect(v.stdout).toMatch(new RegExp(`^ {2}OUTSIDE-EEA user ${u3} \\(migrated\\): 2 object\\(s\\), .* in sg$`, 'm'));
    expect(v.code).toBe(0);

    const auditor = createSiteClients(loadSitesFile(auditorSitesFile), { maxSockets: 2 });
    try {
      const no = auditor.get('eu-no')!;
      const record = ledgerKey(plain, 1);
      const object = `users/${u3}/g-0`;
      await expect(no.s3.send(new PutObjectCommand({ Bucket: no.bucket, Key: `users/${u3}/planted`, Body: 'x' }))).rejects.toMatchObject({ name: 'AccessDenied' });
      await expect(no.s3.send(new PutObjectCommand({ Bucket: no.bucket, Key: record, Body: '{}' }))).rejects.toMatchObject({ name: 'AccessDenied' });
      await expect(no.s3.send(new DeleteObjectCommand({ Bucket: no.bucket, Key: record }))).rejects.toMatchObject({ name: 'AccessDenied' });
      await expect(no.s3.send(new DeleteObjectCommand({ Bucket: no.bucket, Key: object }))).rejects.toMatchObject({ name: 'AccessDenied' });
      await expect(no.s3.send(new PutBucketPolicyCommand({ Bucket: no.bucket, Policy: readOnlyBucketPolicy(no.bucket, 'someone') }))).rejects.toMatchObject({ name: 'AccessDenied' });
      const root = createSiteClients(loadSitesFile(rootSitesFile), { maxSockets: 2 });
      try {
        expect(await get(root, 'eu-no', record)).toBeDefined();
        expect((await get(root, 'eu-no', object))!.body.toString()).toBe(`object 0 of ${u3}`);
        expect(await get(root, 'eu-no', `users/${u3}/planted`)).toBeUndefined();
      } finally {
        destroySiteClients(root);
      }
    } finally {
      destroySiteClients(auditor);
    }
  });

  it('an operator command whose result was never recorded (a crashed CLI) is a NO-RESULT warning, not a failure; removing it (the last record) is caught only against the head noted', async () => {
    const root = createSiteClients(loadSitesFile(rootSitesFile), { maxSockets: 2 });
    try {
      const no = root.get('eu-no')!;
      const intent = await appendLedger(no, plain, key, { type: 'operator-command', actor: operatorActor(), data: { command: 'cancel', migrationId: plain, args: {} } });
      const v = await runCli(['verify', plain, '--sites', auditorSitesFile, '--public-key', pubFile]);
      expect(v.stdout).toMatch(new RegExp(`^WARNING NO-RESULT record ${intent.seq} \\(operator-command cancel by .*\\): no operator-result names it`, 'm'));
      expect(v.stdout).toMatch(/^OK: /m);
      expect(v.code).toBe(0);
      // The auditor notes the head verify prints.
      const noted = new RegExp(`^ledger head: record ${intent.seq}, hash ([0-9a-f]{64}) `, 'm').exec(v.stdout)![1]!;

      // The last record removed: no gap, the chain still holds; only the noted head shows it.
      await no.s3.send(new DeleteObjectCommand({ Bucket: no.bucket, Key: ledgerKey(plain, intent.seq) }));
      expect((await runCli(['verify', plain, '--sites', auditorSitesFile, '--public-key', pubFile])).code).toBe(0);
      const pinned = await runCli(['verify', plain, '--sites', auditorSitesFile, '--public-key', pubFile, '--head', noted]);
      expect(pinned.stdout).toContain(`LEDGER the head record noted earlier (hash ${noted}) is not in the ledger: records were removed from its end, or the ledger was replaced`);
      expect(pinned.code).toBe(1);
      const bundle = join(dir, 'bundle-plain');
      expect((await runCli(['evidence', 'export', plain, '--out', bundle, '--sites', auditorSitesFile])).code).toBe(0);
      const off = await runCli(['verify', '--evidence', bundle, '--public-key', pubFile, '--head', noted]);
      expect(off.stdout).toContain(`PROBLEM: the head record noted earlier (hash ${noted}) is not in the ledger`);
      expect(off.code).toBe(1);
      const bad = await runCli(['verify', plain, '--public-key', pubFile, '--head', 'not-a-hash']);
      expect(bad.code).toBe(2);
      expect(bad.stderr.trim()).toBe('clover: --head not-a-hash is not a record hash (64 lowercase hex digits, as `verify` prints after "ledger head:")');
    } finally {
      destroySiteClients(root);
    }
  });
});
