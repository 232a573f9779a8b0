import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { isCountryCode } from '../domain/countries';
import { InputError, firstIssue, formatPath } from './errors';

/** CopyObject's limit on AWS: the default of a site's `copyObjectMaxBytes`. */
export const DEFAULT_COPY_OBJECT_MAX_BYTES = 5 * 1024 ** 3;

const siteName = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const siteSchema = z
  .object({
    endpoint: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL such as http://127.0.0.1:7070' }).optional(),
    region: z.string().min(1, 'must name the S3 region, e.g. eu-west-1'),
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name (3-63 chars: a-z, 0-9, ".", "-")'),
    jurisdiction: z.string().refine(isCountryCode, 'must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. IE'),
    forcePathStyle: z.boolean().default(false),
    /** The copy's object GET/PUT over the lean request path (storage/lean-requests.ts), default true; false: through the AWS SDK. */
    leanRequests: z.boolean().optional(),
    credentials: z
      .object({
        accessKeyId: z.string().min(1, 'must not be empty'),
        secretAccessKey: z.string().min(1, 'must not be empty'),
        sessionToken: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    /**
     * Server-side encryption Clover asks for on every object it writes to this site (as a target): SSE-S3
     * (`AES256`) or SSE-KMS (`aws:kms`, with the key's id or ARN; without one the bucket's default key).
     */
    encryption: z
      .discriminatedUnion('type', [
        z.object({ type: z.literal('AES256') }).strict(),
        z.object({ type: z.literal('aws:kms'), keyId: z.string().min(1, 'must not be empty').optional() }).strict(),
      ], { error: 'must be { "type": "AES256" } or { "type": "aws:kms", "keyId": "..." }' })
      .optional(),
    /**
     * Objects written here must be encrypted: `encryption` is then required, and `clover start` proves
     * the store applies it (a canary under `_clover/probe/` must come back encrypted) before anything runs.
     */
    requireEncryption: z.boolean().optional(),
    /**
     * The largest object this site copies in place with CopyObject (default 5 GiB, the AWS limit). A
     * multipart copy above it records its SHA-256 in metadata with a multipart copy of itself instead.
     */
    copyObjectMaxBytes: z.number().int().positive('must be a positive number of bytes').optional(),
  })
  .strict()
  .refine((s) => !s.requireEncryption || s.encryption !== undefined, {
    message: 'requireEncryption is true but no encryption is configured: add "encryption": { "type": "aws:kms", "keyId": "..." } or { "type": "AES256" }',
    path: ['encryption'],
  });

export const sitesFileSchema = z
  .object({
    sites: z.record(z.string().regex(siteName, 'site names are lower-case letters, digits and "-"'), siteSchema),
  })
  .strict()
  .refine((f) => Object.keys(f.sites).length > 0, { message: 'must list at least one site', path: ['sites'] });

export type SiteConfig = z.infer<typeof siteSchema>;
export type Sites = Readonly<Record<string, Readonly<SiteConfig>>>;

/** Parses and validates a sites document; throws InputError naming the site, the field and the problem. */
export function parseSites(raw: unknown, source = 'sites file'): Sites {
  const result = sitesFileSchema.safeParse(raw);
  if (!result.success) {
    const issue = firstIssue(result.error);
    const path = issue.path;
    if (path[0] === 'sites' && path.length >= 2) {
      const field = path.length > 2 ? formatPath(path.slice(2)) : '(the site itself)';
      throw new InputError(`${source}: site "${String(path[1])}", field ${field}: ${issue.message}`);
    }
    throw new InputError(`${source}: ${formatPath(path)}: ${issue.message}`);
  }
  return Object.freeze(
    Object.fromEntries(Object.entries(result.data.sites).map(([name, site]) => [name, Object.freeze(site)])),
  );
}

/** Reads a sites file from disk (see README "Sites file"). */
export function loadSitesFile(path: string): Sites {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? ' (run `npm run stack -- up` for the local stack, or set CLOVER_SITES)' : '';
    throw new InputError(`cannot read sites file ${path}: ${code ?? String(err)}${hint}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(`sites file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseSites(raw, `sites file ${path}`);
}

/**
 * Environment variable names a worker reads for one site's credentials when the sites file has none,
 * e.g. CLOVER_SITE_EU_IE_ACCESS_KEY_ID. Without them the AWS SDK default chain applies.
 */
export function siteCredentialEnvNames(site: string): { accessKeyId: string; secretAccessKey: string; sessionToken: string } {
  const stem = `CLOVER_SITE_${site.toUpperCase().replace(/-/g, '_')}`;
  return {
    accessKeyId: `${stem}_ACCESS_KEY_ID`,
    secretAccessKey: `${stem}_SECRET_ACCESS_KEY`,
    sessionToken: `${stem}_SESSION_TOKEN`,
  };
}
