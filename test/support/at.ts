/** Element `i` of `xs`; a test that asks for one that is not there fails saying so. */
export function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new Error(`expected at least ${i + 1} element(s), got ${xs.length}`);
  return x;
}

/** The value of `key` in `record`; a test that asks for one that is not there fails saying so. */
export function entry<T>(record: Readonly<Record<string, T>>, key: string): T {
  const x = record[key];
  if (x === undefined) throw new Error(`expected an entry ${JSON.stringify(key)}; have ${Object.keys(record).join(', ') || 'none'}`);
  return x;
}
