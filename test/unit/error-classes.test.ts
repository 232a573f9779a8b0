import { S3ServiceException } from '@aws-sdk/client-s3';
import { PERMANENT_S3_CODES, REPEATABLE_ATTEMPTS, S3_ERROR_TABLE, classifyS3Error, type ErrorClass } from '../../src/domain/error-classes';
import { PERMANENT_FAILURES } from '../../src/domain/names';
import { checkSourceLength, checkSourceMd5, type CopyRequest } from '../../src/storage/copy-request';
import { StorageError, describeS3Error, givenUp } from '../../src/storage/errors';

/** An error as the AWS SDK throws it: S3ServiceException named by the S3 error code, with the HTTP status. */
const s3Error = (name: string, status: number | undefined, message = `${name} from the server`) =>
  new S3ServiceException({ name, $fault: status !== undefined && status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message });
const ctx = { site: 'eu-ie', bucket: 'clover-eu-ie', key: 'users/u-1/a b.txt', action: 'PutObject' };
const where = 'PutObject failed at site eu-ie, bucket clover-eu-ie, key "users/u-1/a b.txt"';

describe('the S3 error table', () => {
  /** Every row of the table, with the HTTP status S3 answers it with and its expected class. */
  const rows: [string, number | undefined, ErrorClass][] = [
    ['AccessDenied', 403, 'permanent'],
    ['InvalidAccessKeyId', 403, 'permanent'],
    ['SignatureDoesNotMatch', 403, 'permanent'],
    ['ExpiredToken', 400, 'permanent'],
    ['TokenRefreshRequired', 400, 'permanent'],
    ['InvalidToken', 400, 'permanent'],
    ['AccountProblem', 403, 'permanent'],
    ['NoSuchBucket', 404, 'permanent'],
    ['InvalidBucketName', 400, 'permanent'],
    ['PermanentRedirect', 301, 'permanent'],
    ['AuthorizationHeaderMalformed', 400, 'permanent'],
    ['IllegalLocationConstraintException', 400, 'permanent'],
    ['InvalidObjectState', 403, 'permanent'],
    ['InvalidArgument', 400, 'repeatable'],
    ['InvalidRequest', 400, 'repeatable'],
    ['KeyTooLongError', 400, 'repeatable'],
    ['EntityTooLarge', 400, 'repeatable'],
    ['EntityTooSmall', 400, 'repeatable'],
    ['MetadataTooLarge', 400, 'repeatable'],
    ['MalformedXML', 400, 'repeatable'],
    ['MethodNotAllowed', 405, 'repeatable'],
    ['NotImplemented', 501, 'repeatable'],
    ['SourceCorrupt', undefined, 'repeatable'],
    ['SourceTruncated', undefined, 'repeatable'],
  ];

  it('the test covers every row, and every row only once', () => {
    expect(rows.map(([c]) => c).sort()).toEqual(Object.keys(S3_ERROR_TABLE).sort());
  });

  it.each(rows)('%s (HTTP %s) is %s; the message names site, bucket, key, meaning and next step', (code, status, cls) => {
    const rule = S3_ERROR_TABLE[code]!;
    expect(rule.class).toBe(cls);
    const e = describeS3Error(s3Error(code, status), ctx);
    expect(e).toBeInstanceOf(StorageError);
    expect(e.type).toBe(code);
    expect(e.status).toBe(status);
    expect(e.permanent).toBe(cls === 'permanent');
    expect(e.repeatable).toBe(cls === 'repeatable');
    const http = cls === 'repeatable' && status !== undefined ? `, HTTP ${status}` : '';
    expect(e.message).toBe(`${where}: ${rule.meaning} (${code}${http}); ${rule.action}`);
  });

  it('permanent rows, and only those, are never retried by the retry policies', () => {
    const permanent = rows.filter(([, , c]) => c === 'permanent').map(([code]) => code);
    expect([...PERMANENT_S3_CODES].sort()).toEqual(permanent.sort());
    for (const code of permanent) expect(PERMANENT_FAILURES).toContain(code);
    for (const [code, , c] of rows) if (c === 'repeatable') expect(PERMANENT_FAILURES).not.toContain(code);
  });

  it('a code not in the table falls back on the status: 401/403 permanent, a bare 301 (SDK "Unknown") a wrong region/endpoint', () => {
    expect(classifyS3Error('Forbidden', 403).class).toBe('permanent');
    expect(classifyS3Error('Unauthorized', 401).class).toBe('permanent');
    const moved = describeS3Error(s3Error('Unknown', 301, 'UnknownError'), ctx);
    expect(moved.permanent).toBe(true);
    expect(moved.message).toBe(`${where}: the site answered with a redirect (HTTP 301): the bucket is in another region or endpoint (Unknown); fix the region or endpoint of this site in the sites file`);
    expect(describeS3Error(s3Error('Unknown', 307), ctx).permanent).toBe(true);
  });

  it.each([['InternalError', 500], ['ServiceUnavailable', 503], ['SlowDown', 503], ['RequestTimeout', 400], ['IncompleteBody', 400], ['BadDigest', 400], ['Unknown', undefined]] as const)(
    '%s (HTTP %s) is transient: retried with no limit',
    (code, status) => {
      const e = describeS3Error(s3Error(code, status), ctx);
      expect(classifyS3Error(code, status).class).toBe('transient');
      expect(e.permanent).toBe(false);
      expect(e.repeatable).toBe(false);
    },
  );

  it(`givenUp: a repeatable failure becomes permanent after ${REPEATABLE_ATTEMPTS} attempts, keeping where and saying what next`, () => {
    const e = givenUp(describeS3Error(s3Error('KeyTooLongError', 400), ctx));
    expect(e.permanent).toBe(true);
    expect(e.repeatable).toBe(false);
    expect(e.type).toBe('KeyTooLongError');
    expect(e.message).toBe(`${where}: the key is too long for this store (KeyTooLongError, HTTP 400); ${S3_ERROR_TABLE.KeyTooLongError!.action} (failed 3 times in a row)`);
  });
});

describe("the copy's own checks of source bytes", () => {
  const req = { object: { key: 'users/u-1/rot.bin', etag: '0123456789abcdef0123456789abcdef', site: 'sg', size: 10, lastModified: '' }, source: { name: 'sg', bucket: 'clover-sg' } } as unknown as CopyRequest;

  it('SourceCorrupt names site, bucket, key and ETag, is repeatable, and once given up says what to do', () => {
    let err: unknown;
    try {
      checkSourceMd5(req, 'ffffffffffffffffffffffffffffffff');
    } catch (e) {
      err = e;
    }
    const e = err as StorageError;
    expect(e).toBeInstanceOf(StorageError);
    expect(e).toMatchObject({ type: 'SourceCorrupt', permanent: false, repeatable: true });
    expect(e.message).toBe('source object "users/u-1/rot.bin" at site sg, bucket clover-sg, ETag 0123456789abcdef0123456789abcdef: the bytes read do not match its ETag (MD5 ffffffffffffffffffffffffffffffff)');
    const final = givenUp(e, 3);
    expect(final.permanent).toBe(true);
    expect(final.message).toBe(`${e.message} (failed 3 times in a row); ${S3_ERROR_TABLE.SourceCorrupt!.action}`);
    expect(() => checkSourceMd5(req, req.object.etag)).not.toThrow();
  });

  it('SourceTruncated names the byte counts and is repeatable', () => {
    expect(() => checkSourceLength(req, 7, 10)).toThrow(expect.objectContaining({
      type: 'SourceTruncated', repeatable: true,
      message: 'source object "users/u-1/rot.bin" at site sg, bucket clover-sg, ETag 0123456789abcdef0123456789abcdef: read 7 bytes, expected 10',
    }));
  });
});
