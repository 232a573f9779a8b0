import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, InputError } from '../../src/config/errors';
import { loadPlan, planUsers, readUsersFile, USER_ID, usersTotal } from '../../src/config/plan';
import { parseSites } from '../../src/config/sites';

/** The local stack's four sites (no endpoint is ever contacted: loadPlan only reads files). */
const sites = parseSites({
  sites: {
    sg: { region: 'ap-southeast-1', bucket: 'clover-sg', jurisdiction: 'SG' },
    us: { region: 'us-east-1', bucket: 'clover-us', jurisdiction: 'US' },
    'eu-ie': { region: 'eu-west-1', bucket: 'clover-eu-ie', jurisdiction: 'IE' },
    'eu-no': { region: 'eu-north-1', bucket: 'clover-eu-no', jurisdiction: 'NO' },
    ch: { region: 'eu-central-2', bucket: 'clover-ch', jurisdiction: 'CH' },
  },
});

const base = {
  migrationId: 'plan-check',
  sources: ['sg', 'us'],
  routing: { default: 'eu-ie', byCountry: { NO: 'eu-no' } },
  users: [{ userId: 'u-1', country: 'DE' }],
};

const dir = mkdtempSync(join(tmpdir(), 'clover-unit-plan-'));
let n = 0;
function writeFile(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}
function writePlan(plan: unknown): string {
  return writeFile(`plan-${++n}.json`, JSON.stringify(plan));
}

/** The message loadPlan rejects `plan` with; fails unless it is a one-line InputError (exit code 2). */
async function rejection(planPath: string): Promise<string> {
  try {
    await loadPlan(planPath, sites);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).exitCode).toBe(ExitCode.badInput);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('expected the plan to be rejected');
}

describe('a valid plan', () => {
  it('gets the documented defaults, frozen settings and its users', async () => {
    const path = writePlan(base);
    const p = await loadPlan(path, sites);
    expect(p.settings).toEqual({
      migrationId: 'plan-check',
      sources: ['sg', 'us'],
      routing: { default: 'eu-ie', byCountry: { NO: 'eu-no' } },
      userPrefix: 'users/{userId}/',
      verify: 'full',
      conflictPolicy: 'newest-wins',
      concurrency: { users: 8, objectsPerUser: 16 },
      sourceDisposition: 'keep',
      gracePeriod: '7d',
      cutover: 'auto',
    });
    expect(Object.isFrozen(p.settings)).toBe(true);
    expect(p.users).toEqual([{ userId: 'u-1', country: 'DE' }]);
    expect(p.usersSource).toBe(`plan ${path}`);
  });

  it('keeps every optional field it is given', async () => {
    const p = await loadPlan(writePlan({
      ...base, routing: { default: 'eu-no' }, userPrefix: 'tenants/{userId}/data/', verify: 'checksum', conflictPolicy: 'fail',
      concurrency: { users: 1, objectsPerUser: 64 }, sourceDisposition: 'delete-after-verify', gracePeriod: '500ms', maxDeletes: 0,
    }), sites);
    expect(p.settings).toMatchObject({
      routing: { default: 'eu-no', byCountry: {} }, userPrefix: 'tenants/{userId}/data/', verify: 'checksum', conflictPolicy: 'fail',
      concurrency: { users: 1, objectsPerUser: 64 }, sourceDisposition: 'delete-after-verify', gracePeriod: '500ms', maxDeletes: 0,
    });
  });

  it.each(['500ms', '45s', '30m', '12h', '7d', '0s'])('gracePeriod %s is a duration', async (gracePeriod) => {
    expect((await loadPlan(writePlan({ ...base, gracePeriod }), sites)).settings.gracePeriod).toBe(gracePeriod);
  });

  it('cut-over by an operator with a sync interval', async () => {
    const p = await loadPlan(writePlan({ ...base, cutover: 'operator', syncInterval: '15m' }), sites);
    expect(p.settings).toMatchObject({ cutover: 'operator', syncInterval: '15m' });
    expect(p.settings.syncInterval).toBe('15m');
  });

  it('real-bucket fields: purgeErased, restoreArchived (tier and poll interval defaulted), targetStorageClass', async () => {
    const p = await loadPlan(writePlan({ ...base, purgeErased: true, restoreArchived: { days: 2 }, targetStorageClass: 'STANDARD_IA' }), sites);
    expect(p.settings).toMatchObject({ purgeErased: true, restoreArchived: { days: 2, tier: 'Bulk', pollInterval: '15m' }, targetStorageClass: 'STANDARD_IA' });
  });

  it.each(['1s', '1000ms', '30m', '1d'])('syncInterval %s is accepted', async (syncInterval) => {
    expect((await loadPlan(writePlan({ ...base, syncInterval }), sites)).settings.syncInterval).toBe(syncInterval);
  });

  it('a users file, relative to the plan, blank lines ignored', async () => {
    const sub = mkdtempSync(join(dir, 'rel-'));
    writeFileSync(join(sub, 'users.jsonl'), '{"userId":"u-1","country":"DE"}\n\n  \n{"userId":"a.b_c@d-e","country":"NO"}\n');
    const planPath = join(sub, 'plan.json');
    writeFileSync(planPath, JSON.stringify({ ...base, users: undefined, usersFile: 'users.jsonl' }));
    const p = await loadPlan(planPath, sites);
    expect(p.users).toBeUndefined();
    expect(usersTotal(p)).toBe(2);
    const streamed = [];
    for await (const u of planUsers(p)) streamed.push(u);
    expect(streamed).toEqual([{ userId: 'u-1', country: 'DE' }, { userId: 'a.b_c@d-e', country: 'NO' }]);
    expect(p.usersSource).toBe(`users file ${join(sub, 'users.jsonl')}`);
  });
});

describe('every rejected plan names the field in one line', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    // sites and routing
    ['unknown source site', { ...base, sources: ['sg', 'mars'] }, /field sources\[1\]: unknown site "mars" \(the sites file has: sg, us, eu-ie, eu-no, ch\)/],
    ['a source listed twice', { ...base, sources: ['sg', 'sg'] }, /field sources: a site is listed twice/],
    ['no source', { ...base, sources: [] }, /field sources: must name at least one source site/],
    ['unknown default target', { ...base, routing: { default: 'eu-xx' } }, /field routing.default: unknown site "eu-xx"/],
    ['unknown country target', { ...base, routing: { default: 'eu-ie', byCountry: { SE: 'eu-se' } } }, /field routing.byCountry.SE: unknown site "eu-se"/],
    ['default target outside the EEA', { ...base, sources: ['sg'], routing: { default: 'us' } }, /field routing.default: site "us" is in jurisdiction US, outside the EEA/],
    ['country target outside the EEA (CH)', { ...base, routing: { default: 'eu-ie', byCountry: { DE: 'ch' } } }, /field routing.byCountry.DE: site "ch" is in jurisdiction CH, outside the EEA/],
    ['source used as default target', { ...base, sources: ['sg', 'eu-ie'] }, /field routing.default: site "eu-ie" is also a source/],
    ['source used as country target', { ...base, sources: ['sg', 'eu-no'] }, /field routing.byCountry.NO: site "eu-no" is also a source/],
    ['empty default target', { ...base, routing: { default: '' } }, /field routing.default: must name a target site/],
    ['lower-case routing country', { ...base, routing: { default: 'eu-ie', byCountry: { no: 'eu-no' } } }, /field routing.byCountry.no: must be an assigned ISO 3166-1 alpha-2 country code/],
    ['routing country XX (two capitals, no country)', { ...base, routing: { default: 'eu-ie', byCountry: { XX: 'eu-no' } } }, /^plan \S+: field routing.byCountry.XX: must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. NO$/],
    ['routing country UK (reserved, not assigned: GB is)', { ...base, routing: { default: 'eu-ie', byCountry: { UK: 'eu-no' } } }, /field routing.byCountry.UK: must be an assigned ISO 3166-1/],
    ['unknown routing field', { ...base, routing: { default: 'eu-ie', fallback: 'eu-no' } }, /field routing: .*fallback/],
    // users
    ['duplicate userId', { ...base, users: [{ userId: 'u-1', country: 'DE' }, { userId: 'u-1', country: 'FR' }] }, /field users\[1\].userId: duplicate userId "u-1" \(first at field users\[0\].userId\)/],
    ['empty userId', { ...base, users: [{ userId: '', country: 'DE' }] }, /field users\[0\].userId: must not be empty/],
    ['userId with a space', { ...base, users: [{ userId: 'u 1', country: 'DE' }] }, /field users\[0\].userId: must be 1-128 characters/],
    ['userId with a "/"', { ...base, users: [{ userId: 'a/b', country: 'DE' }] }, /field users\[0\].userId: must be 1-128 characters/],
    ['userId starting with "."', { ...base, users: [{ userId: '.u', country: 'DE' }] }, /field users\[0\].userId: must be 1-128 characters/],
    ['userId of 129 characters', { ...base, users: [{ userId: 'u'.repeat(129), country: 'DE' }] }, /field users\[0\].userId: must be 1-128 characters/],
    ['country not alpha-2', { ...base, users: [{ userId: 'u-1', country: 'Germany' }] }, /field users\[0\].country: must be an assigned ISO 3166-1 alpha-2 country code/],
    ['country in lower case', { ...base, users: [{ userId: 'u-1', country: 'de' }] }, /field users\[0\].country: must be an assigned ISO 3166-1 alpha-2 country code/],
    ['country XX (two capitals, no country)', { ...base, users: [{ userId: 'u-1', country: 'XX' }] }, /^plan \S+: field users\[0\].country: must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. DE$/],
    ['country EU (reserved, not a country)', { ...base, users: [{ userId: 'u-1', country: 'EU' }] }, /field users\[0\].country: must be an assigned ISO 3166-1/],
    ['missing country', { ...base, users: [{ userId: 'u-1' }] }, /field users\[0\].country: /],
    ['unknown user field', { ...base, users: [{ userId: 'u-1', country: 'DE', email: 'x@y' }] }, /field users\[0\]: .*email/],
    ['an empty user list', { ...base, users: [] }, /field users: must list at least one user/],
    ['neither users nor usersFile', { ...base, users: undefined }, /give exactly one of field users \(a list\) or field usersFile/],
    ['both users and usersFile', { ...base, usersFile: 'users.jsonl' }, /give exactly one of field users \(a list\) or field usersFile/],
    // migrationId
    ['migrationId with capitals and "_"', { ...base, migrationId: 'Wave_1' }, /field migrationId: must be 1-63 characters of a-z, 0-9 and "-"/],
    ['empty migrationId', { ...base, migrationId: '' }, /field migrationId: must be 1-63 characters/],
    ['migrationId of 64 characters', { ...base, migrationId: 'a'.repeat(64) }, /field migrationId: must be 1-63 characters/],
    ['missing migrationId', { ...base, migrationId: undefined }, /field migrationId: /],
    // userPrefix
    ['userPrefix without {userId}', { ...base, userPrefix: 'users/' }, /field userPrefix: must contain \{userId\}/],
    ['userPrefix in Clover\'s records', { ...base, userPrefix: '_clover/{userId}/' }, /field userPrefix: must not start with _clover\//],
    ['userPrefix not ending in "/"', { ...base, userPrefix: 'users/{userId}' }, /field userPrefix: must end with "\/"/],
    // enums
    ['unknown verify mode', { ...base, verify: 'sometimes' }, /field verify: /],
    ['unknown conflict policy', { ...base, conflictPolicy: 'oldest-wins' }, /field conflictPolicy: /],
    ['unknown source disposition', { ...base, sourceDisposition: 'delete' }, /field sourceDisposition: /],
    // concurrency
    ['zero users at once', { ...base, concurrency: { users: 0, objectsPerUser: 4 } }, /field concurrency.users: must be a positive number/],
    ['more users at once than the bound', { ...base, concurrency: { users: 1001, objectsPerUser: 4 } }, /field concurrency.users: must be at most 1000/],
    ['more objects per user than the bound', { ...base, concurrency: { users: 2, objectsPerUser: 257 } }, /field concurrency.objectsPerUser: must be at most 256/],
    ['negative objects per user', { ...base, concurrency: { users: 2, objectsPerUser: -1 } }, /field concurrency.objectsPerUser: must be a positive number/],
    ['fractional concurrency', { ...base, concurrency: { users: 1.5, objectsPerUser: 4 } }, /field concurrency.users: must be a whole number/],
    ['concurrency as a string', { ...base, concurrency: { users: '4', objectsPerUser: 4 } }, /field concurrency.users: /],
    ['unknown concurrency field', { ...base, concurrency: { users: 2, objectsPerUser: 4, sites: 2 } }, /field concurrency: .*sites/],
    // durations and limits
    ['gracePeriod in words', { ...base, gracePeriod: '7 days' }, /field gracePeriod: must be a duration such as 7d, 12h, 30m, 45s or 500ms/],
    ['gracePeriod in weeks', { ...base, gracePeriod: '1w' }, /field gracePeriod: must be a duration/],
    ['gracePeriod without a unit', { ...base, gracePeriod: '3600' }, /field gracePeriod: must be a duration/],
    ['gracePeriod as a number', { ...base, gracePeriod: 7 }, /field gracePeriod: /],
    ['cutover not auto or operator', { ...base, cutover: 'manual' }, /field cutover: /],
    ['syncInterval below 1s', { ...base, syncInterval: '500ms' }, /field syncInterval: must be at least 1s/],
    ['syncInterval zero', { ...base, syncInterval: '0s' }, /field syncInterval: must be at least 1s/],
    ['syncInterval in words', { ...base, syncInterval: 'hourly' }, /field syncInterval: must be a duration/],
    ['negative maxDeletes', { ...base, maxDeletes: -1 }, /field maxDeletes: must not be negative/],
    ['fractional maxDeletes', { ...base, maxDeletes: 2.5 }, /field maxDeletes: must be a whole number/],
    // real buckets
    ['purgeErased as a string', { ...base, purgeErased: 'yes' }, /field purgeErased: /],
    ['restoreArchived without days', { ...base, restoreArchived: { tier: 'Bulk' } }, /field restoreArchived\.days: /],
    ['restoreArchived for 0 days', { ...base, restoreArchived: { days: 0 } }, /field restoreArchived\.days: must be a positive number/],
    ['restoreArchived with an unknown tier', { ...base, restoreArchived: { days: 1, tier: 'Fast' } }, /field restoreArchived\.tier: /],
    ['targetStorageClass archival', { ...base, targetStorageClass: 'GLACIER' }, /field targetStorageClass: /],
    // the document
    ['unknown field', { ...base, priority: 'high' }, /field \(top level\): .*priority/],
  ];
  it.each(cases)('%s', async (_name, plan, message) => {
    const path = writePlan(plan);
    const m = await rejection(path);
    expect(m).toMatch(message);
    expect(m).toContain(path);
  });

  it('a plan file that does not exist', async () => {
    const f = join(dir, 'absent.json');
    expect(await rejection(f)).toBe(`cannot read plan file ${f}: ENOENT`);
  });
  it('a plan file that is not JSON', async () => {
    const f = writeFile('broken.json', '{"migrationId": ');
    expect(await rejection(f)).toMatch(new RegExp(`^plan file ${f} is not valid JSON: `));
  });
});

describe('users file', () => {
  const usersFileError = async (text: string | undefined): Promise<{ file: string; message: string }> => {
    const name = `users-${++n}.jsonl`;
    if (text !== undefined) writeFile(name, text);
    const message = await rejection(writePlan({ ...base, users: undefined, usersFile: name }));
    return { file: join(dir, name), message };
  };

  it('missing: named with the reason', async () => {
    const { file, message } = await usersFileError(undefined);
    expect(message).toBe(`cannot read users file ${file}: ENOENT`);
  });
  it('a bad field is named by its line number', async () => {
    const { file, message } = await usersFileError('{"userId":"u-1","country":"DE"}\n{"userId":"u-2","country":"Germany"}\n');
    expect(message).toBe(`users file ${file}, line 2: field country: must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. DE`);
  });
  it('a row with country XX is refused by its line number', async () => {
    const { file, message } = await usersFileError('{"userId":"u-1","country":"DE"}\n{"userId":"u-2","country":"XX"}\n');
    expect(message).toBe(`users file ${file}, line 2: field country: must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. DE`);
  });
  it('a line that is not JSON, counted with blank lines', async () => {
    const { file, message } = await usersFileError('{"userId":"u-1","country":"DE"}\n\n{"userId":\n');
    expect(message).toBe(`users file ${file}, line 3: not valid JSON`);
  });
  it('a duplicate names both lines', async () => {
    const { file, message } = await usersFileError('{"userId":"u-1","country":"DE"}\n{"userId":"u-2","country":"DE"}\n{"userId":"u-1","country":"FR"}\n');
    expect(message).toBe(`users file ${file}, line 3: duplicate userId "u-1" (first on line 1)`);
  });
  it('an unknown field on a line', async () => {
    const { message } = await usersFileError('{"userId":"u-1","country":"DE","name":"Ann"}\n');
    expect(message).toMatch(/line 1: field \(top level\): .*name/);
  });
  it('an empty file', async () => {
    const { file, message } = await usersFileError('\n\n');
    expect(message).toBe(`users file ${file}: no users in it`);
  });
  it('readUsersFile on its own keeps the order of the lines', async () => {
    const rows = Array.from({ length: 250 }, (_, i) => ({ userId: `u-${i}`, country: i % 2 ? 'NO' : 'DE' }));
    const f = writeFile('many.jsonl', rows.map((r) => JSON.stringify(r)).join('\r\n'));
    expect(await readUsersFile(f)).toEqual(rows);
  });
});

describe('USER_ID', () => {
  it('takes 1 to 128 characters of A-Z a-z 0-9 . _ @ -, starting with a letter or digit', () => {
    for (const ok of ['u', '0', 'u-0001', 'Ann.Lee_1@example.com', 'x'.repeat(128)]) expect(USER_ID.test(ok)).toBe(true);
    for (const bad of ['', '-u', '_u', '@u', 'u/1', 'u 1', 'ü', 'x'.repeat(129), 'u\n']) expect(USER_ID.test(bad)).toBe(false);
  });
});
