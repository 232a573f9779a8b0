import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseSites } from '../../src/config/sites';
import { createSiteClients, destroySiteClients, type SiteClients } from '../../src/storage/clients';
import { signedWith } from '../../src/storage/copy-request';
import { describeS3Error, isPreconditionFailed } from '../../src/storage/errors';
import { sendGetObject, sendPutObject } from '../../src/storage/lean-requests';

/**
 * The lean path's requests as a server sees them (a local HTTP server records them): session tokens are
 * sent and signed, the payload hash and checksum headers are there, and recorded error answers become
 * errors the SDK's classification reads alike. The real-server comparison is test/lean-requests.e2e.test.ts.
 */
describe('lean request path: requests and recorded answers', () => {
  let server: Server;
  const seen: { method?: string; url?: string; headers: IncomingHttpHeaders }[] = [];
  let answer: { status: number; headers?: Record<string, string>; body?: string } = { status: 200 };
  let answers: (typeof answer)[] = [];
  let clients: SiteClients;

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      req.resume();
      const a = answers.shift() ?? answer;
      req.on('end', () => res.writeHead(a.status, a.headers).end(a.body ?? ''));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const port = (server.address() as AddressInfo).port;
    clients = createSiteClients({
      eu: {
        endpoint: `http://127.0.0.1:${port}`, region: 'eu-west-1', bucket: 'b-1', jurisdiction: 'IE', forcePathStyle: true,
        credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret', sessionToken: 'the-session-token' },
      },
    }, { maxSockets: 2 });
  });
  afterAll(async () => {
    destroySiteClients(clients);
    await new Promise((ok) => server.close(ok));
  });
  beforeEach(() => {
    seen.length = 0;
    answer = { status: 200 };
    answers = [];
  });

  it('a GET pinned with If-Match carries the session token, signed, and the empty payload hash', async () => {
    answer = { status: 200, headers: { etag: '"abc"', 'content-length': '2', 'x-amz-meta-note': 'x' }, body: 'hi' };
    const s = clients.get('eu')!;
    const r = await sendGetObject(s, { Bucket: 'b-1', Key: 'users/u 1/a+b', IfMatch: '"abc"', VersionId: 'v1' });
    for await (const _ of r.Body) { /* drain */ }
    expect(r).toMatchObject({ ETag: '"abc"', ContentLength: 2, Metadata: { note: 'x' } });
    const h = seen[0]!.headers;
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/b-1/users/u%201/a%2Bb?versionId=v1' });
    expect(h['x-amz-security-token']).toBe('the-session-token');
    expect(h['if-match']).toBe('"abc"');
    expect(h['x-amz-content-sha256']).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(h.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-west-1\/s3\/aws4_request, SignedHeaders=[^,]*x-amz-security-token/);
    expect(h.authorization).toMatch(/SignedHeaders=[^,]*if-match/);
  });

  it('a conditional PUT sends its checksum (which binds the bytes), metadata and headers, signed', async () => {
    answer = { status: 200, headers: { etag: '"e1"', 'x-amz-checksum-sha256': 'Y2s=' } };
    const s = clients.get('eu')!;
    const out = await sendPutObject(s, {
      Bucket: 'b-1', Key: 'k', Body: Buffer.from('hello'), ContentLength: 5, ChecksumSHA256: 'Y2s=', IfNoneMatch: '*',
      ContentType: 'text/plain', Metadata: { 'clover-sha256': 'ff' }, ServerSideEncryption: 'AES256', StorageClass: 'STANDARD_IA', Tagging: 'a=b',
    }, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', signedWith);
    expect(out).toEqual({ ETag: '"e1"', ChecksumSHA256: 'Y2s=', VersionId: undefined });
    const h = seen[0]!.headers;
    expect(h).toMatchObject({
      'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-checksum-sha256': 'Y2s=',
      'if-none-match': '*', 'content-type': 'text/plain', 'x-amz-meta-clover-sha256': 'ff', 'content-length': '5',
      'x-amz-server-side-encryption': 'AES256', 'x-amz-storage-class': 'STANDARD_IA', 'x-amz-tagging': 'a=b', 'x-amz-security-token': 'the-session-token',
    });
    // The checksum is signed: the server rejects a body that does not match it, so the signature binds the bytes.
    expect(h.authorization).toMatch(/SignedHeaders=[^,]*x-amz-checksum-sha256/);
    expect(h.authorization).toMatch(/SignedHeaders=[^,]*content-length/);
    // A PUT without a checksum header signs its payload's hash.
    seen.length = 0;
    await sendPutObject(s, { Bucket: 'b-1', Key: 'k', Body: Buffer.from('hello') }, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', signedWith);
    expect(seen[0]!.headers['x-amz-content-sha256']).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  });

  it('an XML error answer becomes an SDK-shaped error: code, status, permanent or not', async () => {
    answer = { status: 403, body: '<?xml version="1.0"?><Error><Code>ExpiredToken</Code><Message>The token &amp; more expired</Message><RequestId>r1</RequestId></Error>' };
    const s = clients.get('eu')!;
    const err = await sendGetObject(s, { Bucket: 'b-1', Key: 'k' }).catch((e: unknown) => e) as Error & { Code: string; $metadata: { httpStatusCode: number; requestId: string } };
    expect(err).toMatchObject({ name: 'ExpiredToken', Code: 'ExpiredToken', message: 'The token & more expired', $metadata: { httpStatusCode: 403, requestId: 'r1' } });
    const d = describeS3Error(err, { site: 'eu', bucket: 'b-1', key: 'k', action: 'GetObject' });
    expect(d.permanent).toBe(true);
    expect(d.message).toBe('GetObject failed at site eu, bucket b-1, key "k": the session token has expired (ExpiredToken); renew the worker\'s credentials, then run `clover retry`');
  });

  it('a 412 without a body is a failed precondition; a 503 is retried, then transient', async () => {
    answer = { status: 412 };
    const s = clients.get('eu')!;
    expect(isPreconditionFailed(await sendGetObject(s, { Bucket: 'b-1', Key: 'k', IfMatch: '"x"' }).catch((e: unknown) => e))).toBe(true);
    seen.length = 0;
    answer = { status: 503, body: '<Error><Code>SlowDown</Code><Message>slow</Message></Error>' };
    const err = await sendGetObject(s, { Bucket: 'b-1', Key: 'k' }).catch((e: unknown) => e);
    expect(seen).toHaveLength(3); // the SDK client's maxAttempts
    const d = describeS3Error(err, { site: 'eu', bucket: 'b-1', key: 'k', action: 'GetObject' });
    expect(d).toMatchObject({ type: 'SlowDown', permanent: false, repeatable: false, status: 503 });
  });

  it('a clock an hour off: the server time is taken from its answer and the request signed again (as the SDK does)', async () => {
    const serverNow = new Date(Date.now() + 3600_000);
    answers = [{ status: 403, headers: { date: serverNow.toUTCString() }, body: '<Error><Code>RequestTimeTooSkewed</Code><Message>skewed</Message></Error>' }];
    answer = { status: 200, headers: { etag: '"e"' } };
    const s = clients.get('eu')!;
    await sendPutObject(s, { Bucket: 'b-1', Key: 'k', Body: Buffer.from('x') }, '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881', signedWith);
    expect(seen).toHaveLength(2);
    const signedAt = (h: IncomingHttpHeaders) => Date.parse(String(h['x-amz-date']).replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    expect(Math.abs(signedAt(seen[1]!.headers) - serverNow.getTime())).toBeLessThan(60_000);
    // A signature that does not match with the clocks in step is bad credentials: not retried.
    seen.length = 0;
    answers = [];
    answer = { status: 403, headers: { date: new Date(Date.now() + 3600_000).toUTCString() }, body: '<Error><Code>SignatureDoesNotMatch</Code></Error>' };
    const err = await sendGetObject(s, { Bucket: 'b-1', Key: 'k' }).catch((e: unknown) => e);
    expect(seen).toHaveLength(1);
    expect(describeS3Error(err, { site: 'eu', bucket: 'b-1', key: 'k', action: 'GetObject' })).toMatchObject({ type: 'SignatureDoesNotMatch', permanent: true });
  });

  it('"leanRequests": false in the sites file, or the worker option, turns the lean path off; a wrong value is refused clearly', () => {
    const doc = (v: unknown) => ({ sites: { eu: { endpoint: 'http://127.0.0.1:1', region: 'eu-west-1', bucket: 'b-1', jurisdiction: 'IE', leanRequests: v } } });
    const on = createSiteClients(parseSites(doc(undefined)), { maxSockets: 1 });
    const offBySite = createSiteClients(parseSites(doc(false)), { maxSockets: 1 });
    const offByWorker = createSiteClients(parseSites(doc(true)), { maxSockets: 1, leanRequests: false });
    try {
      expect(on.get('eu')!.lean).toBeDefined();
      expect(offBySite.get('eu')!.lean).toBeUndefined();
      expect(offByWorker.get('eu')!.lean).toBeUndefined();
    } finally {
      for (const c of [on, offBySite, offByWorker]) destroySiteClients(c);
    }
    expect(() => parseSites(doc('no'))).toThrow(/site "eu", field leanRequests: /);
  });
});
