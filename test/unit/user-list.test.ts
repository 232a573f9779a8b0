import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/config/errors';
import { loadPlan, usersTotal } from '../../src/config/plan';
import { parseSites } from '../../src/config/sites';
import { canonicalJson } from '../../src/domain/manifest';
import { planDigest } from '../../src/operator/migrations';

const sites = parseSites({
  sites: {
    sg: { region: 'ap-southeast-1', bucket: 'clover-sg', jurisdiction: 'SG' },
    'eu-ie': { region: 'eu-west-1', bucket: 'clover-eu-ie', jurisdiction: 'IE' },
  },
});
const base = { migrationId: 'list-check', sources: ['sg'], routing: { default: 'eu-ie' } };
const dir = mkdtempSync(join(tmpdir(), 'clover-unit-list-'));
const users = (n: number) => Array.from({ length: n }, (_, i) => ({ userId: `user-${i}`, country: i % 3 ? 'DE' : 'NO' }));

function planWithFile(name: string, lines: string[]): string {
  writeFileSync(join(dir, `${name}.jsonl`), lines.join('\n') + '\n');
  const planPath = join(dir, `${name}.json`);
  writeFileSync(planPath, JSON.stringify({ ...base, usersFile: `${name}.jsonl` }));
  return planPath;
}

describe('a streamed users file', () => {
  it('counts its users and digests the plan exactly as the whole document in memory would', async () => {
    const rows = users(20_000);
    const fromFile = await loadPlan(planWithFile('many', rows.map((r) => JSON.stringify(r))), sites);
    expect(usersTotal(fromFile)).toBe(20_000);
    const inline = join(dir, 'inline.json');
    writeFileSync(inline, JSON.stringify({ ...base, users: rows }));
    const fromPlan = await loadPlan(inline, sites);
    const whole = createHash('sha256').update(canonicalJson({ settings: fromPlan.settings, users: rows })).digest('hex');
    expect(await planDigest(fromPlan)).toBe(whole);
    expect(await planDigest(fromFile)).toBe(whole);
  });

  it('names both lines of a duplicate far apart, and the line and field of a bad row', async () => {
    const rows = users(30_000).map((r) => JSON.stringify(r));
    rows.push(JSON.stringify({ userId: 'user-17', country: 'FR' }));
    const dup = planWithFile('dup', rows);
    await expect(loadPlan(dup, sites)).rejects.toThrow(new InputError(`users file ${join(dir, 'dup.jsonl')}, line 30001: duplicate userId "user-17" (first on line 18)`));
    const bad = users(5_000).map((r) => JSON.stringify(r));
    bad[4_321] = '{"userId":"x","country":"de"}';
    await expect(loadPlan(planWithFile('bad', bad), sites)).rejects.toThrow(
      `users file ${join(dir, 'bad.jsonl')}, line 4322: field country: must be an assigned ISO 3166-1 alpha-2 country code in capitals, e.g. DE`,
    );
  });
});
