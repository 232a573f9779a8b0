import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CANDIDATES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];

/** A headless-capable Chromium on PATH (or CLOVER_CHROMIUM_BIN), or undefined. */
export function findChromium(): string | undefined {
  if (process.env.CLOVER_CHROMIUM_BIN) return process.env.CLOVER_CHROMIUM_BIN;
  for (const c of CANDIDATES) {
    try {
      return execFileSync('sh', ['-c', `command -v ${c}`]).toString().trim() || undefined;
    } catch {
      // not this one
    }
  }
  return undefined;
}

export const browserTestsSkipped = process.env.CLOVER_SKIP_BROWSER_TESTS === '1';

export const NO_CHROMIUM = 'no Chromium found (looked for chromium, chromium-browser, google-chrome on PATH, and CLOVER_CHROMIUM_BIN): ' +
  'install it (Debian/Ubuntu: `apt-get install -y chromium`; scripts/bootstrap-tools.sh does this when run as root), ' +
  'or set CLOVER_SKIP_BROWSER_TESTS=1 to skip the rendering checks';

/** Renders `file` in headless Chromium and writes a PNG screenshot to `png`; returns its size in bytes. */
export function screenshot(chromium: string, file: string, png: string, size = '1280,900'): number {
  const profile = mkdtempSync(join(tmpdir(), 'clover-chromium-'));
  try {
    const r = spawnSync(chromium, [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${profile}`,
      `--screenshot=${png}`, `--window-size=${size}`, `file://${file}`,
    ], { timeout: 90_000, encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`chromium exited ${r.status}: ${r.stderr.slice(-2000)}`);
    return statSync(png).size;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}
