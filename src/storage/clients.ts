import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client, type PutObjectCommandInput } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Sites, SiteConfig } from '../config/sites';
import { siteCredentialEnvNames } from '../config/sites';
import { LeanClient } from './lean-requests';
import { progressed } from './liveness';

export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

export interface Site {
  name: string;
  config: Readonly<SiteConfig>;
  bucket: string;
  s3: S3Client;
  /** The lean GET/PUT path (storage/lean-requests.ts); absent when the site or the worker turned it off. */
  lean?: LeanClient;
}

export type SiteClients = ReadonlyMap<string, Site>;

export interface ClientOptions {
  /** Sockets per site: the number of S3 requests that can run at once against it. */
  maxSockets: number;
  /**
   * Milliseconds a request's socket may stay silent (no byte either way) before the request is
   * abandoned and retried by the SDK on a new connection (default 30 s). A hung server or network path
   * then costs a retry, not a copy that waits forever.
   */
  idleTimeoutMs?: number;
  /** Milliseconds to open a connection (default 5 s). */
  connectTimeoutMs?: number;
  /**
   * Send the copy's single-part GET and PUT through the lean path (default true); false: every request
   * through the SDK (worker `--sdk-requests`). A site's `"leanRequests": false` turns it off for that site.
   */
  leanRequests?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * One S3 client per site, built once per process. Credentials come from the sites file, else the
 * site's CLOVER_SITE_<NAME>_* variables, else the AWS SDK default chain; they never leave the worker.
 * Checksums are set deliberately: Clover sends an explicit SHA-256 with every write and hashes every
 * read itself, so the SDK's default CRC32 / aws-chunked trailers (which some S3-compatible servers store
 * as a bogus Content-Encoding) are turned off.
 */
export function createSiteClients(sites: Sites, opts: ClientOptions): SiteClients {
  const env = opts.env ?? process.env;
  const out = new Map<string, Site>();
  for (const [name, config] of Object.entries(sites)) {
    const names = siteCredentialEnvNames(name);
    const credentials =
      (config.credentials && { ...config.credentials }) ??
      (env[names.accessKeyId] && env[names.secretAccessKey]
        ? { accessKeyId: env[names.accessKeyId]!, secretAccessKey: env[names.secretAccessKey]!, sessionToken: env[names.sessionToken] }
        : undefined);
    // One pair of agents per site, shared by the SDK client and the lean path: maxSockets bounds both together.
    const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets };
    const httpAgent = new HttpAgent(agentOpts);
    const httpsAgent = new HttpsAgent(agentOpts);
    const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    const maxAttempts = 3;
    const s3 = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials,
      maxAttempts,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        httpAgent,
        httpsAgent,
        connectionTimeout: connectTimeoutMs,
        // An idle timeout, not a total one: a large part may stream for minutes, but never silently.
        socketTimeout: idleTimeoutMs,
      }),
    });
    // Every completed request counts as progress for the activity that sent it (heartbeats follow it).
    s3.middlewareStack.add((next) => async (args) => {
      const out = await next(args);
      progressed();
      return out;
    }, { step: 'initialize', name: 'cloverProgress' });
    const lean = opts.leanRequests !== false && config.leanRequests !== false
      ? new LeanClient(s3, config.bucket, config.forcePathStyle, { httpAgent, httpsAgent, connectTimeoutMs, idleTimeoutMs, maxAttempts })
      : undefined;
    out.set(name, { name, config, bucket: config.bucket, s3, lean });
  }
  return out;
}

export function destroySiteClients(clients: SiteClients): void {
  for (const c of clients.values()) c.s3.destroy();
}

/**
 * The server-side encryption the site's sites-file entry asks for, as PutObject input fields: sent on
 * every object and record Clover writes there (copies, uploads, metadata copies, `_clover/` records).
 */
export function siteEncryption(site: Site): Pick<PutObjectCommandInput, 'ServerSideEncryption' | 'SSEKMSKeyId'> {
  const e = site.config.encryption;
  if (!e) return {};
  return e.type === 'aws:kms' ? { ServerSideEncryption: 'aws:kms', ...(e.keyId ? { SSEKMSKeyId: e.keyId } : {}) } : { ServerSideEncryption: 'AES256' };
}
