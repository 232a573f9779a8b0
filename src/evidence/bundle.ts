/**
 * The evidence bundle: a self-contained folder an auditor checks with no network, no sites file and no
 * Temporal. `exportEvidence` writes it from the sites; `checkBundle` verifies it from the folder alone.
 *
 *   ledger/<seq>.json            every ledger record, byte for byte as stored
 *   manifests/<site>/<user>/<generation>.json (and <user>.json, the newest)   every manifest of the migration, per site
 *   users.jsonl                  the migration's stored user list
 *   signing-key.pub.pem          the public key the records should verify with (the auditor should get it independently too)
 *   bundle.json                  summary: migration id, record count, head record hash, key id
 *   README.md                    how to check it
 */
import { createHash, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { InputError } from '../config/errors';
import { manifestsPrefix, usersListKey } from '../domain/layout';
import { manifestDigest, type Manifest } from '../domain/manifest';
import type { Site, SiteClients } from '../storage/clients';
import { describeS3Error, isNotFound } from '../storage/errors';
import { listAllKeys } from '../storage/listing';
import { keyIdOf, ledgerProblems, missingResults, notedHeadProblem, recordedFailures, recordHash, resultProblems, type LedgerRecord } from './ledger';
import { ledgerPrefix } from './storage';

export interface BundleSummary {
  format: 'clover-evidence-bundle/1';
  migrationId: string;
  exportedAt: string;
  /** The site whose bucket holds the ledger and the user list. */
  ledgerSite: string;
  records: number;
  /** recordHash of the newest record: pins the ledger's end (a deleted tail leaves no gap). */
  headHash: string | null;
  keyId: string;
  manifestFiles: number;
  users: number;
}

async function getBytes(site: Site, key: string): Promise<Buffer | undefined> {
  try {
    const r = await site.s3.send(new GetObjectCommand({ Bucket: site.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw describeS3Error(err, { site: site.name, bucket: site.bucket, key, action: 'exporting evidence' });
  }
}

/** The site whose bucket holds the migration's ledger (the plan's default target); undefined: none. */
export async function findLedgerSite(clients: SiteClients, migrationId: string): Promise<{ site: Site; keys: string[] } | undefined> {
  for (const site of clients.values()) {
    const keys = await listAllKeys(site, ledgerPrefix(migrationId), 'listing the ledger');
    if (keys.length > 0) return { site, keys: keys.sort() };
  }
  return undefined;
}

function writeFile(file: string, body: Buffer | string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, body);
}

/** Writes the bundle of `migrationId` into `outDir` (created; it must not hold anything yet). */
export async function exportEvidence(clients: SiteClients, migrationId: string, outDir: string, publicKeyPem: string, publicKey: KeyObject): Promise<BundleSummary> {
  if (existsSync(outDir) && readdirSync(outDir).length > 0) throw new InputError(`${outDir} is not empty: export into a new folder`);
  const found = await findLedgerSite(clients, migrationId);
  if (!found) throw new InputError(`no ledger of migration ${migrationId} in any site of the sites file (looked for ${ledgerPrefix(migrationId)} in ${[...clients.keys()].join(', ')})`);
  mkdirSync(outDir, { recursive: true });
  const records: LedgerRecord[] = [];
  for (const key of found.keys) {
    const body = await getBytes(found.site, key);
    if (!body) continue;
    writeFile(join(outDir, 'ledger', key.slice(ledgerPrefix(migrationId).length)), body);
    try {
      records.push(JSON.parse(body.toString('utf8')) as LedgerRecord);
    } catch {
      // Exported as stored; the offline check names it.
    }
  }
  let manifestFiles = 0;
  for (const site of clients.values()) {
    for (const key of await listAllKeys(site, manifestsPrefix(migrationId), 'listing manifests')) {
      const body = await getBytes(site, key);
      if (!body) continue;
      writeFile(join(outDir, 'manifests', site.name, key.slice(manifestsPrefix(migrationId).length)), body);
      manifestFiles++;
    }
  }
  const users = await getBytes(found.site, usersListKey(migrationId));
  if (users) writeFile(join(outDir, 'users.jsonl'), users);
  writeFile(join(outDir, 'signing-key.pub.pem'), publicKeyPem);
  const head = [...records].sort((a, b) => a.seq - b.seq).at(-1);
  const summary: BundleSummary = {
    format: 'clover-evidence-bundle/1', migrationId, exportedAt: new Date().toISOString(), ledgerSite: found.site.name,
    records: found.keys.length, headHash: head ? recordHash(head) : null, keyId: keyIdOf(publicKey), manifestFiles,
    users: users ? countLines(users.toString('utf8')) : 0,
  };
  writeFile(join(outDir, 'bundle.json'), JSON.stringify(summary, null, 2) + '\n');
  writeFile(join(outDir, 'README.md'), auditorReadme(summary));
  return summary;
}

const countLines = (text: string) => text.split('\n').filter((l) => l.trim() !== '').length;

export interface BundleCheck {
  migrationId: string;
  problems: string[];
  records: number;
  headHash: string | null;
  byType: Record<string, number>;
  usersCommitted: number;
  usersListed: number | undefined;
  manifestsReferenced: number;
  /** Users of users.jsonl with neither a user-committed nor a user-failed record: evidence is missing. */
  incomplete: string[];
  /** Users of users.jsonl with no user-committed record and a recorded failure: their data did not move. */
  failed: { userId: string; reason: string; phase: string }[];
  /** NO-RESULT lines: operator commands whose outcome was never recorded (not a failure). */
  warnings: string[];
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/**
 * A record stored under a name (`<seq>.json`, 12 digits) that is not its own seq: records moved or their
 * files' contents swapped. `label` names the file in the problem. Undefined when the name fits.
 */
export function misplacedRecordProblem(label: string, fileName: string, r: LedgerRecord): string | undefined {
  const seqOfName = /^(\d+)\.json$/.exec(fileName);
  if (seqOfName && Number(seqOfName[1]) === r.seq) return undefined;
  return `${label} holds record ${r.seq}, not the record its name says (records moved or swapped)`;
}

/**
 * The manifest generation a record names (a `user-committed` or `delta-pass` record, or any record with
 * a digest and a manifest key or user and generation): its path under the migration's manifests/ prefix,
 * the site that holds it (`data.site`, else `data.targetSite`; undefined: any) and its digest.
 */
export function manifestReference(r: LedgerRecord, migrationId: string): { rel: string; site?: string; digest: string } | undefined {
  const d = r.data ?? {};
  if (typeof d.digest !== 'string') return undefined;
  const prefix = manifestsPrefix(migrationId);
  const rel = typeof d.manifestKey === 'string'
    ? (d.manifestKey.startsWith(prefix) ? d.manifestKey.slice(prefix.length) : d.manifestKey)
    : typeof d.userId === 'string' && typeof d.generation === 'number' ? `${d.userId}/${String(d.generation).padStart(8, '0')}.json` : undefined;
  if (rel === undefined) return undefined;
  const site = typeof d.site === 'string' ? d.site : typeof d.targetSite === 'string' ? d.targetSite : undefined;
  return { rel, site, digest: d.digest };
}

/** True when a stored manifest (parsed JSON) carries `digest` and its content hashes to it (signature aside). */
export function manifestHasDigest(stored: unknown, digest: string): boolean {
  if (!stored || typeof stored !== 'object') return false;
  const m = stored as Manifest;
  return m.digest === digest && manifestDigest(m) === digest;
}

/**
 * Checks a bundle from the folder alone: every record's signature (with `publicKey`, which the auditor
 * brings), the chain (no gap, fork, reordering or edit), each record stored under its own seq, the end
 * of the ledger against bundle.json's head hash, and every manifest a record references present in the
 * bundle with the digest the record names. Throws InputError only for a folder that is not a bundle.
 */
export function checkBundle(dir: string, publicKey: KeyObject, migrationIdArg?: string, notedHead?: string): BundleCheck {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`${dir} is not a folder (an evidence bundle from \`clover evidence export\`)`);
  const ledgerDir = join(dir, 'ledger');
  if (!existsSync(ledgerDir)) throw new InputError(`${dir} has no ledger/ folder: not an evidence bundle from \`clover evidence export\``);
  const problems: string[] = [];
  let summary: Partial<BundleSummary> = {};
  try {
    summary = JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8')) as BundleSummary;
  } catch (err) {
    problems.push(`bundle.json cannot be read (${(err as Error).message}): the ledger's end is not pinned`);
  }
  const records: LedgerRecord[] = [];
  for (const file of readdirSync(ledgerDir).sort()) {
    const name = `ledger/${file}`;
    let r: LedgerRecord;
    try {
      r = JSON.parse(readFileSync(join(ledgerDir, file), 'utf8')) as LedgerRecord;
    } catch (err) {
      problems.push(`${name} is not valid JSON (${(err as Error).message})`);
      continue;
    }
    const misplaced = misplacedRecordProblem(name, file, r);
    if (misplaced) problems.push(misplaced);
    records.push(r);
  }
  const migrationId = migrationIdArg ?? summary.migrationId ?? records[0]?.migrationId ?? '';
  if (summary.migrationId !== undefined && summary.migrationId !== migrationId) problems.push(`bundle.json is for migration ${summary.migrationId}, not ${migrationId}`);
  problems.push(...ledgerProblems(records, migrationId, publicKey), ...resultProblems(records));
  const noted = notedHead === undefined ? undefined : notedHeadProblem(records, notedHead);
  if (noted) problems.push(noted);
  const sorted = [...records].sort((a, b) => a.seq - b.seq);
  const head = sorted.at(-1);
  const headHash = head ? recordHash(head) : null;
  if (summary.records !== undefined && summary.records !== records.length) problems.push(`bundle.json counts ${summary.records} record(s), the ledger/ folder holds ${records.length}`);
  if (summary.headHash !== undefined && summary.headHash !== headHash) problems.push(`the ledger's last record (${head?.seq ?? 'none'}) hashes to ${headHash ?? 'null'}, bundle.json names head ${summary.headHash ?? 'null'} (records removed from or added at the end)`);
  if (summary.keyId !== undefined && summary.keyId !== keyIdOf(publicKey)) problems.push(`bundle.json names signing key ${summary.keyId}, the public key given is ${keyIdOf(publicKey)}`);

  // Manifests, by their path under the migration's manifests/ prefix, in every site of the bundle.
  const manifestsDir = join(dir, 'manifests');
  const manifests = new Map<string, Array<{ site: string; file: string }>>();
  for (const file of filesUnder(manifestsDir)) {
    const [site, ...rest] = relative(manifestsDir, file).split(sep);
    const k = rest.join('/');
    manifests.set(k, [...(manifests.get(k) ?? []), { site: site!, file }]);
  }
  let manifestsReferenced = 0;
  const committed = new Set<string>();
  const byType: Record<string, number> = {};
  for (const r of sorted) {
    byType[r.type] = (byType[r.type] ?? 0) + 1;
    const d = r.data ?? {};
    if (r.type === 'user-committed' && typeof d.userId === 'string') committed.add(d.userId);
    const ref = manifestReference(r, migrationId);
    if (!ref) continue;
    const { rel, site, digest } = ref;
    manifestsReferenced++;
    const copies = (manifests.get(rel) ?? []).filter((c) => site === undefined || c.site === site);
    if (copies.length === 0) {
      problems.push(`record ${r.seq} (${r.type}) references manifest ${rel}${site !== undefined ? ` at site ${site}` : ''}, which is not in the bundle`);
      continue;
    }
    const holds = copies.some((c) => {
      try {
        return manifestHasDigest(JSON.parse(readFileSync(c.file, 'utf8')), digest);
      } catch {
        return false;
      }
    });
    if (!holds) problems.push(`record ${r.seq} (${r.type}) names manifest ${rel} with digest ${digest}; the bundle's copy (${copies.map((c) => `manifests/${c.site}/${rel}`).join(', ')}) does not hash to it (manifest edited)`);
  }
  let usersListed: number | undefined;
  const incomplete: string[] = [];
  const failed: BundleCheck['failed'] = [];
  if (existsSync(join(dir, 'users.jsonl'))) {
    const text = readFileSync(join(dir, 'users.jsonl'));
    usersListed = countLines(text.toString('utf8'));
    const failures = recordedFailures(sorted);
    for (const userId of listedUserIds(text.toString('utf8'), problems)) {
      if (committed.has(userId)) continue;
      const f = failures.get(userId);
      if (f) failed.push({ userId, reason: f.reason, phase: f.phase });
      else incomplete.push(userId);
    }
    const userListDigest = sorted.find((r) => r.type === 'plan-accepted')?.data?.userListDigest;
    if (typeof userListDigest === 'string' && userListDigest !== createHash('sha256').update(text).digest('hex')) {
      problems.push(`users.jsonl does not hash to the user list digest the plan-accepted record names (${userListDigest})`);
    }
  }
  return {
    migrationId, problems, records: records.length, headHash, byType, usersCommitted: committed.size, usersListed, manifestsReferenced,
    incomplete, failed, warnings: missingResults(sorted),
  };
}

/** The distinct user ids of a users.jsonl, in order; a line that is not a user row is a problem. */
function listedUserIds(text: string, problems: string[]): string[] {
  const ids = new Set<string>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      const row = JSON.parse(line) as { userId?: unknown };
      if (typeof row.userId === 'string') ids.add(row.userId);
      else problems.push(`users.jsonl line ${i + 1} names no userId`);
    } catch {
      problems.push(`users.jsonl line ${i + 1} is not valid JSON`);
    }
  });
  return [...ids];
}

/** The bundle's README.md: what each file is and how to check it, with Clover or with openssl alone. */
export function auditorReadme(s: BundleSummary): string {
  return `# Evidence bundle: migration ${s.migrationId}

Exported ${s.exportedAt} from site \`${s.ledgerSite}\`: ${s.records} ledger record(s), head record hash
\`${s.headHash ?? 'none'}\`, signing key id \`${s.keyId}\`.

## Files

| File | What it is |
|---|---|
| \`ledger/<seq>.json\` | The migration's ledger, one record per file, byte for byte as stored. Each record is one event that moved, deleted or exposed data, or one operator command, with who caused it (\`actor\`). Records are numbered 1, 2, 3, … with no gap; each holds \`prev\`, the SHA-256 of the previous record, and \`signature\`, an Ed25519 signature over the record's canonical form. |
| \`manifests/<site>/<user>/<generation>.json\` | Every manifest generation of every user, as stored in each target site (\`<user>.json\` is the newest). A \`user-committed\` or \`delta-pass\` record names one by \`manifestKey\` and its \`digest\`. |
| \`users.jsonl\` | The migration's user list, as stored (one JSON line per user). |
| \`signing-key.pub.pem\` | The public key of the key that signed the records. **Also obtain it from the operator by another channel** and check with that copy: a bundle can only vouch for itself with a key you trust. |
| \`bundle.json\` | Summary: migration id, record count, head record hash (\`headHash\`), key id. Compare \`headHash\` with one you noted earlier: it pins the end of the ledger. |

## Check everything (no network, no sites file, no Temporal)

    clover verify --evidence <this folder> --public-key signing-key.pub.pem

Prints one line per problem (a bad signature, a gap, a fork, a record out of order or edited, a manifest
missing or edited) and an \`OK:\` summary with counts; exits 0 when everything holds, 1 otherwise.

## Check one record with openssl alone (OpenSSL 3.0 or newer)

The signature covers the record's **canonical form**: the JSON of every field except \`signature\`,
object keys sorted at every level, no whitespace (JSON.stringify's escaping). Produce it with jq or node:

    jq -cS 'del(.signature)' ledger/000000000001.json | tr -d '\\n' > record.canonical
    node -e 'const c=v=>Array.isArray(v)?"["+v.map(c)+"]":v&&typeof v==="object"?"{"+Object.keys(v).sort().map(k=>JSON.stringify(k)+":"+c(v[k]))+"}":JSON.stringify(v);const {signature,...r}=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));process.stdout.write(c(r))' ledger/000000000001.json > record.canonical

(either line; jq and node escape the same for ordinary text, node matches Clover exactly). Then:

    jq -r .signature ledger/000000000001.json | base64 -d > record.sig
    openssl pkeyutl -verify -pubin -inkey signing-key.pub.pem -rawin -in record.canonical -sigfile record.sig

openssl prints \`Signature Verified Successfully\`. The chain: \`sha256sum\` of the canonical JSON of the
**whole** record (signature included) must equal the next record's \`prev\`:

    jq -cS . ledger/000000000001.json | tr -d '\\n' | sha256sum
    jq -r .prev ledger/000000000002.json
`;
}
