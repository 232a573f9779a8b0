import { GetObjectCommand } from '@aws-sdk/client-s3';
import { manifestKey, usersListKey } from '../domain/layout';
import { routeUser, type Routing } from '../domain/routing';
import { StorageError, describeS3Error, isPreconditionFailed, s3Status } from '../storage/errors';
import { headObject } from '../storage/object-meta';
import { site, type ActivityDeps } from './deps';
import { runActivity } from './scaffold';

export interface ReadUsersPageInput {
  migrationId: string;
  usersSite: string;
  /** Read the list only while it still has this ETag (the one the migration started with). */
  usersEtag?: string;
  offset: number;
  limit: number;
  /** When set, each row says whether its manifest is already committed (retry runs skip those). */
  checkCommitted?: Routing;
}

export interface ReadUsersPageResult {
  users: { userId: string; country: string; committed?: boolean }[];
  nextOffset: number;
  done: boolean;
}

const PAGE_BYTES = 256 * 1024;
/**
 * Bytes read per row asked for: a stored line is at most about 170 bytes (a 128-character id), so a
 * read of `limit` rows fetches about what it uses (a page of 100 users: 25 KiB, not 256 KiB).
 */
const BYTES_PER_ROW = 256;

/**
 * Splits the text of a ranged read of the user list into at most `limit` rows. Only whole lines count
 * (the last line without a newline only when the read reached the end of the list); `consumed` is the
 * number of bytes of `text` those rows used, so the next read starts right after them.
 */
export function parseUsersChunk(text: string, atEnd: boolean, limit: number): { rows: { userId: string; country: string }[]; consumed: number } {
  const rows: { userId: string; country: string }[] = [];
  let consumed = 0;
  for (let start = 0; rows.length < limit; ) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (atEnd && start < text.length) {
        rows.push(JSON.parse(text.slice(start)));
        consumed = Buffer.byteLength(text);
      }
      break;
    }
    const line = text.slice(start, nl);
    if (line.trim()) rows.push(JSON.parse(line));
    start = nl + 1;
    consumed = Buffer.byteLength(text.slice(0, start));
  }
  return { rows, consumed };
}

/**
 * Reads up to `limit` rows of the stored user list from byte `offset` (a ranged GET), so the workflow
 * never holds more than one page of users. Idempotent: same offset, same page.
 */
export function createUserActivities(deps: ActivityDeps) {
  function readUsersPage(input: ReadUsersPageInput): Promise<ReadUsersPageResult> {
    return runActivity(async ({ signal }) => {
      const s = site(deps, input.usersSite);
      const key = usersListKey(input.migrationId);
      /** One ranged read of `bytes` from the offset, split into whole rows; undefined past the end. */
      const read = async (bytes: number) => {
        let text: string;
        let total: number;
        try {
          const res = await s.s3.send(
            new GetObjectCommand({
              Bucket: s.bucket, Key: key, Range: `bytes=${input.offset}-${input.offset + bytes - 1}`,
              IfMatch: input.usersEtag ? `"${input.usersEtag}"` : undefined,
            }),
            { abortSignal: signal },
          );
          text = await res.Body!.transformToString('utf8');
          total = Number((res.ContentRange ?? '').split('/')[1] ?? NaN);
        } catch (err) {
          if (s3Status(err) === 416) return undefined;
          if (isPreconditionFailed(err)) {
            throw new StorageError(
              `the user list of migration ${input.migrationId} (site ${s.name}, key ${key}) was replaced after the migration started ` +
                `(its ETag is no longer ${input.usersEtag}); no more users are read from it. Start a migration with a new id for the new list`,
              'UserListChanged',
              true,
            );
          }
          throw describeS3Error(err, { site: s.name, bucket: s.bucket, key, action: 'reading the user list' });
        }
        const atEnd = Number.isFinite(total) ? input.offset + Buffer.byteLength(text) >= total : true;
        return { ...parseUsersChunk(text, atEnd, input.limit), atEnd, total };
      };
      const small = Math.min(PAGE_BYTES, Math.max(4096, input.limit * BYTES_PER_ROW));
      let got = await read(small);
      // No whole line in the short read (a list with unusually long lines): the full page.
      if (got && got.rows.length === 0 && !got.atEnd && small < PAGE_BYTES) got = await read(PAGE_BYTES);
      if (!got) return { users: [], nextOffset: input.offset, done: true };
      const { rows, consumed, total } = got;
      const users: ReadUsersPageResult['users'] = rows;
      const nextOffset = input.offset + consumed;
      if (input.checkCommitted) {
        const routing = input.checkCommitted;
        await Promise.all(
          users.map(async (u) => {
            const target = site(deps, routeUser(routing, u));
            u.committed = (await headObject(target, manifestKey(input.migrationId, u.userId), signal)) !== undefined;
          }),
        );
      }
      return { users, nextOffset, done: Number.isFinite(total) ? nextOffset >= total : users.length === 0 };
    });
  }
  return { readUsersPage };
}
