import { COUNTRY_CODES, isCountryCode } from '../../src/domain/countries';
import { EEA_COUNTRIES, isEea } from '../../src/domain/eea';
import {
  CONTROL_ROOT, isCurrentManifestKey, manifestGenerationKey, manifestKey, manifestsPrefix, migrationPrefix, stagingKey, stagingPrefix, userPrefixFor, usersListKey,
} from '../../src/domain/layout';
import { routeUser, routingTargets } from '../../src/domain/routing';

describe('EEA', () => {
  const eu27 = ['AT', 'BE', 'BG', 'HR', 'CY', 'CZ', 'DK', 'EE', 'FI', 'FR', 'DE', 'GR', 'HU', 'IE', 'IT', 'LV', 'LT', 'LU', 'MT', 'NL', 'PL', 'PT', 'RO', 'SK', 'SI', 'ES', 'SE'];

  it('is the 27 EU member states plus Iceland, Liechtenstein and Norway', () => {
    expect(eu27).toHaveLength(27);
    for (const c of [...eu27, 'IS', 'LI', 'NO']) expect(isEea(c)).toBe(true);
    expect(EEA_COUNTRIES.size).toBe(30);
  });
  it('excludes everything else, including close neighbours and former members', () => {
    for (const c of ['GB', 'UK', 'CH', 'US', 'SG', 'TR', 'UA', 'AD', 'MC', 'SM', 'VA', 'EU', 'EL']) expect(isEea(c)).toBe(false);
  });
  it('takes ISO codes exactly: no lower case, no padding, no names', () => {
    for (const c of ['ie', 'Ie', ' IE', 'IE ', 'IRL', 'Ireland', '']) expect(isEea(c)).toBe(false);
  });
});

describe('ISO 3166-1 alpha-2 country codes', () => {
  it('are the 249 assigned codes, every EEA country among them', () => {
    expect(COUNTRY_CODES.size).toBe(249);
    for (const c of [...EEA_COUNTRIES, 'GB', 'CH', 'US', 'SG', 'JP', 'SS', 'CW', 'BQ', 'AX']) expect(isCountryCode(c)).toBe(true);
  });
  it('refuse two capitals that name no country: user-assigned, reserved, withdrawn', () => {
    for (const c of ['XX', 'AA', 'ZZ', 'QM', 'XA', 'EU', 'UK', 'EL', 'AN', 'YU', 'CS']) expect(isCountryCode(c)).toBe(false);
  });
  it('take codes exactly: no lower case, no padding, no alpha-3, no names', () => {
    for (const c of ['de', 'De', ' DE', 'DE ', 'DEU', 'Germany', '']) expect(isCountryCode(c)).toBe(false);
  });
});

describe('routing', () => {
  const routing = { default: 'eu-ie', byCountry: { NO: 'eu-no', SE: 'eu-no', DK: 'eu-no' } };

  it('sends a user to the site of their country', () => {
    expect(routeUser(routing, { userId: 'u-1', country: 'NO' })).toBe('eu-no');
    expect(routeUser(routing, { userId: 'u-2', country: 'SE' })).toBe('eu-no');
  });
  it('falls back to the default for any other country', () => {
    expect(routeUser(routing, { userId: 'u-3', country: 'DE' })).toBe('eu-ie');
    expect(routeUser(routing, { userId: 'u-4', country: 'US' })).toBe('eu-ie');
    expect(routeUser({ default: 'eu-ie', byCountry: {} }, { userId: 'u-5', country: 'NO' })).toBe('eu-ie');
  });
  it('does not depend on the userId', () => {
    expect(routeUser(routing, { userId: 'NO', country: 'DE' })).toBe('eu-ie');
  });
  it('lists every target once, the default first', () => {
    expect(routingTargets(routing)).toEqual(['eu-ie', 'eu-no']);
    expect(routingTargets({ default: 'eu-no', byCountry: { NO: 'eu-no' } })).toEqual(['eu-no']);
    expect(routingTargets({ default: 'eu-ie', byCountry: {} })).toEqual(['eu-ie']);
  });
});

describe('storage layout of Clover\'s records', () => {
  it('puts everything of a migration under _clover/migrations/<id>/', () => {
    expect(CONTROL_ROOT).toBe('_clover/');
    expect(migrationPrefix('wave-1')).toBe('_clover/migrations/wave-1/');
    expect(usersListKey('wave-1')).toBe('_clover/migrations/wave-1/users.jsonl');
    expect(stagingPrefix('wave-1', 'u-1')).toBe('_clover/migrations/wave-1/staging/u-1/');
    expect(manifestsPrefix('wave-1')).toBe('_clover/migrations/wave-1/manifests/');
    expect(manifestKey('wave-1', 'u-1')).toBe('_clover/migrations/wave-1/manifests/u-1.json');
    for (const k of [usersListKey('m'), stagingKey('m', 'u', 1, 0), manifestKey('m', 'u'), manifestGenerationKey('m', 'u', 1)]) expect(k.startsWith(migrationPrefix('m'))).toBe(true);
  });
  it('numbers staging records per generation so that listing order is generation, then page order', () => {
    expect(stagingKey('wave-1', 'u-1', 1, 0)).toBe('_clover/migrations/wave-1/staging/u-1/00000001/00000000.json');
    expect(stagingKey('wave-1', 'u-1', 2, 42)).toBe('_clover/migrations/wave-1/staging/u-1/00000002/00000042.json');
    const pages = [0, 1, 9, 10, 99, 100, 12_345, 99_999_999];
    const keys = pages.map((p) => stagingKey('m', 'u', 3, p));
    expect([...keys].sort()).toEqual(keys);
    for (const k of keys) expect(k.startsWith(stagingPrefix('m', 'u', 3))).toBe(true);
    for (const k of keys) expect(k.startsWith(stagingPrefix('m', 'u'))).toBe(true);
    expect(stagingKey('m', 'u', 3, 0).startsWith(stagingPrefix('m', 'u', 30))).toBe(false);
  });
  it('one user\'s staging prefix never contains another user\'s records', () => {
    expect(stagingKey('m', 'u-10', 1, 0).startsWith(stagingPrefix('m', 'u-1'))).toBe(false);
    expect(manifestKey('m', 'u-10').startsWith(manifestsPrefix('m'))).toBe(true);
  });
  it('keeps every manifest generation write-once beside the newest copy, and tells them apart', () => {
    expect(manifestGenerationKey('wave-1', 'u-1', 3)).toBe('_clover/migrations/wave-1/manifests/u-1/00000003.json');
    expect(isCurrentManifestKey('wave-1', manifestKey('wave-1', 'u-1'))).toBe(true);
    expect(isCurrentManifestKey('wave-1', manifestGenerationKey('wave-1', 'u-1', 3))).toBe(false);
    expect(isCurrentManifestKey('wave-1', manifestKey('wave-2', 'u-1'))).toBe(false);
    expect(isCurrentManifestKey('wave-1', `${manifestsPrefix('wave-1')}u-1.txt`)).toBe(false);
  });
  it('fills every {userId} of a prefix template', () => {
    expect(userPrefixFor('users/{userId}/', 'u-0001')).toBe('users/u-0001/');
    expect(userPrefixFor('t/{userId}/x/{userId}/', 'ab')).toBe('t/ab/x/ab/');
    expect(userPrefixFor('users/{userId}/', 'a$&b')).toBe('users/a$&b/'); // no replacement patterns
  });
});
