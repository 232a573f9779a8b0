import { GetObjectCommand } from '@aws-sdk/client-s3';
import { manifestKey, usersListKey } from '../domain/layout';
import { routeUser, type Routing } from '../domain/routing';
import { describeS3Error } from '../storage/errors';
import { headObject } from '../storage/object-copy';
import { site, toFailure, type ActivityDeps } from './deps';

export interface ReadUsersPageInput {
  migrationId: string;
  usersSite: string;
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
 * Reads up to `limit` rows of the stored user list from byte `offset` (a ranged GET), so the workflow
 * never holds more than one page of users. Idempotent: same offset, same page.
 */
export function createUserActivities(deps: ActivityDeps) {
  return {
    async readUsersPage(input: ReadUsersPageInput): Promise<ReadUsersPageResult> {
      const s = site(deps, input.usersSite);
      const key = usersListKey(input.migrationId);
      let text: string;
      let total: number;
      try {
        const res = await s.s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: key, Range: `bytes=${input.offset}-${input.offset + PAGE_BYTES - 1}` }));
        text = await res.Body!.transformToString('utf8');
        total = Number((res.ContentRange ?? '').split('/')[1] ?? NaN);
      } catch (err) {
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) {
          return { users: [], nextOffset: input.offset, done: true };
        }
        throw toFailure(describeS3Error(err, { site: s.name, bucket: s.bucket, key, action: 'reading the user list' }));
      }
      const users: ReadUsersPageResult['users'] = [];
      let consumed = 0;
      const atEnd = Number.isFinite(total) ? input.offset + Buffer.byteLength(text) >= total : true;
      for (let start = 0; users.length < input.limit; ) {
        const nl = text.indexOf('\n', start);
        if (nl < 0) {
          if (atEnd && start < text.length) {
            users.push(JSON.parse(text.slice(start)));
            consumed = Buffer.byteLength(text);
          }
          break;
        }
        const line = text.slice(start, nl);
        if (line.trim()) users.push(JSON.parse(line));
        start = nl + 1;
        consumed = Buffer.byteLength(text.slice(0, start));
      }
      const nextOffset = input.offset + consumed;
      if (input.checkCommitted) {
        const routing = input.checkCommitted;
        await Promise.all(
          users.map(async (u) => {
            const target = site(deps, routeUser(routing, u));
            u.committed = (await headObject(target, manifestKey(input.migrationId, u.userId)).catch((e) => { throw toFailure(e); })) !== undefined;
          }),
        );
      }
      return { users, nextOffset, done: Number.isFinite(total) ? nextOffset >= total : users.length === 0 };
    },
  };
}
