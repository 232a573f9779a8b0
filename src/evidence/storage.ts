import { migrationPrefix } from '../domain/layout';
import type { Site } from '../storage/clients';
import { getJson, putJson, type Retention } from '../storage/json-records';
import { forEachListed, listAllKeys } from '../storage/listing';
import { buildRecord, recordHash, type Actor, type LedgerEventType, type LedgerRecord, type SigningKey } from './ledger';

/** The migration's ledger: `_clover/migrations/<id>/ledger/`, in the site that holds its user list (the plan's default target). */
export function ledgerPrefix(migrationId: string): string {
  return `${migrationPrefix(migrationId)}ledger/`;
}

export function ledgerKey(migrationId: string, seq: number): string {
  return `${ledgerPrefix(migrationId)}${String(seq).padStart(12, '0')}.json`;
}

/** Every record of the ledger, in seq order. */
export async function readLedger(site: Site, migrationId: string, signal?: AbortSignal): Promise<LedgerRecord[]> {
  const keys = (await listAllKeys(site, ledgerPrefix(migrationId), 'listing the ledger', signal)).sort();
  const out: LedgerRecord[] = [];
  for (const k of keys) {
    const r = await getJson<LedgerRecord>(site, k, 'a ledger record', signal);
    if (r) out.push(r);
  }
  return out;
}

/** The last ledger key this process saw, per site, bucket and migration: a ledger only grows (write-once records). */
const lastSeen = new Map<string, string>();

/**
 * The newest record as far as this process knows (undefined when the ledger is empty). Keys are zero-padded
 * seqs, so listing order is seq order. `probe` false and a key seen before: that record is read back and
 * taken as the newest without a listing (each append then costs no listing at all, where a listing of a
 * store that walks the whole prefix, as versitygw's posix backend does, grows with the ledger); should
 * another writer have appended since, the create-only write of the next seq fails and the append asks
 * again with `probe`. `probe` true: the keys after the last one seen are listed, not the whole ledger.
 */
async function head(site: Site, migrationId: string, probe: boolean, signal?: AbortSignal): Promise<LedgerRecord | undefined> {
  const cacheKey = ledgerCacheKey(site, migrationId);
  const from = lastSeen.get(cacheKey);
  let last = from;
  if (probe || from === undefined) await forEachListed(site, ledgerPrefix(migrationId), 'listing the ledger', (o) => (last = o.Key!), signal, from);
  if (last === undefined) return undefined;
  const r = await getJson<LedgerRecord>(site, last, 'a ledger record', signal);
  if (!r) {
    // The record seen last is gone (someone deleted it): never build on a guess; look at the whole ledger again.
    lastSeen.delete(cacheKey);
    return from === undefined ? undefined : head(site, migrationId, true, signal);
  }
  lastSeen.set(cacheKey, last);
  return r;
}

const ledgerCacheKey = (site: Site, migrationId: string) => `${site.name}\u0000${site.bucket}\u0000${migrationId}`;

/**
 * Appends one record: reads the newest, writes the next seq with a create-only write (If-None-Match),
 * and when another writer took that seq first, reads again and retries. So many writers at once never
 * fork the chain (one record per seq, each naming the one before) and never lose a record (each retries
 * until it is in). Returns the stored record. `event.retention` (the plan's evidenceRetention): the record
 * is written under S3 Object Lock (not part of the record itself).
 */
export async function appendLedger(
  site: Site, migrationId: string, key: SigningKey,
  event: { type: LedgerEventType; actor: Actor; data: Record<string, unknown>; retention?: Retention }, signal?: AbortSignal,
  /** Called each time another writer took the seq first (tests count the races). */
  onConflict?: (seq: number) => void,
): Promise<LedgerRecord> {
  const queueKey = ledgerCacheKey(site, migrationId);
  for (let attempt = 0; ; attempt++) {
    // One write at a time per ledger in this process (a worker runs many activities at once): they never
    // race each other for a seq, so only other processes' writes can. The settling read below runs
    // outside, so it does not hold the process's other appends back.
    const w = await inTurn(queueKey, () => writeNext(site, migrationId, key, event, attempt > 0, signal));
    if (!w.taken && (await stillOursAfter(site, w.at, w.record, w.writeMs, signal))) return w.record;
    onConflict?.(w.record.seq);
    if (attempt >= 50) throw new Error(`ledger of migration ${migrationId}: could not append after ${attempt + 1} tries (too many writers at once)`);
    await new Promise((ok) => setTimeout(ok, 20 + Math.random() * 80 * Math.min(attempt + 1, 10)));
  }
}

/** The write in progress per ledger in this process (site, bucket, migration). */
const writing = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier call with the same key has settled. */
function inTurn<T>(queueKey: string, fn: () => Promise<T>): Promise<T> {
  const run = (writing.get(queueKey) ?? Promise.resolve()).then(fn);
  const tail = run.catch(() => undefined);
  writing.set(queueKey, tail);
  void tail.then(() => {
    if (writing.get(queueKey) === tail) writing.delete(queueKey);
  });
  return run;
}

/** Builds the next record on the newest one, writes it create-only and reads it back once: `taken` when another writer has that seq. */
async function writeNext(
  site: Site, migrationId: string, key: SigningKey,
  event: { type: LedgerEventType; actor: Actor; data: Record<string, unknown>; retention?: Retention }, probe: boolean, signal?: AbortSignal,
): Promise<{ record: LedgerRecord; at: string; writeMs: number; taken: boolean }> {
  const previous = await head(site, migrationId, probe, signal);
  const { retention, ...recorded } = event;
  const record = buildRecord(key, migrationId, previous, recorded);
  const at = ledgerKey(migrationId, record.seq);
  const started = Date.now();
  const r = await putJson(site, at, record, 'a ledger record', { signal, ifNoneMatch: '*', retention });
  const writeMs = Date.now() - started;
  const taken = r === 'precondition-failed' || !(await isOurs(site, at, record, signal));
  // Whoever holds the seq now, it is the newest this process knows of: the next append builds on it.
  lastSeen.set(ledgerCacheKey(site, migrationId), at);
  return { record, at, writeMs, taken };
}

const isOurs = async (site: Site, at: string, record: LedgerRecord, signal?: AbortSignal) =>
  recordHash((await getJson<LedgerRecord>(site, at, 'a ledger record', signal)) ?? record) === recordHash(record);

/**
 * Whether the record written at `at` (and found there at once) is still this writer's after three times
 * as long as its write took (at least 100 ms, at most 5 s). A store whose create-only check is not atomic
 * with the write (versitygw 1.7.0's posix backend checks If-None-Match when a request arrives, then
 * renames the upload over the key) lets a create that arrived before this one was in replace it when that
 * create finishes; such a create started before this write ended, so it has ended by this read unless it
 * took over three times as long. A replaced record was lost and is appended again. On S3 (atomic
 * conditional writes) it is always still there.
 */
async function stillOursAfter(site: Site, at: string, record: LedgerRecord, writeMs: number, signal?: AbortSignal): Promise<boolean> {
  await new Promise((ok) => setTimeout(ok, Math.min(5_000, Math.max(100, 3 * writeMs))));
  return isOurs(site, at, record, signal);
}
