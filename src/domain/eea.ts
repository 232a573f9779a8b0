/** European Economic Area: the 27 EU member states plus Iceland, Liechtenstein and Norway (ISO 3166 alpha-2). */
export const EEA_COUNTRIES: ReadonlySet<string> = new Set([
  'AT', 'BE', 'BG', 'HR', 'CY', 'CZ', 'DK', 'EE', 'FI', 'FR', 'DE', 'GR', 'HU', 'IE', 'IT', 'LV', 'LT', 'LU',
  'MT', 'NL', 'PL', 'PT', 'RO', 'SK', 'SI', 'ES', 'SE',
  'IS', 'LI', 'NO',
]);

export function isEea(jurisdiction: string): boolean {
  return EEA_COUNTRIES.has(jurisdiction);
}
