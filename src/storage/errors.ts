import { REPEATABLE_ATTEMPTS, S3_ERROR_TABLE, classifyS3Error } from '../domain/error-classes';

/** What an S3 call was doing, for error messages an operator can act on. */
export interface S3Context {
  site: string;
  bucket: string;
  key?: string;
  action: string;
}

/**
 * An S3 failure with its context, classified by the table in domain/error-classes.ts: `permanent`
 * failures (access, missing bucket, bad configuration) must not be retried; `repeatable` ones (the
 * store refuses this very request, the source's bytes are damaged) are retried a few times, then end
 * the user (see `givenUp`); everything else (throttling, 5xx, network) is transient.
 */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly type: string,
    readonly permanent: boolean,
    readonly status?: number,
    readonly repeatable = false,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

export function s3Status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

export function s3Code(err: unknown): string {
  const e = err as { name?: string; Code?: string };
  return e?.Code ?? e?.name ?? 'Error';
}

export function isNotFound(err: unknown): boolean {
  const code = s3Code(err);
  return s3Status(err) === 404 && code !== 'NoSuchBucket' || code === 'NoSuchKey' || code === 'NotFound';
}

export function isPreconditionFailed(err: unknown): boolean {
  return s3Status(err) === 412 || s3Code(err) === 'PreconditionFailed';
}

/**
 * S3's answer to a GET of an SSE-C object without its customer key: 400 InvalidRequest "The object was
 * stored using a form of Server Side Encryption. The correct parameters must be provided…".
 */
export function isCustomerKeyRequired(err: unknown): boolean {
  const msg = (err as Error)?.message ?? '';
  return s3Status(err) === 400 && ['InvalidRequest', 'InvalidArgument'].includes(s3Code(err)) && /server side encryption|customer/i.test(msg);
}

/** Wraps any S3 error with the site, bucket, key and action, classified by the error table. */
export function describeS3Error(err: unknown, ctx: S3Context): StorageError {
  if (err instanceof StorageError) return err;
  const code = s3Code(err);
  const status = s3Status(err);
  const where = `site ${ctx.site}, bucket ${ctx.bucket}${ctx.key !== undefined ? `, key ${JSON.stringify(ctx.key)}` : ''}`;
  const rule = classifyS3Error(code, status);
  if (rule.class !== 'transient') {
    const http = rule.class === 'repeatable' && status !== undefined ? `, HTTP ${status}` : '';
    return new StorageError(`${ctx.action} failed at ${where}: ${rule.meaning} (${code}${http}); ${rule.action}`, code, rule.class === 'permanent', status, rule.class === 'repeatable');
  }
  const msg = (err as Error)?.message ?? String(err);
  return new StorageError(`${ctx.action} failed at ${where}: ${code}${status ? ` (HTTP ${status})` : ''}: ${msg}`, code, false, status);
}

/**
 * A repeatable failure that happened `attempts` times in a row, made permanent: the user fails with
 * the original message (site, bucket, key) and, when the table knows the type, what to do next.
 */
export function givenUp(err: StorageError, attempts: number = REPEATABLE_ATTEMPTS): StorageError {
  const action = S3_ERROR_TABLE[err.type]?.action;
  const next = action && !err.message.endsWith(action) ? `; ${action}` : '';
  return new StorageError(`${err.message} (failed ${attempts} times in a row)${next}`, err.type, true, err.status, false);
}

/** Thrown when the source object no longer has the ETag it was listed with (invariant 3). */
export class SourceChangedError extends StorageError {
  constructor(site: string, key: string) {
    super(`source object ${JSON.stringify(key)} at site ${site} changed while it was being copied`, 'SourceChanged', false, 412);
  }
}

/** Thrown when a conditional write to the target fails: someone else wrote the key (invariant 2). */
export class TargetChangedError extends StorageError {
  constructor(site: string, key: string) {
    super(`target key ${JSON.stringify(key)} at site ${site} was written by someone else during the copy`, 'TargetChanged', false, 412);
  }
}
