import { createHash, randomBytes } from 'node:crypto';
import { HeadObjectCommand, type PutObjectCommandInput } from '@aws-sdk/client-s3';
import type { Sites } from '../src/config/sites';
import { createSiteClients, destroySiteClients, type Site, type SiteClients } from '../src/storage/clients';
import { signedWith } from '../src/storage/copy-request';
import { describeS3Error, isNotFound, isPreconditionFailed, s3Code, s3Status } from '../src/storage/errors';
import { leanPutFits, sendGetObject, sendPutObject, type ObjectRead } from '../src/storage/lean-requests';
import { testSites, uniqueId } from './helpers';

/**
 * The lean GET/PUT path (storage/lean-requests.ts) against the SDK path, on the same real versitygw site:
 * the objects they write are the same (bytes, metadata, headers, checksums), what they read is the same,
 * and every error both meet is classified and described alike.
 */
describe('lean request path vs the SDK path', () => {
  const sites = testSites();
  const lean = createSiteClients(sites, { maxSockets: 8 });
  const sdk = createSiteClients(sites, { maxSockets: 8, leanRequests: false });
  const prefix = `${uniqueId('lean')}/`;
  afterAll(() => {
    destroySiteClients(lean);
    destroySiteClients(sdk);
  });

  const body = randomBytes(40_000);
  const shaHex = createHash('sha256').update(body).digest('hex');
  const input = (key: string, extra: Partial<PutObjectCommandInput> = {}): PutObjectCommandInput => ({
    Bucket: sites['eu-ie']!.bucket, Key: key, Body: body, ContentLength: body.length,
    ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
    ContentType: 'image/x-test; charset=binary', ContentEncoding: 'identity', CacheControl: 'max-age=60, private',
    ContentDisposition: 'attachment; filename="a b.bin"', ContentLanguage: 'de-DE', Expires: new Date('2031-02-03T04:05:06Z'),
    Metadata: { 'clover-sha256': shaHex, 'app-note': 'hello world', mixed: 'A=b;c' }, IfNoneMatch: '*', ...extra,
  });
  const put = (c: SiteClients, key: string, extra?: Partial<PutObjectCommandInput>) => sendPutObject(c.get('eu-ie')!, input(key, extra), shaHex, signedWith);
  const get = (c: SiteClients, key: string, etag?: string) => sendGetObject(c.get('eu-ie')!, { Bucket: c.get('eu-ie')!.bucket, Key: key, IfMatch: etag && `"${etag}"` });
  const read = async (r: ObjectRead) => {
    const chunks: Buffer[] = [];
    for await (const c of r.Body) chunks.push(c as Buffer);
    const { Body: _b, ...rest } = r;
    return { bytes: Buffer.concat(chunks), rest };
  };
  const head = async (key: string) => {
    const s = sdk.get('eu-ie')!;
    const { $metadata: _m, LastModified: _l, ...h } = await s.s3.send(new HeadObjectCommand({ Bucket: s.bucket, Key: key, ChecksumMode: 'ENABLED' }));
    return h;
  };

  it('writes and reads the same object, headers, metadata and checksum as the SDK (key with spaces, unicode, reserved characters)', async () => {
    expect(lean.get('eu-ie')!.lean).toBeDefined();
    expect(sdk.get('eu-ie')!.lean).toBeUndefined();
    const keyLean = `${prefix}lean/a b+c (1)!*'~ü=&?.bin`;
    const keySdk = `${prefix}sdk/a b+c (1)!*'~ü=&?.bin`;
    const [pl, ps] = await Promise.all([put(lean, keyLean), put(sdk, keySdk)]);
    expect(pl.ETag).toBe(ps.ETag);
    expect(pl.ChecksumSHA256).toBe(ps.ChecksumSHA256);
    expect(pl.ChecksumSHA256).toBe(input('x').ChecksumSHA256);
    expect(await head(keyLean)).toEqual(await head(keySdk));
    const etag = pl.ETag!.replace(/"/g, '');
    // Both readers, both objects: the same bytes and the same fields.
    const reads = await Promise.all([get(lean, keyLean, etag), get(sdk, keyLean, etag), get(lean, keySdk, etag), get(sdk, keySdk)].map(async (p) => read(await p)));
    for (const r of reads) {
      expect(r.bytes.equals(body)).toBe(true);
      expect(r.rest.ContentLength).toBe(body.length);
    }
    const FIELDS = ['ContentLength', 'ETag', 'LastModified', 'ContentType', 'ContentEncoding', 'CacheControl', 'ContentDisposition', 'ContentLanguage', 'Expires', 'Metadata', 'VersionId', 'ChecksumSHA256', 'ServerSideEncryption', 'SSEKMSKeyId', 'StorageClass'] as const;
    const pick = (r: Omit<ObjectRead, 'Body'>) => Object.fromEntries(FIELDS.map((f) => [f, r[f]]));
    expect(pick(reads[0]!.rest)).toEqual(pick(reads[1]!.rest));
    expect(pick(reads[2]!.rest)).toEqual(pick(reads[3]!.rest));
    expect(reads[0]!.rest.Expires).toEqual(new Date('2031-02-03T04:05:06Z'));
    expect(reads[0]!.rest.Metadata).toEqual({ 'clover-sha256': shaHex, 'app-note': 'hello world', mixed: 'A=b;c' });
    expect(reads[0]!.rest).toMatchObject({
      ContentType: 'image/x-test; charset=binary', CacheControl: 'max-age=60, private', ContentDisposition: 'attachment; filename="a b.bin"',
      ContentLanguage: 'de-DE', ContentEncoding: 'identity', ETag: pl.ETag,
    });
    // Overwrite only the ETag this writer holds (If-Match), as a re-copy does.
    const again = await put(lean, keyLean, { IfNoneMatch: undefined, IfMatch: pl.ETag });
    expect(again.ETag).toBe(pl.ETag);
  });

  it('a field the lean path does not map sends the PUT through the SDK (same object)', async () => {
    const key = `${prefix}fallback.bin`;
    const odd = { ...input(key), WebsiteRedirectLocation: '/elsewhere' };
    expect(leanPutFits(input(key))).toBe(true);
    expect(leanPutFits(odd)).toBe(false);
    const outcome = (p: Promise<unknown>) => p.then((r) => ({ ok: (r as { ETag?: string }).ETag }), (e: unknown) => ({ code: s3Code(e), status: s3Status(e) }));
    const viaLean = await outcome(sendPutObject(lean.get('eu-ie')!, odd, shaHex, signedWith));
    const viaSdk = await outcome(sendPutObject(sdk.get('eu-ie')!, { ...odd, Key: `${key}.sdk` }, shaHex, signedWith));
    expect(viaLean).toEqual(viaSdk);
  });

  /** Runs one failing request on both paths; returns what each error classifies as, with its message. */
  async function both(run: (c: SiteClients) => Promise<unknown>, cs: [SiteClients, SiteClients] = [lean, sdk]) {
    const outcome = async (c: SiteClients) => {
      const err = await run(c).then(() => undefined, (e: unknown) => e);
      expect(err).toBeDefined();
      const d = describeS3Error(err, { site: 'eu-ie', bucket: 'b', key: 'k', action: 'GetObject' });
      return { code: s3Code(err), status: s3Status(err), notFound: isNotFound(err), precondition: isPreconditionFailed(err), type: d.type, permanent: d.permanent, repeatable: d.repeatable, message: d.message };
    };
    const [l, s] = await Promise.all(cs.map(outcome));
    return { l: l!, s: s! };
  }

  it('classifies 412 (If-Match / If-None-Match), 404 NoSuchKey and a checksum mismatch exactly as the SDK does', async () => {
    const key = `${prefix}errors.bin`;
    await put(sdk, key);
    for (const run of [
      (c: SiteClients) => get(c, key, '0123456789abcdef0123456789abcdef'),
      (c: SiteClients) => put(c, key),
      (c: SiteClients) => get(c, `${prefix}missing`),
      (c: SiteClients) => put(c, `${prefix}bad-checksum-${c === lean ? 'l' : 's'}`, { ChecksumSHA256: createHash('sha256').update('other').digest('base64') }),
    ]) {
      const { l, s } = await both(run);
      expect(l).toEqual(s);
    }
    const { l: pre } = await both((c) => get(c, key, '0123456789abcdef0123456789abcdef'));
    expect(pre).toMatchObject({ status: 412, precondition: true });
    const { l: missing } = await both((c) => get(c, `${prefix}missing`));
    expect(missing).toMatchObject({ code: 'NoSuchKey', status: 404, notFound: true });
    const { l: bad } = await both((c) => put(c, `${prefix}bad-checksum2-${c === lean ? 'l' : 's'}`, { ChecksumSHA256: createHash('sha256').update('other').digest('base64') }));
    expect(bad.status).toBe(400);
  });

  it('bad credentials: 403, permanent, the same clear message on both paths', async () => {
    const wrong: Sites = { 'eu-ie': { ...sites['eu-ie']!, credentials: { accessKeyId: sites['eu-ie']!.credentials!.accessKeyId, secretAccessKey: 'not-the-secret' } } };
    const bl = createSiteClients(wrong, { maxSockets: 2 });
    const bs = createSiteClients(wrong, { maxSockets: 2, leanRequests: false });
    try {
      const { l, s } = await both((c) => get(c, `${prefix}errors.bin`), [bl, bs]);
      expect(l).toEqual(s);
      expect(l).toMatchObject({ status: 403, permanent: true });
      expect(l.message).toMatch(/^GetObject failed at site eu-ie, bucket b, key "k": .*; check the sites file and the worker's credentials$/);
    } finally {
      destroySiteClients(bl);
      destroySiteClients(bs);
    }
  });

  it('connection refused: transient on both paths, with the same code', async () => {
    const closed: Sites = { 'eu-ie': { ...sites['eu-ie']!, endpoint: 'http://127.0.0.1:1' } };
    const cl = createSiteClients(closed, { maxSockets: 2 });
    const cs = createSiteClients(closed, { maxSockets: 2, leanRequests: false });
    try {
      const { l, s } = await both((c) => get(c, `${prefix}errors.bin`), [cl, cs]);
      expect({ ...l, message: undefined }).toEqual({ ...s, message: undefined });
      expect(l).toMatchObject({ permanent: false, repeatable: false });
      expect(l.message).toMatch(/ECONNREFUSED/);
      expect(s.message).toMatch(/ECONNREFUSED/);
    } finally {
      destroySiteClients(cl);
      destroySiteClients(cs);
    }
  });

  it('an aborted GET ends with an AbortError on the lean path', async () => {
    const ac = new AbortController();
    ac.abort();
    const s: Site = lean.get('eu-ie')!;
    await expect(sendGetObject(s, { Bucket: s.bucket, Key: `${prefix}errors.bin` }, ac.signal)).rejects.toMatchObject({ name: 'AbortError' });
  });
});
