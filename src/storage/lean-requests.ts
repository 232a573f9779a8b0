import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, PutObjectCommand, type GetObjectCommandInput, type PutObjectCommandInput, type S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { progressed } from './liveness';

/**
 * The lean request path for the copy's hot requests: a single-part object GET and PUT (and Clover's own
 * JSON records, storage/json-records.ts), signed with the
 * SDK's own SigV4 signer (`@smithy/signature-v4`, credentials from the S3 client's own provider, so
 * session tokens and refresh work as for every other request) and sent over the site's kept-alive
 * agent, without the SDK's per-request middleware pipeline. Everything else (listings, HEAD, deletes,
 * multipart control) stays on `@aws-sdk/client-s3`, and so does any GET/PUT whose input names a field
 * this path does not map (`sendGetObject` / `sendPutObject` decide). Errors are shaped as the SDK
 * shapes them (name and Code from the XML body, `$metadata.httpStatusCode`), so storage/errors.ts
 * classifies both paths alike.
 */

/** SHA-256 of the empty body: the payload hash of a GET. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** The payload hash of a PUT whose body the signed x-amz-checksum-sha256 header already binds. */
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** PutObject input fields this path turns into headers; any other field set sends the request through the SDK. */
const PUT_HEADERS = {
  ContentType: 'content-type',
  ContentEncoding: 'content-encoding',
  CacheControl: 'cache-control',
  ContentDisposition: 'content-disposition',
  ContentLanguage: 'content-language',
  ContentMD5: 'content-md5',
  ChecksumSHA256: 'x-amz-checksum-sha256',
  IfMatch: 'if-match',
  IfNoneMatch: 'if-none-match',
  ACL: 'x-amz-acl',
  ServerSideEncryption: 'x-amz-server-side-encryption',
  SSEKMSKeyId: 'x-amz-server-side-encryption-aws-kms-key-id',
  SSEKMSEncryptionContext: 'x-amz-server-side-encryption-context',
  StorageClass: 'x-amz-storage-class',
  Tagging: 'x-amz-tagging',
} as const satisfies Partial<Record<keyof PutObjectCommandInput, string>>;
const PUT_OTHER = new Set(['Bucket', 'Key', 'Body', 'ContentLength', 'Metadata', 'Expires', 'BucketKeyEnabled']);

/** GetObject input fields this path maps. */
const GET_FIELDS = new Set(['Bucket', 'Key', 'IfMatch', 'VersionId']);

/** What the copy reads from a GetObject answer (the fields the SDK's output would carry). */
export interface ObjectRead {
  Body: Readable;
  ContentLength?: number;
  ETag?: string;
  LastModified?: Date;
  ContentType?: string;
  ContentEncoding?: string;
  CacheControl?: string;
  ContentDisposition?: string;
  ContentLanguage?: string;
  Expires?: Date;
  Metadata?: Record<string, string>;
  VersionId?: string;
  ChecksumSHA256?: string;
  ChecksumCRC32?: string;
  ChecksumType?: string;
  ServerSideEncryption?: string;
  SSEKMSKeyId?: string;
  SSECustomerAlgorithm?: string;
  StorageClass?: string;
  TagCount?: number;
}

/** How a GET is sent beyond its input. */
export interface GetOptions {
  /** Ask for the object's stored checksum (x-amz-checksum-mode: ENABLED) without the SDK hashing the body itself. */
  storedChecksum?: boolean;
}

export interface PutResult {
  ETag?: string;
  ChecksumSHA256?: string;
  VersionId?: string;
}

export interface LeanOptions {
  httpAgent: HttpAgent;
  httpsAgent: HttpsAgent;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Attempts per request, as the SDK client's maxAttempts (transient faults only). */
  maxAttempts: number;
}

/** A site's lean client: its S3 client's credentials, region and endpoint, resolved once. */
export class LeanClient {
  private resolved?: Promise<{ signer: SignatureV4; base: URL }>;

  constructor(private readonly s3: S3Client, private readonly bucket: string, private readonly forcePathStyle: boolean, private readonly opts: LeanOptions) {}

  /** The signer and the bucket's base URL, from the S3 client's own config (endpoint rules included). */
  private setup(): Promise<{ signer: SignatureV4; base: URL }> {
    this.resolved ??= (async () => {
      const cfg = this.s3.config;
      const region = await cfg.region();
      const custom = cfg.endpoint ? await cfg.endpoint() : undefined;
      const endpoint = custom ? `${custom.protocol}//${custom.hostname}${custom.port ? `:${custom.port}` : ''}${custom.path ?? ''}` : undefined;
      const ep = cfg.endpointProvider({
        Bucket: this.bucket, Region: region, ForcePathStyle: this.forcePathStyle, Endpoint: endpoint,
        UseFIPS: await cfg.useFipsEndpoint(), UseDualStack: await cfg.useDualstackEndpoint(), Accelerate: false,
        UseGlobalEndpoint: false, DisableMultiRegionAccessPoints: false, UseArnRegion: false,
      }, {});
      const scheme = (ep.properties?.authSchemes as { signingRegion?: string }[] | undefined)?.[0];
      const signer = new SignatureV4({
        service: 's3', region: scheme?.signingRegion ?? region, credentials: () => cfg.credentials(),
        sha256: NodeSha256, uriEscapePath: false, applyChecksum: false,
      });
      return { signer, base: new URL(String(ep.url)) };
    })();
    this.resolved.catch(() => { this.resolved = undefined; });
    return this.resolved;
  }

  async get(input: GetObjectCommandInput, signal?: AbortSignal, options: GetOptions = {}): Promise<ObjectRead> {
    const headers: Record<string, string> = { 'x-amz-content-sha256': EMPTY_SHA256 };
    if (input.IfMatch) headers['if-match'] = input.IfMatch;
    if (options.storedChecksum) headers['x-amz-checksum-mode'] = 'ENABLED';
    const query: Record<string, string> = input.VersionId ? { versionId: input.VersionId } : {};
    const res = await this.send('GET', input.Key!, query, headers, undefined, signal);
    const h = res.headers;
    return {
      Body: res,
      ContentLength: h['content-length'] !== undefined ? Number(h['content-length']) : undefined,
      ETag: one(h.etag),
      LastModified: date(h['last-modified']),
      ContentType: one(h['content-type']),
      ContentEncoding: one(h['content-encoding']),
      CacheControl: one(h['cache-control']),
      ContentDisposition: one(h['content-disposition']),
      ContentLanguage: one(h['content-language']),
      Expires: date(h.expires),
      Metadata: metadataOf(h),
      VersionId: one(h['x-amz-version-id']),
      ChecksumSHA256: one(h['x-amz-checksum-sha256']),
      ChecksumCRC32: one(h['x-amz-checksum-crc32']),
      ChecksumType: one(h['x-amz-checksum-type']),
      ServerSideEncryption: one(h['x-amz-server-side-encryption']),
      SSEKMSKeyId: one(h['x-amz-server-side-encryption-aws-kms-key-id']),
      SSECustomerAlgorithm: one(h['x-amz-server-side-encryption-customer-algorithm']),
      StorageClass: one(h['x-amz-storage-class']),
      TagCount: h['x-amz-tagging-count'] !== undefined ? Number(h['x-amz-tagging-count']) : undefined,
    };
  }

  /**
   * PUT of a whole body held in memory; `payloadSha256Hex` is its SHA-256. A PUT that carries its
   * SHA-256 as `x-amz-checksum-sha256` (the copy's PUTs) is signed with `UNSIGNED-PAYLOAD` instead of
   * that same hash: the checksum header is signed, and the server rejects a body that does not match
   * it, so the signature still binds the bytes, and the server hashes them once instead of twice (the
   * payload hash and the checksum; versitygw and S3 both check each). Any other PUT signs its payload.
   */
  async put(input: PutObjectCommandInput, payloadSha256Hex: string, signal?: AbortSignal): Promise<PutResult> {
    const body = input.Body as Uint8Array;
    const payloadHash = input.ChecksumSHA256 !== undefined ? UNSIGNED_PAYLOAD : payloadSha256Hex;
    const headers: Record<string, string> = { 'x-amz-content-sha256': payloadHash, 'content-length': String(body.length) };
    for (const [field, header] of Object.entries(PUT_HEADERS)) {
      const v = input[field as keyof typeof PUT_HEADERS];
      if (v !== undefined) headers[header] = String(v);
    }
    if (input.Expires !== undefined) headers.expires = new Date(input.Expires).toUTCString();
    if (input.BucketKeyEnabled !== undefined) headers['x-amz-server-side-encryption-bucket-key-enabled'] = String(input.BucketKeyEnabled);
    for (const [k, v] of Object.entries(input.Metadata ?? {})) headers[`x-amz-meta-${k.toLowerCase()}`] = v;
    const res = await this.send('PUT', input.Key!, {}, headers, body, signal);
    res.resume(); // the answer's body (if any) is not needed; the socket goes back to the pool
    return { ETag: one(res.headers.etag), ChecksumSHA256: one(res.headers['x-amz-checksum-sha256']), VersionId: one(res.headers['x-amz-version-id']) };
  }

  /** Signs and sends one request, retrying transient faults like the SDK's standard retry; resolves on a 2xx. */
  private async send(method: 'GET' | 'PUT', key: string, query: Record<string, string>, headers: Record<string, string>, body: Uint8Array | undefined, signal?: AbortSignal): Promise<IncomingMessage> {
    const { signer, base } = await this.setup();
    const basePath = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
    const path = basePath + key.split('/').map(encodeSegment).join('/');
    for (let attempt = 1; ; attempt++) {
      try {
        // The clock offset the S3 client keeps (it corrects it when a server says the clock is skewed).
        const cfg = this.s3.config as { systemClockOffset?: number };
        const signed = await signer.sign({
          method, protocol: base.protocol, hostname: base.hostname, port: base.port ? Number(base.port) : undefined, path, query,
          headers: { ...headers, host: base.host }, body,
        }, { signingDate: new Date(Date.now() + (cfg.systemClockOffset ?? 0)) });
        const res = await this.exchange(base.protocol, signed, body, signal);
        progressed();
        if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) return res;
        const err = await errorOf(res);
        const serverTime = Date.parse(one(res.headers.date) ?? '');
        if (CLOCK_SKEW.has(err.name) && !Number.isNaN(serverTime) && Math.abs(serverTime - (Date.now() + (cfg.systemClockOffset ?? 0))) >= 300_000) {
          // As the SDK does: a clock more than 5 minutes off takes the server's, and the request is signed again.
          cfg.systemClockOffset = serverTime - Date.now();
          (err as ServiceError & { $retryable?: boolean }).$retryable = true;
        }
        throw err;
      } catch (err) {
        if (attempt >= this.opts.maxAttempts || signal?.aborted || !retryable(err)) {
          if (err && typeof err === 'object' && '$metadata' in err) (err as ServiceError).$metadata.attempts = attempt;
          throw err;
        }
        // Full jitter, as the SDK's standard retry strategy: up to 100 ms × 2^attempt.
        await sleep(Math.random() * Math.min(20_000, 100 * 2 ** attempt), undefined, { signal });
      }
    }
  }

  private exchange(protocol: string, signed: { method: string; hostname: string; port?: number; path: string; query?: Record<string, unknown>; headers: Record<string, string> }, body: Uint8Array | undefined, signal?: AbortSignal): Promise<IncomingMessage> {
    const qs = new URLSearchParams(signed.query as Record<string, string>).toString();
    const https = protocol === 'https:';
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortError());
      const req = (https ? httpsRequest : httpRequest)({
        method: signed.method, hostname: signed.hostname, port: signed.port, path: qs ? `${signed.path}?${qs}` : signed.path,
        headers: signed.headers, agent: https ? this.opts.httpsAgent : this.opts.httpAgent,
      });
      const onAbort = () => req.destroy(abortError());
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal?.removeEventListener('abort', onAbort));
      // An idle timeout, not a total one (as the SDK client's socketTimeout): no byte either way for that long.
      req.setTimeout(this.opts.idleTimeoutMs, () => req.destroy(timeoutError(`Connection timed out after ${this.opts.idleTimeoutMs} ms`)));
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        const t = setTimeout(() => req.destroy(timeoutError(`Socket timed out without establishing a connection within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
        socket.once('connect', () => clearTimeout(t));
        socket.once('close', () => clearTimeout(t));
      });
      req.once('error', reject);
      req.once('response', resolve);
      req.end(body);
    });
  }
}

/** The SDK-shaped error of a non-2xx answer: name and Code from the XML body (else from the status), $metadata. */
async function errorOf(res: IncomingMessage): Promise<ServiceError> {
  const status = res.statusCode ?? 0;
  let text = '';
  try {
    for await (const chunk of res) {
      if (text.length < 64 * 1024) text += (chunk as Buffer).toString('utf8');
    }
  } catch {
    // A body cut off: the status still says what happened.
  }
  const field = (name: string) => {
    const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(text);
    return m ? unescapeXml(m[1]!) : undefined;
  };
  const code = field('Code') ?? (status === 404 ? 'NotFound' : status === 412 ? 'PreconditionFailed' : status === 304 ? 'NotModified' : status === 403 ? 'Forbidden' : 'Unknown');
  const err = new Error(field('Message') ?? (code === 'Unknown' ? 'UnknownError' : code)) as ServiceError;
  err.name = code;
  err.Code = code;
  err.$fault = status >= 500 ? 'server' : 'client';
  err.$metadata = { httpStatusCode: status, requestId: field('RequestId') ?? one(res.headers['x-amz-request-id']), extendedRequestId: one(res.headers['x-amz-id-2']) };
  return err;
}

interface ServiceError extends Error {
  Code: string;
  $fault: 'client' | 'server';
  $metadata: { httpStatusCode?: number; requestId?: string; extendedRequestId?: string; attempts?: number };
}

const THROTTLING = new Set(['Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottledException', 'TooManyRequestsException', 'SlowDown', 'RequestLimitExceeded', 'BandwidthLimitExceeded', 'RequestThrottled', 'ProvisionedThroughputExceededException', 'PriorRequestNotComplete', 'EC2ThrottledException']);
const CLOCK_SKEW = new Set(['AuthFailure', 'InvalidSignatureException', 'RequestExpired', 'RequestInTheFuture', 'RequestTimeTooSkewed', 'SignatureDoesNotMatch']);
const TRANSIENT_CODES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'InternalError']);
const NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/** What the SDK's standard retry strategy retries: throttling, transient codes, 5xx/429, network faults and timeouts. */
function retryable(err: unknown): boolean {
  const e = err as Partial<ServiceError> & { code?: string };
  if (e?.name === 'AbortError') return false;
  if ((err as { $retryable?: boolean }).$retryable) return true;
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined) return status === 429 || [500, 502, 503, 504].includes(status) || THROTTLING.has(e.name ?? '') || TRANSIENT_CODES.has(e.name ?? '');
  return e?.name === 'TimeoutError' || NETWORK.has(e?.code ?? '');
}

function abortError(): Error {
  const err = new Error('The operation was aborted');
  err.name = 'AbortError';
  return err;
}

function timeoutError(message: string): Error {
  const err = new Error(message);
  err.name = 'TimeoutError';
  return err;
}

/** A key's path segment as S3 (and the SDK) encode it: RFC 3986, `!'()*` included. */
function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (m, e: string) => {
    switch (e) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'amp': return '&';
      case 'quot': return '"';
      case 'apos': return '\'';
      default: return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(', ') : v);

function date(v: string | string[] | undefined): Date | undefined {
  const s = one(v);
  if (s === undefined) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function metadataOf(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (k.startsWith('x-amz-meta-') && v !== undefined) out[k.slice(11)] = one(v)!;
  return out;
}

/** SHA-256 / HMAC-SHA-256 for the signer, from node:crypto (what @smithy/hash-node does). */
class NodeSha256 {
  private h: Hash | Hmac;
  private readonly secret?: string | Uint8Array;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.secret = secret === undefined ? undefined : bytesOf(secret);
    this.h = this.secret ? createHmac('sha256', this.secret) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytesOf(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.h.digest());
  }
  reset(): void {
    this.h = this.secret ? createHmac('sha256', this.secret) : createHash('sha256');
  }
}

function bytesOf(d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof d === 'string') return d;
  return ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d);
}

/** The part of a Site the two senders need. */
interface Sender {
  s3: S3Client;
  lean?: LeanClient;
}

/** True when the lean path can send this GET exactly as the SDK would. */
export function leanGetFits(input: GetObjectCommandInput): boolean {
  return Object.entries(input).every(([k, v]) => v === undefined || GET_FIELDS.has(k)) && typeof input.Key === 'string';
}

/** True when the lean path can send this PUT exactly as the SDK would: every field set is one it maps, the body is in memory. */
export function leanPutFits(input: PutObjectCommandInput): boolean {
  if (!(input.Body instanceof Uint8Array) || typeof input.Key !== 'string') return false;
  if (input.ContentLength !== undefined && input.ContentLength !== input.Body.length) return false;
  return Object.entries(input).every(([k, v]) => v === undefined || k in PUT_HEADERS || PUT_OTHER.has(k));
}

/** GetObject through the site's lean client when it has one and the input fits, else the SDK. */
export async function sendGetObject(site: Sender, input: GetObjectCommandInput, signal?: AbortSignal, options: GetOptions = {}): Promise<ObjectRead> {
  if (site.lean && leanGetFits(input)) return site.lean.get(input, signal, options);
  const command = new GetObjectCommand(input);
  if (options.storedChecksum) {
    command.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers['x-amz-checksum-mode'] = 'ENABLED';
        return next(args);
      },
      { step: 'build', name: 'cloverChecksumMode' },
    );
  }
  const out = await site.s3.send(command, { abortSignal: signal });
  return { ...out, Body: out.Body as Readable };
}

/**
 * PutObject of an in-memory body whose SHA-256 is `payloadSha256Hex`, through the lean client when it
 * fits, else the SDK with the payload hash preset (`presetHash`: storage/copy-request.ts's signedWith).
 */
export async function sendPutObject(
  site: Sender, input: PutObjectCommandInput, payloadSha256Hex: string, presetHash: (c: PutObjectCommand, sha256Hex: string) => PutObjectCommand, signal?: AbortSignal,
): Promise<PutResult> {
  if (site.lean && leanPutFits(input)) return site.lean.put(input, payloadSha256Hex, signal);
  return site.s3.send(presetHash(new PutObjectCommand(input), payloadSha256Hex), { abortSignal: signal });
}
