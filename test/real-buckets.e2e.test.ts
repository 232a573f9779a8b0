import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { GetObjectCommand, GetObjectTaggingCommand } from '@aws-sdk/client-s3';
import { parseSites } from '../src/config/sites';
import { ByteBudget } from '../src/storage/byte-budget';
import { createSiteClients, destroySiteClients, type Site, type SiteClients } from '../src/storage/clients';
import type { CopyRequest } from '../src/storage/copy-request';
import { StorageError } from '../src/storage/errors';
import { copyObject } from '../src/storage/object-copy';
import { META, headObject } from '../src/storage/object-meta';
import { hashObject } from '../src/storage/pinned-read';
import type { ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { migrationWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { clients, exists, listKeys, put, runCli, sha256, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { entry } from './support/at';

/**
 * Real buckets (issue #14 items 2, 5, 6; #13 item 2) against the real versitygw sites: what an object
 * carries besides its bytes arrives, a multipart object above the site's CopyObject limit completes and
 * verifies, the source's MD5 ETag is checked by the target (Content-MD5) without a local MD5 while a byte
 * flipped between source and worker is still caught, and a target that must encrypt but does not is
 * refused before anything starts. (SSE-KMS and SSE-C sources: test/unit/copy-integrity.test.ts, with
 * AWS-shaped answers; versitygw accepts SSE headers but neither applies nor reports them.)
 */
const MiB = 1024 * 1024;
const baseSites = () => JSON.parse(readFileSync(process.env.CLOVER_SITES!, 'utf8')) as { sites: Record<string, Record<string, unknown>> };

describe('real buckets: headers, tags, large objects, MD5 by the target, encryption', () => {
  const c = clients();
  const id = uniqueId('realb');
  const settings = { multipartThreshold: 5 * MiB, minPartSize: 5 * MiB, partConcurrency: 2 };
  afterAll(() => destroySiteClients(c));

  const copy = (source: Site, target: Site, key: string, etag: string, size: number): Promise<ReturnType<typeof copyObject> extends Promise<infer T> ? T : never> => {
    const req: CopyRequest = {
      source, target, migrationId: id, settings, budget: new ByteBudget(64 * MiB),
      object: { site: source.name, key, etag, size, lastModified: new Date().toISOString() },
    };
    return copyObject(req);
  };
  const etagOf = async (site: string, key: string) => (await headObject(c.get(site)!, key))!.etag;
  const extras = {
    CacheControl: 'max-age=600, private', ContentDisposition: 'attachment; filename="report 1.pdf"', ContentEncoding: 'gzip',
    ContentLanguage: 'de-CH', ContentType: 'application/pdf', Expires: new Date('2031-02-03T04:05:06Z'),
    Metadata: { owner: 'alice', purpose: 'tax' }, Tagging: 'class=confidential&team=a%20b',
  };
  const expectCarried = async (key: string) => {
    const t = c.get('eu-ie')!;
    const got = await t.s3.send(new GetObjectCommand({ Bucket: t.bucket, Key: key }));
    await got.Body!.transformToByteArray();
    expect({
      CacheControl: got.CacheControl, ContentDisposition: got.ContentDisposition, ContentEncoding: got.ContentEncoding,
      ContentLanguage: got.ContentLanguage, ContentType: got.ContentType, Expires: got.Expires?.toISOString(),
      owner: got.Metadata?.owner, purpose: got.Metadata?.purpose,
    }).toEqual({
      CacheControl: extras.CacheControl, ContentDisposition: extras.ContentDisposition, ContentEncoding: extras.ContentEncoding,
      ContentLanguage: extras.ContentLanguage, ContentType: extras.ContentType, Expires: extras.Expires.toISOString(), owner: 'alice', purpose: 'tax',
    });
    const tags = await t.s3.send(new GetObjectTaggingCommand({ Bucket: t.bucket, Key: key }));
    expect(Object.fromEntries((tags.TagSet ?? []).map((x) => [x.Key, x.Value]))).toEqual({ class: 'confidential', team: 'a b' });
  };

  it('headers, user metadata and tags arrive on the target, for a single PUT and a multipart copy', async () => {
    const small = `users/${id}/headers-small`;
    const big = `users/${id}/headers-big`;
    await put(c, 'sg', small, randomBytes(1000), extras);
    await put(c, 'sg', big, randomBytes(11 * MiB), extras);
    await copy(c.get('sg')!, c.get('eu-ie')!, small, await etagOf('sg', small), 1000);
    await copy(c.get('sg')!, c.get('eu-ie')!, big, await etagOf('sg', big), 11 * MiB);
    await expectCarried(small);
    await expectCarried(big);
  });

  describe('a multipart object above the target\'s copyObjectMaxBytes', () => {
    let limited: SiteClients;
    const sent: string[] = [];
    beforeAll(() => {
      const d = baseSites();
      d.sites['eu-ie']!.copyObjectMaxBytes = 8 * MiB;
      limited = createSiteClients(parseSites(d), { maxSockets: 8 });
      limited.get('eu-ie')!.s3.middlewareStack.add((next, context) => async (args) => {
        sent.push(context.commandName ?? '');
        return next(args);
      }, { step: 'initialize', name: 'testCommandLog' });
    });
    afterAll(() => destroySiteClients(limited));

    it('completes without CopyObject, records its SHA-256 by a multipart copy of itself, and verifies', async () => {
      const key = `users/${id}/above-limit`;
      const body = randomBytes(12 * MiB + 4321);
      await put(c, 'sg', key, body, extras);
      const out = await copy(limited.get('sg')!, limited.get('eu-ie')!, key, await etagOf('sg', key), body.length);
      expect(out.sha256).toBe(sha256(body));
      expect(sent).not.toContain('CopyObjectCommand');
      expect(sent.filter((n) => n === 'UploadPartCopyCommand').length).toBeGreaterThanOrEqual(3); // 3 parts of 5 MiB, at least once
      const head = (await headObject(c.get('eu-ie')!, key))!;
      expect(head.etag).toBe(out.targetEtag);
      expect(head.metadata[META.sha256]).toBe(sha256(body));
      expect(head.size).toBe(body.length);
      // Verify "full": the stored bytes, read pinned to the ETag the copy reports.
      expect(await hashObject(c.get('eu-ie')!, key, out.targetEtag)).toEqual({ sha256: sha256(body), size: body.length });
      await expectCarried(key);
      expect(await listKeys(c, 'eu-ie', `users/${id}/above-limit`)).toEqual([key]);
    });

    it('a migration (verify "checksum") with such an object completes, and `clover verify` passes', async () => {
      const migrationId = uniqueId('above-limit');
      const userId = `${migrationId}-u`;
      const big = randomBytes(12 * MiB + 17);
      await put(c, 'sg', `users/${userId}/big.bin`, big, extras);
      await put(c, 'sg', `users/${userId}/small.txt`, 'small');
      const d = baseSites();
      d.sites['eu-ie']!.copyObjectMaxBytes = 8 * MiB;
      const sitesFile = join(tmpPlanDir(), `${uniqueId('sites-limited')}.json`);
      writeFileSync(sitesFile, JSON.stringify(d), { mode: 0o600 });
      let worker: ChildProcess | undefined;
      const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
      try {
        worker = startWorkerProcess(migrationId, ['--part-mib', '5'], { CLOVER_SITES: sitesFile });
        const plan = writePlan(tmpPlanDir(), { migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }], verify: 'checksum' });
        const started = await runCli(['start', '--plan', plan]);
        expect(started.stderr).toBe('');
        const r = (await new Client({ connection }).workflow.getHandle(migrationWorkflowId(migrationId)).result()) as MigrationResult;
        expect(r).toMatchObject({ phase: 'completed', usersDone: 1 });
        const head = (await headObject(c.get('eu-ie')!, `users/${userId}/big.bin`))!;
        expect(head.metadata[META.sha256]).toBe(sha256(big));
        expect(await hashObject(c.get('eu-ie')!, `users/${userId}/big.bin`, head.etag)).toEqual({ sha256: sha256(big), size: big.length });
        const v = await runCli(['verify', migrationId]);
        expect(v.stderr).toBe('');
        expect(v.code).toBe(0);
      } finally {
        if (worker) await stopProcess(worker);
        await connection.close();
      }
    });
  });

  describe('the source MD5 ETag checked by the target (Content-MD5), and a byte flipped in flight', () => {
    let proxy: Server;
    let flipping: SiteClients;
    const flipKeys = new Set<string>();
    beforeAll(async () => {
      const d = baseSites();
      const upstream = new URL(entry(d.sites, 'sg').endpoint as string);
      // Forwards to the real sg site unchanged, except that GET bodies of keys in `flipKeys` have one byte flipped.
      proxy = createServer((req, res) => {
        const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
        const flip = req.method === 'GET' && [...flipKeys].some((k) => path.endsWith(`/${k}`));
        const fwd = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          if (!flip || up.statusCode !== 200) return void up.pipe(res);
          let at = 0;
          up.pipe(new Transform({
            transform(chunk: Buffer, _enc, done) {
              const b = Buffer.from(chunk);
              if (at <= 100 && at + b.length > 100) b.writeUInt8(b.readUInt8(100 - at) ^ 0x01, 100 - at);
              at += b.length;
              done(null, b);
            },
          })).pipe(res);
        });
        fwd.on('error', (err) => res.writeHead(502).end(err.message));
        req.pipe(fwd);
      });
      await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
      d.sites.sg!.endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      flipping = createSiteClients(parseSites(d), { maxSockets: 8 });
    });
    afterAll(async () => {
      destroySiteClients(flipping);
      await new Promise((ok) => proxy?.close(ok));
    });

    it('a plain single-part object is checked by the target, not by a local MD5', async () => {
      const key = `users/${id}/md5-by-target`;
      const body = randomBytes(300 * 1024);
      await put(c, 'sg', key, body);
      const etag = await etagOf('sg', key);
      expect(etag).toBe(createHash('md5').update(body).digest('hex'));
      const out = await copy(flipping.get('sg')!, flipping.get('eu-ie')!, key, etag, body.length);
      expect(out.md5Check).toBe('target');
      expect(await hashObject(c.get('eu-ie')!, key, out.targetEtag)).toEqual({ sha256: sha256(body), size: body.length });
    });

    it('a byte flipped between source and worker is refused by the target as SourceCorrupt; nothing is stored', async () => {
      const key = `users/${id}/flipped`;
      const body = randomBytes(300 * 1024);
      await put(c, 'sg', key, body);
      flipKeys.add(key);
      const err = await copy(flipping.get('sg')!, flipping.get('eu-ie')!, key, await etagOf('sg', key), body.length).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ type: 'SourceCorrupt', repeatable: true, permanent: false });
      expect((err as Error).message).toMatch(/the bytes read do not match its ETag \(target eu-ie refused them as Content-MD5\)$/);
      expect(await exists(c, 'eu-ie', key)).toBe(false);
    });

    it('the source\'s stored checksums are checked against the bytes read: SHA-256 and CRC32, whole and in parts', async () => {
      const sha = `users/${id}/stored-sha`;
      const crc = `users/${id}/stored-crc-big`;
      const a = randomBytes(200 * 1024);
      const b = randomBytes(6 * MiB);
      await put(c, 'sg', sha, a, { ChecksumSHA256: createHash('sha256').update(a).digest('base64') });
      await put(c, 'sg', crc, b, { ChecksumAlgorithm: 'CRC32' });
      const okSha = await copy(flipping.get('sg')!, flipping.get('eu-ie')!, sha, await etagOf('sg', sha), a.length);
      const okCrc = await copy(flipping.get('sg')!, flipping.get('eu-ie')!, crc, await etagOf('sg', crc), b.length);
      expect([okSha.sourceChecksumChecked, okCrc.sourceChecksumChecked]).toEqual([true, true]);
      const flipped = `users/${id}/stored-sha-flipped`;
      await put(c, 'sg', flipped, a, { ChecksumSHA256: createHash('sha256').update(a).digest('base64') });
      flipKeys.add(flipped);
      const err = await copy(flipping.get('sg')!, flipping.get('eu-ie')!, flipped, await etagOf('sg', flipped), a.length).catch((e: unknown) => e);
      expect(err).toMatchObject({ type: 'SourceCorrupt', repeatable: true });
      expect((err as Error).message).toMatch(/the bytes read do not match its stored SHA-256 checksum \S+ \(read \S+\)$/);
      expect(await exists(c, 'eu-ie', flipped)).toBe(false);
    });

    it('a multipart copy of a single-part source still hashes MD5 locally and catches the flipped byte', async () => {
      const key = `users/${id}/flipped-big`;
      const body = randomBytes(6 * MiB);
      await put(c, 'sg', key, body);
      flipKeys.add(key);
      const err = await copy(flipping.get('sg')!, flipping.get('eu-ie')!, key, await etagOf('sg', key), body.length).catch((e: unknown) => e);
      expect(err).toMatchObject({ type: 'SourceCorrupt', repeatable: true });
      expect((err as Error).message).toMatch(/the bytes read do not match its ETag \(MD5 [0-9a-f]{32}\)$/);
      expect(await exists(c, 'eu-ie', key)).toBe(false);
    });
  });

  it('start refuses (exit 2, one line) a target that requires encryption when its canary comes back unencrypted', async () => {
    const d = baseSites();
    Object.assign(d.sites['eu-ie']!, { encryption: { type: 'aws:kms', keyId: 'alias/clover-eu' }, requireEncryption: true });
    const sitesFile = join(tmpPlanDir(), `${uniqueId('sites-encrypted')}.json`);
    writeFileSync(sitesFile, JSON.stringify(d), { mode: 0o600 });
    const plan = writePlan(tmpPlanDir(), { migrationId: uniqueId('enc'), sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId: 'u-1', country: 'DE' }] });
    const r = await runCli(['start', '--plan', plan, '--sites', sitesFile]);
    expect(r.stderr).toBe(
      'clover: site eu-ie (bucket clover-eu-ie) requires encryption, but a canary written with aws:kms came back without server-side encryption; ' +
        'use a store that applies the "encryption" of the sites file, or remove "requireEncryption" for this site\n',
    );
    expect(r.code).toBe(2);
    expect(await listKeys(c, 'eu-ie', '_clover/probe/encryption-')).toEqual([]);

    // requireEncryption without encryption: the sites file itself is refused, in one line.
    delete (d.sites['eu-ie'] as { encryption?: unknown }).encryption;
    writeFileSync(sitesFile, JSON.stringify(d), { mode: 0o600 });
    const r2 = await runCli(['start', '--plan', plan, '--sites', sitesFile]);
    expect(r2.stderr).toMatch(/^clover: sites file .*: site "eu-ie", field encryption: requireEncryption is true but no encryption is configured/);
    expect(r2.stderr.trim().split('\n')).toHaveLength(1);
    expect(r2.code).toBe(2);
  });
});
