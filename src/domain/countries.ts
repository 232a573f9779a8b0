import { iso31661 } from 'iso-3166/1.js';

/**
 * The officially assigned ISO 3166-1 alpha-2 codes (249), from the maintained `iso-3166` package (its
 * ISO 3166-1 list only). User-assigned codes (AA, QM-QZ, XA-XZ, ZZ) and reserved ones (EU, UK) are not
 * countries, so no plan, users file or sites file may name them.
 */
export const COUNTRY_CODES: ReadonlySet<string> = new Set(iso31661.map((c) => c.alpha2));

export function isCountryCode(code: string): boolean {
  return COUNTRY_CODES.has(code);
}

