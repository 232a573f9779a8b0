import { PERMANENT_S3_ERRORS } from '../domain/names';

/** What an S3 call was doing, for error messages an operator can act on. */
export interface S3Context {
  site: string;
  bucket: string;
  key?: string;
  action: string;
}


/**
 * An S3 failure with its context. `permanent` failures (access, missing bucket, bad configuration)
 * must not be retried; everything else (throttling, 5xx, network) is transient.
 */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly type: string,
    readonly permanent: boolean,
    readonly status?: number,
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

/** Wraps any S3 error with the site, bucket, key and action, classified permanent or transient. */
export function describeS3Error(err: unknown, ctx: S3Context): StorageError {
  if (err instanceof StorageError) return err;
  const code = s3Code(err);
  const status = s3Status(err);
  const where = `site ${ctx.site}, bucket ${ctx.bucket}${ctx.key !== undefined ? `, key ${JSON.stringify(ctx.key)}` : ''}`;
  const reason = PERMANENT_S3_ERRORS[code] ?? (status === 403 ? 'access denied' : undefined);
  if (reason) {
    return new StorageError(`${ctx.action} failed at ${where}: ${reason} (${code}); check the sites file and the worker's credentials`, code, true, status);
  }
  const msg = (err as Error)?.message ?? String(err);
  return new StorageError(`${ctx.action} failed at ${where}: ${code}${status ? ` (HTTP ${status})` : ''}: ${msg}`, code, false, status);
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
