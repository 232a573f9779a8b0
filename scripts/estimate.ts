import { resolve } from 'node:path';
import type { Command } from 'commander';
import pLimit from 'p-limit';
import { loadPlan, planUsers, usersTotal } from '../src/config/plan';
import { userPrefixFor } from '../src/domain/layout';
import { addToEstimate, archivedLine, type StorageClassEstimate } from '../src/domain/versions';
import { forEachWithClass } from '../src/storage/archive';
import { createSiteClients, destroySiteClients } from '../src/storage/clients';
import { formatBytes, loadSites, out } from './common';

/** Archived keys printed by name (the count names the rest; --json lists every one). */
const ARCHIVED_SHOWN = 100;

export function registerEstimate(program: Command): void {
  program
    .command('estimate')
    .description('before a start: list every user\'s prefix in the plan\'s sources and print objects and bytes per storage class, naming each archived (GLACIER, DEEP_ARCHIVE) key')
    .requiredOption('--plan <file>', 'plan file (JSON; see README "Plan file")')
    .option('--sites <file>', 'sites file (default: CLOVER_SITES, else the local stack\'s)')
    .option('--json', 'print the estimate as JSON')
    .action(async (o: { plan: string; sites?: string; json?: boolean }) => {
      const sites = loadSites(o.sites);
      const plan = await loadPlan(resolve(o.plan), sites);
      const clients = createSiteClients(sites, { maxSockets: 8 });
      const e: StorageClassEstimate = { classes: {}, archived: [] };
      try {
        const limit = pLimit(8);
        // Users stream from the plan (memory flat in the list's length); at most 8 listings at once.
        const running = new Set<Promise<void>>();
        for await (const u of planUsers(plan)) {
          for (const name of plan.settings.sources) {
            const p: Promise<void> = limit(() => forEachWithClass(clients.get(name)!, userPrefixFor(plan.settings.userPrefix, u.userId), (obj) => addToEstimate(e, obj)))
              .finally(() => running.delete(p));
            p.catch(() => undefined); // awaited below (race or all); not an unhandled rejection meanwhile
            running.add(p);
            if (running.size >= 64) await Promise.race(running);
          }
        }
        await Promise.all(running);
      } finally {
        destroySiteClients(clients);
      }
      e.archived.sort((a, b) => a.site.localeCompare(b.site) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      if (o.json) {
        out(JSON.stringify({ migrationId: plan.settings.migrationId, users: usersTotal(plan), ...e }, null, 2));
        return;
      }
      const restore = plan.settings.restoreArchived;
      const objects = Object.values(e.classes).reduce((n, c) => n + c.objects, 0);
      const bytes = Object.values(e.classes).reduce((n, c) => n + c.bytes, 0);
      out(`estimate ${plan.settings.migrationId}: ${usersTotal(plan)} user(s), ${objects} object(s), ${formatBytes(bytes)} in the sources`);
      for (const [name, c] of Object.entries(e.classes).sort(([a], [b]) => a.localeCompare(b))) {
        out(`CLASS ${name}: ${c.objects} object(s), ${formatBytes(c.bytes)}`);
      }
      for (const a of e.archived.slice(0, ARCHIVED_SHOWN)) {
        out(restore
          ? `ARCHIVED site ${a.site} key ${a.key} (${a.storageClass}): restored before the copy (${restore.tier}, ${restore.days} day(s))`
          : archivedLine(a.site, a.key, a.storageClass));
      }
      if (e.archived.length > ARCHIVED_SHOWN) out(`... and ${e.archived.length - ARCHIVED_SHOWN} more archived object(s) (--json lists every one)`);
      if (e.archived.length > 0 && !restore) out(`${e.archived.length} archived object(s): their users will fail before the copy unless the plan has "restoreArchived"`);
    });
}
