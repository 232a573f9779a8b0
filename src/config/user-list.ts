import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { UserRow } from '../domain/routing';
import { InputError, firstIssue, formatPath } from './errors';
import { userRowSchema } from './plan';

/**
 * The rows of a JSON-lines users file, streamed: each line validated as it is read (a bad one is one
 * InputError naming the file, the line number and what is wrong); blank lines skipped. Memory stays
 * flat whatever the file's length. Duplicates are not checked here (`checkUsersFile` does).
 */
export async function* usersFileRows(file: string): AsyncGenerator<{ row: UserRow; lineNo: number }> {
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1024 * 1024 });
  const opened = new Promise<void>((ok, fail) => {
    stream.once('open', () => ok());
    stream.once('error', fail);
  });
  try {
    await opened;
  } catch (err) {
    throw new InputError(`cannot read users file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let lineNo = 0;
  try {
    for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
      lineNo++;
      if (line.trim() === '') continue;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        throw new InputError(`users file ${file}, line ${lineNo}: not valid JSON`);
      }
      const r = userRowSchema.safeParse(raw);
      if (!r.success) {
        const issue = firstIssue(r.error);
        throw new InputError(`users file ${file}, line ${lineNo}: field ${formatPath(issue.path)}: ${issue.message}`);
      }
      yield { row: r.data, lineNo };
    }
  } finally {
    stream.destroy();
  }
}

/**
 * A Bloom filter over user ids (10 bits and 7 probes per expected id: about 1% false positives):
 * 1.25 bytes per user, so 150 million users take about 190 MB, where a set of the ids would take many GB.
 */
class IdFilter {
  private readonly bits: Uint8Array;
  private readonly size: number;
  constructor(expected: number) {
    this.size = Math.max(1024, expected * 10);
    this.bits = new Uint8Array(Math.ceil(this.size / 8));
  }
  /** Adds `id`; true when it may have been added before (certainly, when false it was not). */
  add(id: string): boolean {
    // Two FNV-1a variants, combined (Kirsch-Mitzenmacher) into the probes.
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193;
    for (let i = 0; i < id.length; i++) {
      const c = id.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
    }
    let seen = true;
    for (let k = 0; k < 7; k++) {
      const bit = (h1 + k * ((h2 | 1) >>> 0)) % this.size;
      const byte = bit >>> 3;
      const mask = 1 << (bit & 7);
      if ((this.bits[byte]! & mask) === 0) {
        seen = false;
        this.bits[byte]! |= mask;
      }
    }
    return seen;
  }
}

/**
 * Reads a users file once to validate every line and count its users, and refuses a duplicate userId
 * naming both lines. Memory: a Bloom filter (1.25 bytes per user) and the few ids it flags, which a
 * second read of the file confirms or clears; never the list itself.
 */
export async function checkUsersFile(file: string, fileBytes: number): Promise<{ total: number }> {
  // A user's line is at least about 30 bytes: sizes the filter from the file, so it never overfills.
  const filter = new IdFilter(Math.ceil(fileBytes / 30) + 1);
  const suspects = new Set<string>();
  let total = 0;
  for await (const { row } of usersFileRows(file)) {
    total++;
    if (filter.add(row.userId)) suspects.add(row.userId);
  }
  if (total === 0) throw new InputError(`users file ${file}: no users in it`);
  if (suspects.size > 0) {
    const firstLine = new Map<string, number>();
    for await (const { row, lineNo } of usersFileRows(file)) {
      if (!suspects.has(row.userId)) continue;
      const first = firstLine.get(row.userId);
      if (first) throw new InputError(`users file ${file}, line ${lineNo}: duplicate userId "${row.userId}" (first on line ${first})`);
      firstLine.set(row.userId, lineNo);
    }
  }
  return { total };
}
