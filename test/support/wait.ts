import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `probe` until `done(value)` holds, and returns that value. On timeout it throws an error that
 * says what never happened and the last value seen, so a failing test explains itself.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T> | T,
  done: (value: T) => boolean = Boolean,
  opts: { timeoutMs?: number; everyMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const everyMs = opts.everyMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await probe();
      lastError = undefined;
      if (done(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const seen = lastError !== undefined ? `last error: ${(lastError as Error).message ?? String(lastError)}` : `last value: ${safeJson(last)}`;
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)}s waiting until ${what} (${seen})`);
    }
    await sleep(everyMs);
  }
}

function safeJson(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 300 ? `${s.slice(0, 300)}…` : s;
  } catch {
    return String(v);
  }
}
