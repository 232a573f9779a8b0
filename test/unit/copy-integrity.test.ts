import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { parseSites } from '../../src/config/sites';
import { ByteBudget } from '../../src/storage/byte-budget';
import type { Site } from '../../src/storage/clients';
import { crc32 } from 'node:zlib';
import { crc32Base64, md5CheckFor, sourceEncryption, storedChecksum, type CopyRequest } from '../../src/storage/copy-request';
import { StorageError } from '../../src/storage/errors';
import { putJson } from '../../src/storage/json-records';
import { copyObject } from '../../src/storage/object-copy';

/**
 * The copy's integrity decisions against stores the local versitygw cannot play (SSE-KMS, SSE-C,
 * non-MD5 ETags, stored checksums): a fake S3 client answers with responses shaped as AWS's, and the
 * tests assert what Clover sends and what it makes of the answers.
 */
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('base64');
const s3Error = (name: string, status: number, message: string) =>
  new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message });

type Sent = { command: string; input: Record<string, unknown> };

function fakeSite(name: string, answer: (command: string, input: Record<string, unknown>) => unknown, config: Record<string, unknown> = {}): Site & { sent: Sent[] } {
  const sent: Sent[] = [];
  const cfg = parseSites({ sites: { [name]: { region: 'eu-west-1', bucket: `bucket-${name}`, jurisdiction: 'IE', ...config } } })[name]!;
  const s3 = {
    send: (cmd: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const command = cmd.constructor.name.replace(/Command$/, '');
      sent.push({ command, input: cmd.input });
      try {
        return Promise.resolve(answer(command, cmd.input));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    },
  };
  return { name, config: cfg, bucket: cfg.bucket, s3: s3 as unknown as Site['s3'], sent };
}

const body = Buffer.from('the bytes of one small object');
const settings = { multipartThreshold: 8 * 1024 * 1024, minPartSize: 5 * 1024 * 1024, partConcurrency: 2 };

/** A target that checks Content-MD5 (refuses a wrong one as AWS does) and records its PUTs. */
const checkingTarget = (config: Record<string, unknown> = {}) => fakeSite('eu-ie', (command, input) => {
  if (command === 'PutObject') {
    const b = input.Body as Buffer | string;
    const bytes = Buffer.isBuffer(b) ? b : Buffer.from(b);
    if (input.ContentMD5 && input.ContentMD5 !== createHash('md5').update(bytes).digest('base64')) {
      throw s3Error('BadDigest', 400, 'The Content-MD5 you specified did not match what we received.');
    }
    return { ETag: '"0123456789abcdef0123456789abcdef"', ChecksumSHA256: input.ChecksumSHA256, ServerSideEncryption: input.ServerSideEncryption };
  }
  return {};
}, config);

function request(source: Site, target: Site, etag: string): CopyRequest {
  return {
    source, target, migrationId: 'm-1', settings, budget: new ByteBudget(64 * 1024 * 1024),
    object: { site: source.name, key: 'users/u-1/a.txt', etag, size: body.length, lastModified: '2026-01-01T00:00:00.000Z' },
  };
}

const getAnswer = (headers: Record<string, unknown>, bytes = body) => (command: string) => {
  if (command === 'GetObject') return { Body: Readable.from([bytes]), ContentLength: bytes.length, ...headers };
  if (command === 'GetObjectTagging') return { TagSet: [{ Key: 'team', Value: 'a b' }, { Key: 'k&=', Value: 'v' }] };
  throw new Error(`unexpected ${command}`);
};

describe('the MD5 decision (md5CheckFor)', () => {
  const plain = 'd41d8cd98f00b204e9800998ecf8427e';
  it.each([
    [plain, 'none', true, true, 'target'],
    [plain, 'sse-s3', true, true, 'target'],
    [plain, 'none', true, false, 'local'],
    [plain, 'none', false, true, 'local'], // multipart: the target never sees the whole object in one request
    [plain, 'sse-kms', true, true, 'none'],
    [plain, 'sse-c', true, true, 'none'],
    [`${plain}-3`, 'none', true, true, 'none'],
  ] as const)('ETag %s, source %s, single PUT %s, target checks Content-MD5 %s: %s', (etag, enc, single, target, want) => {
    expect(md5CheckFor(etag, enc, single, target)).toBe(want);
  });

  it('reads the source encryption from the GET response; only a full-object SHA-256 is a stored checksum to check', () => {
    expect(sourceEncryption({})).toBe('none');
    expect(sourceEncryption({ ServerSideEncryption: 'AES256' })).toBe('sse-s3');
    expect(sourceEncryption({ ServerSideEncryption: 'aws:kms' })).toBe('sse-kms');
    expect(sourceEncryption({ ServerSideEncryption: 'aws:kms:dsse' })).toBe('sse-kms');
    expect(sourceEncryption({ SSECustomerAlgorithm: 'AES256' })).toBe('sse-c');
    expect(storedChecksum({ ChecksumSHA256: 'abc=' })).toEqual({ algorithm: 'SHA256', value: 'abc=' });
    expect(storedChecksum({ ChecksumSHA256: 'abc=', ChecksumCRC32: 'x=', ChecksumType: 'FULL_OBJECT' })).toEqual({ algorithm: 'SHA256', value: 'abc=' });
    expect(storedChecksum({ ChecksumCRC32: 'x=' })).toEqual({ algorithm: 'CRC32', value: 'x=' });
    expect(storedChecksum({ ChecksumSHA256: 'abc=-3', ChecksumType: 'COMPOSITE' })).toBeUndefined();
    expect(storedChecksum({ ChecksumCRC32: 'x=-3' })).toBeUndefined();
    expect(storedChecksum({})).toBeUndefined();
    // The IEEE CRC32 of "hello" is 0x3610a686; S3 writes it as these 4 bytes in base64.
    expect(crc32Base64(crc32(Buffer.from('hello')))).toBe('NhCmhg==');
  });
});

describe('copyObject against AWS-shaped answers', () => {
  it('an SSE-KMS source: its ETag is not taken for an MD5 (the copy succeeds), no Content-MD5 is sent', async () => {
    const kmsEtag = '7e1b0c4e9d0a2f3b5c6d7e8f9a0b1c2d'; // 32 hex, but not the MD5 of the bytes
    const source = fakeSite('sg', getAnswer({ ETag: `"${kmsEtag}"`, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'arn:aws:kms:ap-southeast-1:1:key/k' }));
    const target = checkingTarget();
    const out = await copyObject(request(source, target, kmsEtag));
    expect(out.md5Check).toBe('none');
    const put = target.sent.filter((s) => s.command === 'PutObject' && s.input.Key === 'users/u-1/a.txt');
    expect(put).toHaveLength(1);
    expect(put[0]!.input.ContentMD5).toBeUndefined();
    expect(put[0]!.input.Body).toEqual(body);
  });

  it('a plain source to a target that checks Content-MD5: the source ETag is sent, no MD5 computed; damaged bytes are refused as SourceCorrupt', async () => {
    const etag = md5(body);
    const target = checkingTarget();
    const out = await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${etag}"` })), target, etag));
    expect(out.md5Check).toBe('target');
    const put = target.sent.find((s) => s.command === 'PutObject' && s.input.Key === 'users/u-1/a.txt')!;
    expect(put.input.ContentMD5).toBe(Buffer.from(etag, 'hex').toString('base64'));

    const damaged = Buffer.from(body);
    damaged.writeUInt8(damaged.readUInt8(3) ^ 0xff, 3);
    const err = await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${etag}"` }, damaged)), target, etag)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ type: 'SourceCorrupt', repeatable: true, permanent: false });
    expect((err as Error).message).toBe(`source object "users/u-1/a.txt" at site sg, bucket bucket-sg, ETag ${etag}: the bytes read do not match its ETag (target eu-ie refused them as Content-MD5)`);
  });

  it('a target that ignores Content-MD5, or refuses the probe for good, gets the local MD5; probed once per process', async () => {
    const etag = md5(body);
    const probes = (t: { sent: Sent[] }) => t.sent.filter((x) => String(x.input.Key).startsWith('_clover/probe/') && x.command === 'PutObject').length;
    const ignoring = fakeSite('eu-ie', (command, input) => (command === 'PutObject' ? { ETag: '"x"', ChecksumSHA256: input.ChecksumSHA256 } : {}));
    const denying = fakeSite('eu-ie', (command, input) => {
      if (command === 'PutObject' && String(input.Key).startsWith('_clover/probe/')) throw s3Error('AccessDenied', 403, 'Access Denied');
      return command === 'PutObject' ? { ETag: '"x"' } : {};
    });
    for (const target of [ignoring, denying]) {
      for (let i = 0; i < 2; i++) {
        const out = await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${etag}"` })), target, etag));
        expect(out.md5Check).toBe('local');
      }
      expect(probes(target)).toBe(1);
      expect(target.sent.filter((x) => x.command === 'PutObject' && x.input.ContentMD5 !== undefined && !String(x.input.Key).startsWith('_clover/'))).toEqual([]);
    }
  });

  it('the source\'s stored SHA-256 is compared with the bytes read: a mismatch is SourceCorrupt', async () => {
    const kmsEtag = 'ffffffffffffffffffffffffffffffff';
    const ok = await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${kmsEtag}"`, ServerSideEncryption: 'aws:kms', ChecksumSHA256: sha(body), ChecksumType: 'FULL_OBJECT' })), checkingTarget(), kmsEtag));
    expect(ok.sourceChecksumChecked).toBe(true);
    const bad = await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${kmsEtag}"`, ServerSideEncryption: 'aws:kms', ChecksumSHA256: sha(Buffer.from('other')) })), checkingTarget(), kmsEtag))
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ type: 'SourceCorrupt', repeatable: true });
    expect((bad as Error).message).toContain('do not match its stored SHA-256 checksum');
  });

  it('a stored CRC32 is checked too, for a single PUT and across the parts of a multipart copy', async () => {
    const kmsEtag = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';
    const crc = crc32Base64(crc32(body));
    const ok = await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${kmsEtag}"`, ServerSideEncryption: 'aws:kms', ChecksumCRC32: crc })), checkingTarget(), kmsEtag));
    expect(ok.sourceChecksumChecked).toBe(true);
    const bad = await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${kmsEtag}"`, ChecksumCRC32: crc32Base64(crc32(Buffer.from('x'))) })), checkingTarget(), kmsEtag))
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ type: 'SourceCorrupt', repeatable: true });
    expect((bad as Error).message).toContain(`do not match its stored CRC32 checksum`);
  });

  it('an SSE-C source is refused at once, permanent, naming site, bucket and key: by the GET error, or by its response', async () => {
    const refusing = fakeSite('sg', () => {
      throw s3Error('InvalidRequest', 400, 'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.');
    });
    const e1 = await copyObject(request(refusing, checkingTarget(), md5(body))).catch((e: unknown) => e);
    expect(e1).toMatchObject({ type: 'SourceNeedsCustomerKey', permanent: true });
    expect((e1 as Error).message).toMatch(/^GetObject failed at site sg, bucket bucket-sg, key "users\/u-1\/a.txt": the object is encrypted with a customer-provided key \(SSE-C\)/);
    const e2 = await copyObject(request(fakeSite('sg', getAnswer({ ETag: '"x"', SSECustomerAlgorithm: 'AES256' })), checkingTarget(), md5(body))).catch((e: unknown) => e);
    expect(e2).toMatchObject({ type: 'SourceNeedsCustomerKey', permanent: true });
  });

  it('the target site\'s encryption, the source\'s tags and Expires go on the PUT', async () => {
    const etag = md5(body);
    const expires = new Date('2030-01-01T00:00:00Z');
    const target = checkingTarget({ encryption: { type: 'aws:kms', keyId: 'alias/clover-eu' } });
    await copyObject(request(fakeSite('sg', getAnswer({ ETag: `"${etag}"`, TagCount: 2, Expires: expires })), target, etag));
    const put = target.sent.find((s) => s.command === 'PutObject' && s.input.Key === 'users/u-1/a.txt')!;
    expect(put.input).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'alias/clover-eu', Tagging: 'team=a%20b&k%26%3D=v', Expires: expires });
    // The Content-MD5 probe canary is encrypted the same way.
    expect(target.sent.find((s) => s.command === 'PutObject' && String(s.input.Key).startsWith('_clover/probe/'))!.input).toMatchObject({ ServerSideEncryption: 'aws:kms' });
  });
});

describe('sites file: encryption', () => {
  it('Clover\'s own records written to an encrypted site carry its encryption too', async () => {
    const site = fakeSite('eu-ie', () => ({ ETag: '"e"' }), { encryption: { type: 'AES256' } });
    await putJson(site, '_clover/migrations/m/x.json', { a: 1 }, 'a record');
    expect(site.sent[0]!.input).toMatchObject({ Key: '_clover/migrations/m/x.json', ServerSideEncryption: 'AES256' });
  });

  const site = (extra: Record<string, unknown>) => parseSites({ sites: { 'eu-ie': { region: 'eu-west-1', bucket: 'bucket-eu', jurisdiction: 'IE', ...extra } } });
  it('accepts AES256 and aws:kms (with or without a key id)', () => {
    expect(site({ encryption: { type: 'AES256' } })['eu-ie']!.encryption).toEqual({ type: 'AES256' });
    expect(site({ encryption: { type: 'aws:kms', keyId: 'k' }, requireEncryption: true })['eu-ie']!.encryption).toEqual({ type: 'aws:kms', keyId: 'k' });
  });
  it('refuses requireEncryption without encryption, and an unknown type, in one line', () => {
    expect(() => site({ requireEncryption: true })).toThrow(/^sites file: site "eu-ie", field encryption: requireEncryption is true but no encryption is configured/);
    expect(() => site({ encryption: { type: 'aws:kms:dsse' } })).toThrow(/site "eu-ie", field encryption/);
  });
});

describe('a multipart copy above the target\'s copyObjectMaxBytes (AWS-shaped answers)', () => {
  const big = Buffer.from(Array.from({ length: 2500 }, (_, i) => i % 251));
  const small = { multipartThreshold: 1000, minPartSize: 1000, partConcurrency: 2 };
  const shaOf = (b: Buffer) => createHash('sha256').update(b).digest('base64');

  /** A target holding one multipart object; `copyChecksum` is what it reports for a copied part's SHA-256. */
  function multipartTarget(copyChecksum: 'the part' | 'the whole object', copyStatus = 200) {
    const parts = new Map<number, Buffer>();
    let uploads = 0;
    return fakeSite('eu-ie', (command, input) => {
      switch (command) {
        case 'CreateMultipartUpload': return { UploadId: `up-${++uploads}` };
        case 'UploadPart': parts.set(input.PartNumber as number, input.Body as Buffer); return { ETag: `"p${String(input.PartNumber)}"` };
        case 'CompleteMultipartUpload': return { ETag: `"done-${String(input.UploadId)}-3"` };
        case 'UploadPartCopy': {
          if (copyStatus !== 200) throw s3Error('PreconditionFailed', copyStatus, 'At least one of the pre-conditions you specified did not hold');
          const [first, last] = String(input.CopySourceRange).replace('bytes=', '').split('-').map(Number) as [number, number];
          const whole = Buffer.concat([...parts.entries()].sort(([a], [b]) => a - b).map(([, b]) => b));
          const ChecksumSHA256 = copyChecksum === 'the part' ? shaOf(whole.subarray(first, last + 1)) : `${shaOf(whole)}-3`;
          return { CopyPartResult: { ETag: `"c${String(input.PartNumber)}"`, ChecksumSHA256 } };
        }
        case 'AbortMultipartUpload': return {};
        default: throw new Error(`unexpected ${command}`);
      }
    }, { copyObjectMaxBytes: 2000 });
  }
  const source = () => fakeSite('sg', (command) => {
    if (command === 'GetObject') return { Body: Readable.from([big]), ContentLength: big.length, ETag: '"abc-3"', TagCount: 0 };
    throw new Error(`unexpected ${command}`);
  });
  const req = (target: Site): CopyRequest => ({
    source: source(), target, migrationId: 'm-1', settings: small, budget: new ByteBudget(1024 * 1024),
    object: { site: 'sg', key: 'users/u-1/big', etag: 'abc-3', size: big.length, lastModified: '2026-01-01T00:00:00.000Z' },
  });
  const partShas = [big.subarray(0, 1000), big.subarray(1000, 2000), big.subarray(2000)].map(shaOf);

  it('records the SHA-256 by UploadPartCopy of the same ranges, pinned to the completed ETag, keeping the part checksums', async () => {
    const target = multipartTarget('the part');
    const out = await copyObject(req(target));
    const names = target.sent.map((s) => s.command);
    expect(names).not.toContain('CopyObject');
    const copies = target.sent.filter((s) => s.command === 'UploadPartCopy').map((s) => s.input);
    expect(copies.map((i) => [i.PartNumber, i.CopySourceRange, i.CopySourceIfMatch])).toEqual([
      [1, 'bytes=0-999', '"done-up-1-3"'], [2, 'bytes=1000-1999', '"done-up-1-3"'], [3, 'bytes=2000-2499', '"done-up-1-3"'],
    ]);
    const created = target.sent.filter((s) => s.command === 'CreateMultipartUpload').map((s) => s.input);
    expect(created[1]).toMatchObject({ ChecksumAlgorithm: 'SHA256', Metadata: expect.objectContaining({ 'clover-sha256': createHash('sha256').update(big).digest('hex') }) });
    const completes = target.sent.filter((s) => s.command === 'CompleteMultipartUpload').map((s) => s.input);
    expect(completes[1]).toMatchObject({ UploadId: 'up-2', IfMatch: '"done-up-1-3"' });
    expect((completes[1]!.MultipartUpload as { Parts: { ChecksumSHA256: string }[] }).Parts.map((p) => p.ChecksumSHA256)).toEqual(partShas);
    expect(out).toMatchObject({ targetEtag: 'done-up-2-3', sha256: createHash('sha256').update(big).digest('hex') });
    expect(out.targetChecksum).toMatch(/-3$/);
  });

  it('a store that reports the whole object\'s checksum for a copied part: that upload is aborted, the copy made again without checksums', async () => {
    const target = multipartTarget('the whole object');
    const out = await copyObject(req(target));
    expect(target.sent.filter((s) => s.command === 'AbortMultipartUpload').map((s) => s.input.UploadId)).toEqual(['up-2']);
    const created = target.sent.filter((s) => s.command === 'CreateMultipartUpload').map((s) => s.input);
    expect(created).toHaveLength(3);
    expect(created[2]!.ChecksumAlgorithm).toBeUndefined();
    expect(out).toMatchObject({ targetEtag: 'done-up-3-3', targetChecksum: '' });
  });

  it('checks a stored full-object CRC32 across the parts', async () => {
    const crcOf = (b: Buffer) => crc32Base64(crc32(b));
    const withCrc = (value: string) => ({ ...req(multipartTarget('the part')), source: fakeSite('sg', (command) => {
      if (command === 'GetObject') return { Body: Readable.from([big]), ContentLength: big.length, ETag: '"abc-3"', ChecksumCRC32: value, ChecksumType: 'FULL_OBJECT' };
      throw new Error(`unexpected ${command}`);
    }) });
    expect((await copyObject(withCrc(crcOf(big)))).sourceChecksumChecked).toBe(true);
    await expect(copyObject(withCrc(crcOf(Buffer.from('other'))))).rejects.toMatchObject({ type: 'SourceCorrupt' });
  });

  it('a foreign write after completion fails the copy as TargetChanged and aborts the self-copy', async () => {
    const target = multipartTarget('the part', 412);
    const err = await copyObject(req(target)).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'TargetChanged' });
    expect(target.sent.filter((s) => s.command === 'AbortMultipartUpload').map((s) => s.input.UploadId)).toEqual(['up-2']);
  });
});
