import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpPlanDir, writePlan } from './helpers';

const base = {
  migrationId: 'plan-check',
  sources: ['sg', 'us'],
  routing: { default: 'eu-ie', byCountry: { NO: 'eu-no' } },
  users: [{ userId: 'u-1', country: 'DE' }],
};

/** Every invalid plan is rejected before anything starts: one line naming the field, exit code 2. */
describe('invalid plans', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['unknown site', { ...base, sources: ['sg', 'mars'] }, /field sources\[1\]: unknown site "mars"/],
    ['target outside the EEA', { ...base, sources: ['sg'], routing: { default: 'us' } }, /field routing.default: site "us" is in jurisdiction US, outside the EEA/],
    ['source used as target', { ...base, sources: ['sg', 'eu-no'] }, /field routing.byCountry.NO: site "eu-no" is also a source/],
    ['duplicate userId', { ...base, users: [{ userId: 'u-1', country: 'DE' }, { userId: 'u-1', country: 'FR' }] }, /field users\[1\].userId: duplicate userId "u-1"/],
    ['empty userId', { ...base, users: [{ userId: '', country: 'DE' }] }, /field users\[0\].userId: must not be empty/],
    ['bad migrationId', { ...base, migrationId: 'Wave_1' }, /field migrationId: must be 1-63 characters of a-z, 0-9 and "-"/],
    ['missing users file', { ...base, users: undefined, usersFile: 'nope.jsonl' }, /cannot read users file .*nope.jsonl: ENOENT/],
    ['non-positive concurrency', { ...base, concurrency: { users: 0, objectsPerUser: 4 } }, /field concurrency.users: must be a positive number/],
  ];
  it.each(cases)('%s', async (_name, plan, message) => {
    const r = await runCli(['start', '--plan', writePlan(tmpPlanDir(), plan)]);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.code).toBe(2);
  });

  it('a bad line in the users file is named by its number', async () => {
    const dir = tmpPlanDir();
    const plan = writePlan(dir, { ...base, users: undefined, usersFile: 'bad-users.jsonl' });
    writeFileSync(join(dir, 'bad-users.jsonl'), '{"userId":"u-1","country":"DE"}\n{"userId":"u-2","country":"Germany"}\n');
    const r = await runCli(['start', '--plan', plan]);
    expect(r.stderr).toMatch(/bad-users.jsonl, line 2: field country: must be an assigned ISO 3166-1 alpha-2 country code/);
    expect(r.code).toBe(2);
  });

  it('bad CLI arguments exit 2', async () => {
    const r = await runCli(['start']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '--plan <file>' not specified/);
  });
});
