/**
 * Plan durations (`gracePeriod`, `syncInterval`): a whole number and a unit, `500ms`, `45s`, `30m`,
 * `12h`, `7d` (a subset of Temporal's format). Pure, so workflow code may import it.
 */
export const DURATION = /^(\d+)(ms|s|m|h|d)$/;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds of a plan duration; NaN for anything else. */
export function durationMs(d: string): number {
  const m = DURATION.exec(d);
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : NaN;
}
