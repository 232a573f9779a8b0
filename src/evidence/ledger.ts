/**
 * The evidence ledger's records: signed (Ed25519) and hash-chained, one per event that moves, deletes or
 * exposes data, and one per operator command. Pure: building, signing and checking records; storage.ts
 * appends and reads them.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../domain/manifest';

export type LedgerEventType =
  | 'plan-accepted' | 'operator-command' | 'user-committed' | 'delta-pass' | 'erasure-carried-over'
  | 'sources-deleted' | 'residue-found' | 'rollback' | 'user-failed' | 'operator-result';

/** Who caused the event: an operator at a host (CLI), or a worker process. */
export interface Actor {
  who: string;
  host: string;
  via: 'cli' | 'worker';
}

export interface LedgerRecord {
  format: 'clover-ledger/1';
  migrationId: string;
  /** 1, 2, 3, … with no gap: record n is stored at ledgerKey(migrationId, n), written once. */
  seq: number;
  /** SHA-256 (hex) of the previous record's canonical JSON (signature included); null for seq 1. */
  prev: string | null;
  at: string;
  type: LedgerEventType;
  actor: Actor;
  data: Record<string, unknown>;
  /** Which key signed it: the first 16 hex digits of the SHA-256 of the public key (SPKI DER). */
  keyId: string;
  /** Ed25519 signature (base64) over the canonical JSON of every other field. */
  signature: string;
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function signingKeyFromPem(privatePem: string): SigningKey {
  const privateKey = createPrivateKey(privatePem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`the signing key is ${privateKey.asymmetricKeyType}, not Ed25519`);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

export function publicKeyFromPem(pem: string): KeyObject {
  const k = createPublicKey(pem);
  if (k.asymmetricKeyType !== 'ed25519') throw new Error(`the public key is ${k.asymmetricKeyType}, not Ed25519`);
  return k;
}

/** SHA-256 (hex) of a record's canonical JSON: what the next record's `prev` names. */
export function recordHash(r: LedgerRecord): string {
  return createHash('sha256').update(canonicalJson(r)).digest('hex');
}

/** The record that follows `previous` (undefined: the first), signed. */
export function buildRecord(
  key: SigningKey, migrationId: string, previous: LedgerRecord | undefined,
  event: { type: LedgerEventType; actor: Actor; data: Record<string, unknown>; at?: string },
): LedgerRecord {
  const unsigned: Omit<LedgerRecord, 'signature'> = {
    format: 'clover-ledger/1', migrationId, seq: (previous?.seq ?? 0) + 1, prev: previous ? recordHash(previous) : null,
    at: event.at ?? new Date().toISOString(), type: event.type, actor: event.actor, data: event.data, keyId: key.keyId,
  };
  const signature = sign(null, Buffer.from(canonicalJson(unsigned)), key.privateKey).toString('base64');
  return { ...unsigned, signature };
}

/** True when `r`'s signature over its other fields verifies with `publicKey`. */
export function signatureHolds(r: LedgerRecord, publicKey: KeyObject): boolean {
  const { signature, ...unsigned } = r;
  try {
    return verify(null, Buffer.from(canonicalJson(unsigned)), publicKey, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * Every problem of a ledger read in full (records in any order): a bad signature or key id, a gap, a
 * duplicate or a fork (two records with one seq), a record whose `prev` does not name the one before
 * (reordered, edited, or one deleted), another migration's record. Empty when the chain holds.
 */
export function ledgerProblems(records: readonly LedgerRecord[], migrationId: string, publicKey: KeyObject): string[] {
  const problems: string[] = [];
  const keyId = keyIdOf(publicKey);
  const bySeq = new Map<number, LedgerRecord[]>();
  for (const r of records) bySeq.set(r.seq, [...(bySeq.get(r.seq) ?? []), r]);
  const seqs = [...bySeq.keys()].sort((a, b) => a - b);
  if (records.length === 0) problems.push('the ledger has no record');
  for (let n = 1; n <= (seqs.at(-1) ?? 0); n++) if (!bySeq.has(n)) problems.push(`record ${n} is missing (a gap in the chain)`);
  let previous: LedgerRecord | undefined;
  for (const n of seqs) {
    const at = bySeq.get(n)!;
    if (at.length > 1) problems.push(`record ${n} exists ${at.length} times (a fork)`);
    const r = at[0]!;
    if (r.format !== 'clover-ledger/1') problems.push(`record ${n}: unknown format ${JSON.stringify(r.format)}`);
    if (r.migrationId !== migrationId) problems.push(`record ${n} names migration ${JSON.stringify(r.migrationId)}, not ${JSON.stringify(migrationId)}`);
    if (r.keyId !== keyId || !signatureHolds(r, publicKey)) problems.push(`record ${n} (${r.type}): its signature does not verify with the given public key (key ${r.keyId})`);
    const expected = n === 1 ? null : previous && previous.seq === n - 1 ? recordHash(previous) : undefined;
    if (expected !== undefined && r.prev !== expected) problems.push(`record ${n} (${r.type}) does not follow record ${n - 1}: its prev is ${r.prev ?? 'null'}, record ${n - 1} hashes to ${expected ?? 'null'} (records edited, reordered or replaced)`);
    previous = r;
  }
  return problems;
}

/** A user's recorded failure (`user-failed`): the newest one of each user, by user id. */
export function recordedFailures(records: readonly LedgerRecord[]): Map<string, { reason: string; phase: string; seq: number }> {
  const out = new Map<string, { reason: string; phase: string; seq: number }>();
  for (const r of [...records].sort((a, b) => a.seq - b.seq)) {
    const d = r.data ?? {};
    if (r.type === 'user-failed' && typeof d.userId === 'string') {
      out.set(d.userId, { reason: typeof d.reason === 'string' ? d.reason : 'no reason recorded', phase: typeof d.phase === 'string' ? d.phase : '?', seq: r.seq });
    }
  }
  return out;
}

/**
 * Every operator command whose result was never recorded (no `operator-result` names its seq): the CLI
 * crashed or was killed between acting and recording, or the command predates results. A warning, not
 * a failure: the intent is there; only its outcome is not known. One `NO-RESULT ...` line each.
 */
export function missingResults(records: readonly LedgerRecord[]): string[] {
  const answered = new Set(records.filter((r) => r.type === 'operator-result').map((r) => r.data?.intentSeq));
  return [...records]
    .sort((a, b) => a.seq - b.seq)
    .filter((r) => r.type === 'operator-command' && !answered.has(r.seq))
    .map((r) => `NO-RESULT record ${r.seq} (operator-command ${String(r.data?.command)} by ${r.actor?.who ?? '?'} at ${r.actor?.host ?? '?'}, ${r.at}): no operator-result names it, so its outcome is not recorded (the command was interrupted)`);
}

/**
 * An `operator-result` that does not answer an operator command before it: its `intentSeq` names no
 * `operator-command` record, or its `intentHash` is not that record's hash. Problems (the chain holds,
 * but the result claims an intent the ledger does not show).
 */
export function resultProblems(records: readonly LedgerRecord[]): string[] {
  const bySeq = new Map(records.map((r) => [r.seq, r]));
  const out: string[] = [];
  for (const r of records) {
    if (r.type !== 'operator-result') continue;
    const intent = bySeq.get(Number(r.data?.intentSeq));
    if (!intent || intent.type !== 'operator-command' || intent.seq >= r.seq) out.push(`record ${r.seq} (operator-result) names intent ${String(r.data?.intentSeq)}, which is not an operator command before it`);
    else if (r.data?.intentHash !== recordHash(intent)) out.push(`record ${r.seq} (operator-result) names intent ${intent.seq} with hash ${String(r.data?.intentHash)}; record ${intent.seq} hashes to ${recordHash(intent)}`);
  }
  return out;
}

/**
 * The chain cannot show a removed tail (its last records) by itself: an auditor notes the head record's
 * hash at each visit and names it next time. Undefined when a record of the ledger hashes to `noted`
 * (the chain check then vouches for everything up to it); otherwise the problem.
 */
export function notedHeadProblem(records: readonly LedgerRecord[], noted: string): string | undefined {
  if (records.some((r) => recordHash(r) === noted)) return undefined;
  return `the head record noted earlier (hash ${noted}) is not in the ledger: records were removed from its end, or the ledger was replaced`;
}

/** The newest record's seq and hash: what an auditor notes (undefined: an empty ledger). */
export function ledgerHead(records: readonly LedgerRecord[]): { seq: number; hash: string } | undefined {
  const head = [...records].sort((a, b) => a.seq - b.seq).at(-1);
  return head && { seq: head.seq, hash: recordHash(head) };
}
