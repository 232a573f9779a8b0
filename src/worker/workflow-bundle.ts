import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(__dirname, '..', '..');
const WORKFLOWS = join(ROOT, 'src', 'workflows');

/**
 * The workflow code a worker registers, bundled once per version of Clover's sources and kept on disk.
 *
 * Why: Temporal's worker bundles the workflows with webpack when given a `workflowsPath`. Done inside the
 * worker, the bundler's modules and heap stay resident: 250 MiB at idle against 157 MiB for the same
 * worker given a ready bundle (measured on the local stack). So the bundle is built by a child process,
 * which hands its memory back when it exits, and is reused by every later worker of the same sources.
 *
 * The bundle's name carries a SHA-256 of every file under `src/` and of `package-lock.json`, so a changed
 * workflow, a changed module it imports or a new Temporal SDK gets a new bundle. It is written under a
 * temporary name and renamed into place, so workers starting at once never read half a bundle.
 */
export async function ensureWorkflowBundle(opts: { cacheDir?: string; /** Called before a bundle is built (a few seconds), not when one is reused. */ building?: (path: string) => void } = {}): Promise<string> {
  const dir = opts.cacheDir || process.env.CLOVER_CACHE_DIR || defaultCacheDir();
  const path = join(dir, `workflow-bundle-${sourcesKey().slice(0, 24)}.js`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  opts.building?.(path);
  const tmp = `${path}.${process.pid}.tmp`;
  const build = `require('@temporalio/worker').bundleWorkflowCode({ workflowsPath: process.argv[1], logger: new (require('@temporalio/worker').DefaultLogger)('WARN') })`
    + `.then((b) => require('node:fs').writeFileSync(process.argv[2], b.code))`;
  try {
    await promisify(execFile)(process.execPath, ['-e', build, WORKFLOWS, tmp], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    const e = err as Error & { stderr?: string };
    throw new Error(`bundling the workflow code failed: ${(e.stderr || e.message).trim()}`, { cause: err });
  }
  removeStale(dir, path);
  return path;
}

/** CLOVER_CACHE_DIR unset: `node_modules/.cache/clover` beside Clover's own modules when it can be written, else a directory in the system's temporary one. */
function defaultCacheDir(): string {
  const own = join(ROOT, 'node_modules', '.cache', 'clover');
  try {
    mkdirSync(own, { recursive: true });
    accessSync(own, constants.W_OK); // an existing directory of a read-only install passes mkdirSync
    return own;
  } catch {
    return join(tmpdir(), `clover-cache-${process.getuid?.() ?? 'user'}`);
  }
}

/** SHA-256 over every file under src/ (path and bytes, in a fixed order) and package-lock.json. */
export function sourcesKey(root = ROOT): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(relative(root, p)).update('\0').update(readFileSync(p)).update('\0');
    }
  };
  walk(join(root, 'src'));
  const lock = join(root, 'package-lock.json');
  if (existsSync(lock)) h.update(readFileSync(lock));
  return h.digest('hex');
}

/** Bundles of other sources, an hour or more old: a worker of those sources started long ago and read its bundle then. */
function removeStale(dir: string, keep: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (p === keep || !name.startsWith('workflow-bundle-')) continue;
    try {
      if (Date.now() - statSync(p).mtimeMs > 3600_000) rmSync(p, { force: true });
    } catch {
      // Another worker removed it first.
    }
  }
}
