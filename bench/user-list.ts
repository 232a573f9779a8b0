/**
 * The user-list benchmark's two halves, each run in a process of its own so that its peak RSS is its own
 * (`npm run bench -- --user-list N`):
 *   user-list.ts stage SITES_FILE PLAN_FILE OUT   what `clover start` does with a plan's users file before its
 *                                             workflow starts: validate (loadPlan), digest, store the list.
 *                                             Writes the stored list's ETag to OUT.
 *   user-list.ts read SITES_FILE SITE MIGRATION_ID ETAG OUT   what the migration's worker does: every page of
 *                                             the stored list through the readUsersPage activity. Writes the number of users read to OUT.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivityDeps } from '../src/activities/deps';
import { createUserActivities, type ReadUsersPageResult } from '../src/activities/users';
import { loadPlan } from '../src/config/plan';
import { parseSites } from '../src/config/sites';
import { planDigest, storeUserList } from '../src/operator/migrations';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';

async function main(): Promise<void> {
  const [mode, sitesFile, ...rest] = process.argv.slice(2);
  const sites = parseSites(JSON.parse(readFileSync(sitesFile!, 'utf8')));
  const clients = createSiteClients(sites, { maxSockets: 16 });
  try {
    if (mode === 'stage') {
      const plan = await loadPlan(rest[0]!, sites);
      const list = await storeUserList(clients.get(plan.settings.routing.default)!, plan, await planDigest(plan));
      writeFileSync(rest[1]!, list.etag);
    } else if (mode === 'read') {
      const [site, migrationId, etag] = rest;
      const { readUsersPage } = createUserActivities({ clients } as unknown as ActivityDeps);
      const env = new MockActivityEnvironment();
      let offset = 0;
      let users = 0;
      for (;;) {
        const page: ReadUsersPageResult = await env.run(readUsersPage, { migrationId: migrationId!, usersSite: site!, usersEtag: etag, offset, limit: 1000 });
        users += page.users.length;
        offset = page.nextOffset;
        if (page.done) break;
      }
      if (rest[3]) writeFileSync(rest[3], String(users));
    } else throw new Error('usage: user-list.ts stage SITES_FILE PLAN_FILE OUT | read SITES_FILE SITE MIGRATION_ID ETAG OUT');
  } finally {
    destroySiteClients(clients);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
