import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { isCountryCode } from '../domain/countries';
import { isEea } from '../domain/eea';
import { CONTROL_ROOT } from '../domain/layout';
import type { UserRow } from '../domain/routing';
import { routingTargets } from '../domain/routing';
import { durationMs } from './duration';
import { InputError, firstIssue, formatPath } from './errors';
import type { Sites } from './sites';
import { checkUsersFile, usersFileRows } from './user-list';

export const USER_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

export const userRowSchema = z
  .object({
    userId: z.string().min(1, 'must not be empty').regex(USER_ID, 'must be 1-128 characters of A-Z a-z 0-9 . _ @ - (starting with a letter or digit)'),
    country: z.string().refine(isCountryCode, 'must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. DE'),
  })
  .strict();

/** Users migrated at once, at most: their ids are part of the migration's workflow state. */
export const MAX_USERS_IN_FLIGHT = 1000;
/** Objects of one user copied at once, at most (each holds a socket and a buffer). */
export const MAX_OBJECTS_PER_USER = 256;


/** An S3 Object Lock retention: mode, and days from each write. */
const retentionSchema = z
  .object({
    mode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
    days: z.number().int('must be a whole number').positive('must be a positive number').max(36500, 'must be at most 36500 (100 years)'),
  })
  .strict();

const planSchema = z
  .object({
    migrationId: z.string().regex(/^[a-z0-9-]{1,63}$/, 'must be 1-63 characters of a-z, 0-9 and "-"'),
    sources: z.array(z.string().min(1)).min(1, 'must name at least one source site'),
    routing: z
      .object({
        default: z.string().min(1, 'must name a target site'),
        byCountry: z.record(z.string().refine(isCountryCode, 'must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. NO'), z.string().min(1)).default({}),
      })
      .strict(),
    users: z.array(userRowSchema).min(1, 'must list at least one user').optional(),
    usersFile: z.string().min(1).optional(),
    userPrefix: z
      .string()
      .default('users/{userId}/')
      .refine((p) => p.includes('{userId}'), 'must contain {userId}')
      .refine((p) => !p.startsWith(CONTROL_ROOT), `must not start with ${CONTROL_ROOT} (Clover's own records live there)`)
      .refine((p) => p.endsWith('/'), 'must end with "/" so one user\'s prefix never matches another\'s'),
    verify: z.enum(['full', 'checksum']).default('full'),
    conflictPolicy: z.enum(['newest-wins', 'fail']).default('newest-wins'),
    concurrency: z
      .object({
        // Upper bounds keep the migration's state small (in-flight user ids) and a worker's sockets finite.
        users: z.number().int('must be a whole number').positive('must be a positive number').max(MAX_USERS_IN_FLIGHT, `must be at most ${MAX_USERS_IN_FLIGHT}`).default(8),
        objectsPerUser: z.number().int('must be a whole number').positive('must be a positive number').max(MAX_OBJECTS_PER_USER, `must be at most ${MAX_OBJECTS_PER_USER}`).default(16),
      })
      .strict()
      .default({ users: 8, objectsPerUser: 16 }),
    sourceDisposition: z.enum(['keep', 'delete-after-verify']).default('keep'),
    gracePeriod: z
      .string()
      .regex(/^\d+(ms|s|m|h|d)$/, 'must be a duration such as 7d, 12h, 30m, 45s or 500ms')
      .default('7d'),
    maxDeletes: z.number().int('must be a whole number').nonnegative('must not be negative').optional(),
    cutover: z.enum(['auto', 'operator']).default('auto'),
    syncInterval: z
      .string()
      .regex(/^\d+(ms|s|m|h|d)$/, 'must be a duration such as 7d, 12h, 30m, 45s or 500ms')
      .refine((d) => durationMs(d) >= 1000, 'must be at least 1s')
      .optional(),
    evidenceRetention: retentionSchema.optional(),
    /** S3 Object Lock retention on every EU copy Clover writes (the target buckets must have Object Lock). */
    targetRetention: retentionSchema.optional(),
    /** Versioned sources: at cut-over also delete every version of keys whose current version is a delete marker (erased). */
    purgeErased: z.boolean().optional(),
    /** Archived (GLACIER, DEEP_ARCHIVE) source objects: RestoreObject for `days` at `tier`, wait, then copy. Without it such a user fails. */
    restoreArchived: z
      .object({
        days: z.number().int('must be a whole number').positive('must be a positive number'),
        tier: z.enum(['Standard', 'Bulk', 'Expedited']).default('Bulk'),
        pollInterval: z.string().regex(/^\d+(ms|s|m|h|d)$/, 'must be a duration such as 15m or 30s').default('15m'),
      })
      .strict()
      .optional(),
    /** Storage class of the EU copies (e.g. STANDARD_IA); default the source's class when it is not an archive class. */
    targetStorageClass: z.enum(['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'REDUCED_REDUNDANCY', 'GLACIER_IR']).optional(),
  })
  .strict();

/** The plan's settings: everything but the user list, small enough for a workflow input. */
export type PlanSettings = Omit<z.infer<typeof planSchema>, 'users' | 'usersFile'>;

export interface LoadedPlan {
  settings: PlanSettings;
  /** Where the users come from, for messages. */
  usersSource: string;
  /** The users of a plan that lists them (field users). */
  users?: UserRow[];
  /** The users file (field usersFile, resolved), validated but not held in memory: read again as a stream. */
  usersFile?: string;
  /** How many users (default: `users.length`). */
  usersTotal?: number;
}

/** How many users the plan has. */
export function usersTotal(plan: LoadedPlan): number {
  return plan.usersTotal ?? plan.users?.length ?? 0;
}

/** The plan's users, in order, streamed from its users file when it has one (memory flat in the list's length). */
export async function* planUsers(plan: LoadedPlan): AsyncGenerator<UserRow> {
  if (plan.users) {
    yield* plan.users;
    return;
  }
  if (!plan.usersFile) return;
  for await (const { row } of usersFileRows(plan.usersFile)) yield row;
}

/**
 * Reads and validates a plan file against the sites: every rule README's "Plan file" lists, each broken
 * rule a one-line InputError naming the field. Nothing is started before this passes.
 */
export async function loadPlan(planPath: string, sites: Sites): Promise<LoadedPlan> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(planPath, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new InputError(e.code ? `cannot read plan file ${planPath}: ${e.code}` : `plan file ${planPath} is not valid JSON: ${e.message}`);
  }
  const parsed = planSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = firstIssue(parsed.error);
    throw new InputError(`plan ${planPath}: field ${formatPath(issue.path)}: ${issue.message}`);
  }
  const { users: inline, usersFile, ...settings } = parsed.data;
  checkSites(settings, sites, planPath);
  if ((inline === undefined) === (usersFile === undefined)) {
    throw new InputError(`plan ${planPath}: give exactly one of field users (a list) or field usersFile (a JSON-lines file)`);
  }
  if (inline) {
    const usersSource = `plan ${planPath}`;
    checkUnique(inline.map((u, i) => ({ userId: u.userId, where: `field users[${i}].userId` })), usersSource);
    return { settings: Object.freeze(settings), usersSource, users: inline, usersTotal: inline.length };
  }
  const file = resolve(dirname(planPath), usersFile!);
  let bytes: number;
  try {
    bytes = statSync(file).size;
  } catch (err) {
    throw new InputError(`cannot read users file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const { total } = await checkUsersFile(file, bytes);
  return { settings: Object.freeze(settings), usersSource: `users file ${file}`, usersFile: file, usersTotal: total };
}

function checkSites(settings: PlanSettings, sites: Sites, planPath: string): void {
  const known = Object.keys(sites).join(', ');
  settings.sources.forEach((s, i) => {
    if (!sites[s]) throw new InputError(`plan ${planPath}: field sources[${i}]: unknown site "${s}" (the sites file has: ${known})`);
  });
  if (new Set(settings.sources).size !== settings.sources.length) {
    throw new InputError(`plan ${planPath}: field sources: a site is listed twice`);
  }
  const targetFields: [string, string][] = [
    ['routing.default', settings.routing.default],
    ...Object.entries(settings.routing.byCountry).map(([c, s]) => [`routing.byCountry.${c}`, s] as [string, string]),
  ];
  for (const [field, target] of targetFields) {
    const site = sites[target];
    if (!site) throw new InputError(`plan ${planPath}: field ${field}: unknown site "${target}" (the sites file has: ${known})`);
    if (!isEea(site.jurisdiction)) {
      throw new InputError(`plan ${planPath}: field ${field}: site "${target}" is in jurisdiction ${site.jurisdiction}, outside the EEA; EU users' data may only be routed to EEA sites`);
    }
    if (settings.sources.includes(target)) {
      throw new InputError(`plan ${planPath}: field ${field}: site "${target}" is also a source; a site cannot be both source and target`);
    }
  }
  if (routingTargets(settings.routing).length === 0) throw new InputError(`plan ${planPath}: field routing: no target site`);
}

function checkUnique(ids: { userId: string; where: string }[], source: string): void {
  const seen = new Map<string, string>();
  for (const { userId, where } of ids) {
    const first = seen.get(userId);
    if (first) throw new InputError(`${source}: ${where}: duplicate userId "${userId}" (first at ${first})`);
    seen.set(userId, where);
  }
}

/**
 * Reads a (small) JSON-lines user list into memory; a bad line is reported with its line number. Blank
 * lines are ignored. Plans never need this: they stream their users file (`planUsers`).
 */
export async function readUsersFile(file: string): Promise<UserRow[]> {
  const users: UserRow[] = [];
  const seen = new Map<string, number>();
  for await (const { row, lineNo } of usersFileRows(file)) {
    const first = seen.get(row.userId);
    if (first) throw new InputError(`users file ${file}, line ${lineNo}: duplicate userId "${row.userId}" (first on line ${first})`);
    seen.set(row.userId, lineNo);
    users.push(row);
  }
  if (users.length === 0) throw new InputError(`users file ${file}: no users in it`);
  return users;
}
