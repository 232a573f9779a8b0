import { S3ServiceException } from '@aws-sdk/client-s3';
import { ByteBudget } from '../../src/storage/byte-budget';
import { StorageError, describeS3Error, isNotFound, isPreconditionFailed, s3Code, s3Status } from '../../src/storage/errors';
import { partSizeFor } from '../../src/storage/put-multipart';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** Lets every already-settled promise callback run. */
const settle = () => new Promise((r) => setImmediate(r));

describe('ByteBudget', () => {
  it('grants requests that fit at once and returns what it granted', async () => {
    const b = new ByteBudget(100);
    expect(await b.acquire(60)).toBe(60);
    expect(await b.acquire(40)).toBe(40);
  });

  it('makes a request that does not fit wait until enough is released', async () => {
    const b = new ByteBudget(100);
    await b.acquire(70);
    let granted: number | undefined;
    void b.acquire(50).then((n) => (granted = n));
    await settle();
    expect(granted).toBeUndefined();
    b.release(10); // 60 held: 50 more still does not fit
    await settle();
    expect(granted).toBeUndefined();
    b.release(20); // 40 held
    await settle();
    expect(granted).toBe(50);
  });

  it('a request above the limit is cut to the limit: alone it proceeds, otherwise it waits for everything', async () => {
    const b = new ByteBudget(100);
    expect(await b.acquire(1000)).toBe(100);
    b.release(100);
    await b.acquire(1);
    let granted: number | undefined;
    void b.acquire(1000).then((n) => (granted = n));
    await settle();
    expect(granted).toBeUndefined();
    b.release(1);
    await settle();
    expect(granted).toBe(100);
  });

  it('serves waiters in order: a small request does not overtake a waiting large one', async () => {
    const b = new ByteBudget(100);
    await b.acquire(90);
    const order: string[] = [];
    const big = b.acquire(80).then(() => order.push('big'));
    const small = b.acquire(5).then(() => order.push('small')); // would fit now, but big waits first
    await settle();
    expect(order).toEqual([]);
    b.release(90);
    await Promise.all([big, small]);
    expect(order).toEqual(['big', 'small']);
  });

  it('one release wakes every waiter that now fits', async () => {
    const b = new ByteBudget(100);
    await b.acquire(100);
    const granted: number[] = [];
    for (const n of [30, 30, 30, 30]) void b.acquire(n).then((x) => granted.push(x));
    b.release(100);
    await settle();
    expect(granted).toEqual([30, 30, 30]); // the fourth would make 120
  });

  it('never holds more than its limit under a concurrent load, and serves every request', async () => {
    const limit = 1000;
    const b = new ByteBudget(limit);
    let held = 0;
    let peak = 0;
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const done: number[] = [];
    const task = async (i: number) => {
      for (let round = 0; round < 20; round++) {
        const want = 1 + rnd(1500); // some above the limit
        const got = await b.acquire(want);
        expect(got).toBe(Math.min(want, limit));
        held += got;
        peak = Math.max(peak, held);
        expect(held).toBeLessThanOrEqual(limit);
        for (let k = rnd(3); k >= 0; k--) await settle();
        held -= got;
        b.release(got);
      }
      done.push(i);
    };
    await Promise.all(Array.from({ length: 16 }, (_, i) => task(i)));
    expect(done).toHaveLength(16);
    expect(held).toBe(0);
    expect(peak).toBeLessThanOrEqual(limit);
    expect(peak).toBeGreaterThan(limit / 2); // the budget was actually shared, not serialised
    expect(await b.acquire(limit)).toBe(limit); // and everything came back
  });
});

describe('partSizeFor', () => {
  const min = 16 * MiB;
  const parts = (size: number, part: number) => Math.ceil(size / part);

  it('is the minimum part size up to 9,000 minimum-size parts', () => {
    for (const size of [0, 1, min, 17 * MiB, GiB, 9000 * min]) expect(partSizeFor(size, min)).toBe(min);
  });
  it('grows above that so no object needs more than 9,000 parts', () => {
    for (const size of [9000 * min + 1, 200 * GiB, TiB, 5 * TiB, 5 * TiB - 1, 5 * TiB + 7, 3 * 9000 * min + 5]) {
      const p = partSizeFor(size, min);
      expect(Number.isInteger(p)).toBe(true);
      expect(p).toBeGreaterThanOrEqual(min);
      expect(parts(size, p)).toBeLessThanOrEqual(9000);
      expect(parts(size, p)).toBeGreaterThan(8990); // and not much bigger than needed
    }
  });
  it('keeps parts within S3\'s limits for the largest S3 object (5 TiB): ≥ 5 MiB, ≤ 5 GiB, ≤ 10,000 parts', () => {
    for (const m of [5 * MiB, 8 * MiB, 16 * MiB, 64 * MiB]) {
      const p = partSizeFor(5 * TiB, m);
      expect(p).toBeGreaterThanOrEqual(5 * MiB);
      expect(p).toBeLessThanOrEqual(5 * GiB);
      expect(parts(5 * TiB, p)).toBeLessThanOrEqual(9000);
    }
  });
  it('holds for a sweep of sizes and minimums', () => {
    for (const m of [5 * MiB, 16 * MiB, 100 * MiB]) {
      for (let size = 1; size < 6 * TiB; size = Math.floor(size * 1.37) + 1) {
        const p = partSizeFor(size, m);
        expect(p).toBeGreaterThanOrEqual(m);
        expect(parts(size, p)).toBeLessThanOrEqual(9000);
      }
    }
  });
});

describe('S3 error classification', () => {
  /** An error as the AWS SDK throws it: S3ServiceException named by the S3 error code, with the HTTP status. */
  const s3Error = (name: string, status: number | undefined, message = `${name} from the server`) =>
    new S3ServiceException({ name, $fault: status !== undefined && status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message });
  const ctx = { site: 'eu-ie', bucket: 'clover-eu-ie', key: 'users/u-1/a b.txt', action: 'PutObject' };

  const CONFIG = "check the sites file and the worker's credentials";
  const REGION = 'fix the region or endpoint of this site in the sites file';
  const permanent: [string, number, string, string][] = [
    ['AccessDenied', 403, 'access denied', CONFIG],
    ['InvalidAccessKeyId', 403, 'the access key is not known to the site', CONFIG],
    ['SignatureDoesNotMatch', 403, 'the secret key does not match the access key', CONFIG],
    ['NoSuchBucket', 404, 'the bucket does not exist', CONFIG],
    ['InvalidBucketName', 400, 'the bucket name is invalid', CONFIG],
    ['PermanentRedirect', 301, 'the bucket is in another region or endpoint', REGION],
    ['AuthorizationHeaderMalformed', 400, 'the region in the sites file is wrong for this endpoint', REGION],
    ['Forbidden', 403, 'access denied', CONFIG], // HEAD requests: no body, so no code, only the status
    ['AllAccessDisabled', 403, 'access denied', CONFIG], // any other 403
  ];
  it.each(permanent)('%s (HTTP %i) is permanent, and says so with site, bucket, key and action', (code, status, reason, next) => {
    const e = describeS3Error(s3Error(code, status), ctx);
    expect(e).toBeInstanceOf(StorageError);
    expect(e.permanent).toBe(true);
    expect(e.type).toBe(code);
    expect(e.status).toBe(status);
    expect(e.message).toBe(`PutObject failed at site eu-ie, bucket clover-eu-ie, key "users/u-1/a b.txt": ${reason} (${code}); ${next}`);
  });

  const transient: [string, number | undefined][] = [
    ['InternalError', 500], ['ServiceUnavailable', 503], ['SlowDown', 503], ['RequestTimeout', 400], ['ThrottlingException', 400],
    ['NoSuchKey', 404], ['PreconditionFailed', 412], ['BadDigest', 400], ['NotFound', 404],
  ];
  it.each(transient)('%s (HTTP %s) is transient: retried', (code, status) => {
    const e = describeS3Error(s3Error(code, status), ctx);
    expect(e.permanent).toBe(false);
    expect(e.type).toBe(code);
    expect(e.message).toBe(`PutObject failed at site eu-ie, bucket clover-eu-ie, key "users/u-1/a b.txt": ${code} (HTTP ${status}): ${code} from the server`);
  });

  it('network failures (no HTTP status) are transient', () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const e = describeS3Error(reset, { site: 'sg', bucket: 'clover-sg', action: 'ListObjectsV2' });
    expect(e.permanent).toBe(false);
    expect(e.status).toBeUndefined();
    expect(e.message).toBe('ListObjectsV2 failed at site sg, bucket clover-sg: Error: socket hang up');
    const timeout = Object.assign(new Error('Connection timed out after 1000 ms'), { name: 'TimeoutError' });
    expect(describeS3Error(timeout, ctx).permanent).toBe(false);
    expect(describeS3Error('a string', ctx).message).toMatch(/: Error: a string$/);
  });

  it('an error already described is passed through unchanged', () => {
    const first = describeS3Error(s3Error('AccessDenied', 403), ctx);
    expect(describeS3Error(first, { site: 'other', bucket: 'other', action: 'other' })).toBe(first);
  });

  it('a context without a key names no key; an empty key is still named', () => {
    expect(describeS3Error(s3Error('NoSuchBucket', 404), { site: 'sg', bucket: 'b', action: 'HeadBucket' }).message).not.toContain('key');
    expect(describeS3Error(s3Error('NoSuchBucket', 404), { site: 'sg', bucket: 'b', key: '', action: 'ListObjectsV2' }).message).toContain('key ""');
  });

  it('reads the code and status of SDK errors and of plain objects', () => {
    expect(s3Code(s3Error('SlowDown', 503))).toBe('SlowDown');
    expect(s3Status(s3Error('SlowDown', 503))).toBe(503);
    expect(s3Code({ Code: 'NoSuchKey', name: 'Error' })).toBe('NoSuchKey');
    expect(s3Code(undefined)).toBe('Error');
    expect(s3Status(undefined)).toBeUndefined();
  });

  it('isNotFound: a missing object, never a missing bucket', () => {
    expect(isNotFound(s3Error('NoSuchKey', 404))).toBe(true);
    expect(isNotFound(s3Error('NotFound', 404))).toBe(true); // HEAD
    expect(isNotFound(s3Error('NoSuchUpload', 404))).toBe(true);
    expect(isNotFound(s3Error('NoSuchBucket', 404))).toBe(false);
    expect(isNotFound(s3Error('AccessDenied', 403))).toBe(false);
    expect(isNotFound(s3Error('InternalError', 500))).toBe(false);
  });

  it('isPreconditionFailed: HTTP 412 or the PreconditionFailed code', () => {
    expect(isPreconditionFailed(s3Error('PreconditionFailed', 412))).toBe(true);
    expect(isPreconditionFailed(s3Error('Unknown', 412))).toBe(true);
    expect(isPreconditionFailed(s3Error('PreconditionFailed', undefined))).toBe(true);
    expect(isPreconditionFailed(s3Error('NotModified', 304))).toBe(false);
    expect(isPreconditionFailed(s3Error('ConditionalRequestConflict', 409))).toBe(false);
  });
});
