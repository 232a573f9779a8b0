import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import pLimit from 'p-limit';
import type { SiteClients } from '../../src/storage/clients';
import { migrationWorkflowId, userWorkflowId } from '../../src/workflows/definitions';
import { get, listKeys, put, sha256 } from '../helpers';

/** SHA-256 (hex) of every object under a prefix, by key. */
export type State = Map<string, string>;

/** The plan's default userPrefix (`users/{userId}/`) for one user. */
export const userPrefix = (userId: string) => `users/${userId}/`;

const limit = pLimit(8);

/**
 * The platform Clover serves, as far as storage shows it: it writes, overwrites and erases a user's
 * objects in the source sites, straight to the sites (never through a test's proxies), and keeps its own
 * record of what each source should hold, so a test can compare storage against what the application did
 * as well as against a listing.
 */
export class Application {
  /** site -> key -> SHA-256 of what the application last wrote there (erased keys removed). */
  private readonly written = new Map<string, State>();

  constructor(private readonly c: SiteClients) {}

  key(userId: string, name: string): string {
    return `${userPrefix(userId)}${name}`;
  }

  /** Writes (or overwrites) `name` of the user in `site`; returns the key. */
  async write(site: string, userId: string, name: string, body: Buffer | string): Promise<string> {
    const key = this.key(userId, name);
    await put(this.c, site, key, body);
    this.siteRecord(site).set(key, sha256(body));
    return key;
  }

  /** The same key with the same bytes in every one of `sites` (a duplicate across sources). */
  async writeEverywhere(sites: string[], userId: string, name: string, body: Buffer | string): Promise<string> {
    for (const site of sites) await this.write(site, userId, name, body);
    return this.key(userId, name);
  }

  /** Erases `name` of the user in `site` (the user deleted it); returns the key. */
  async erase(site: string, userId: string, name: string): Promise<string> {
    const key = this.key(userId, name);
    const s = this.c.get(site)!;
    await s.s3.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: key }));
    this.siteRecord(site).delete(key);
    return key;
  }

  /** What the application believes `site` holds for the user. */
  recorded(site: string, userId: string): State {
    const prefix = userPrefix(userId);
    return new Map([...this.siteRecord(site)].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** What the application believes the user's data is: the union of its sources (throws on a key with different bytes in two sources). */
  expected(userId: string, sites: string[] = ['sg', 'us']): State {
    return union(sites.map((s) => this.recorded(s, userId)));
  }

  private siteRecord(site: string): State {
    let m = this.written.get(site);
    if (!m) this.written.set(site, (m = new Map()));
    return m;
  }
}

/** The union of per-site states; a key with different bytes in two of them is a test error. */
export function union(states: State[]): State {
  const out: State = new Map();
  for (const s of states) {
    for (const [k, h] of s) {
      const had = out.get(k);
      if (had !== undefined && had !== h) throw new Error(`key ${k} holds different bytes in two sources (${had} / ${h}): the test did not mean to make a conflict`);
      out.set(k, h);
    }
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Every object of the user in one site, read back and hashed (sorted by key). */
export async function siteState(c: SiteClients, site: string, userId: string): Promise<State> {
  const keys = (await listKeys(c, site, userPrefix(userId))).sort();
  const hashes = await Promise.all(keys.map((k) => limit(async () => {
    const o = await get(c, site, k);
    return [k, o === undefined ? 'vanished while read' : sha256(o.body)] as const;
  })));
  return new Map(hashes);
}

/** The user's data in the sources as storage shows it: the union of every source site. */
export async function sourceState(c: SiteClients, userId: string, sites: string[] = ['sg', 'us']): Promise<State> {
  return union(await Promise.all(sites.map((s) => siteState(c, s, userId))));
}

/** The user's EU copy as storage shows it. */
export function euState(c: SiteClients, userId: string, target = 'eu-ie'): Promise<State> {
  return siteState(c, target, userId);
}

/** A state as a plain sorted object: what jest prints best in a failed `toEqual`. */
export const asObject = (s: State): Record<string, string> => Object.fromEntries([...s].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * Ends a migration a test started and may have left running (operator cut-over keeps it alive; a
 * syncInterval keeps passes coming): terminates its workflow and its users' workflows. Cleanup only:
 * anything already closed or never started is fine.
 */
export async function endMigration(client: Client, migrationId: string, userIds: string[]): Promise<void> {
  const ids = [migrationWorkflowId(migrationId), ...userIds.map((u) => userWorkflowId(migrationId, u))];
  for (const id of ids) {
    try {
      await client.workflow.getHandle(id).terminate('test over');
    } catch {
      // not running (finished, never started): nothing to end
    }
  }
}
