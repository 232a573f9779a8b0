import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { LOCAL_SITES, freePorts, readStackState, startStack, stopStack } from '../src/stack/local-stack';
import { ensureTools } from '../src/stack/tools';
import { recordProcess } from './support/processes';

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

/**
 * The local stack keeps its credentials and data owner-only on every start, also when its folder and
 * files were left with wider modes (an older Clover, a umask of 022). One stack of its own, started once.
 */
describe('local stack file modes', () => {
  const runDir = process.env.CLOVER_TEST_STACK_DIR!;
  const dir = mkdtempSync(join(runDir, 'modes-'));
  const folders = [dir, join(dir, 'logs'), join(dir, 'sites'), join(dir, 'iam'), ...LOCAL_SITES.flatMap((s) => [join(dir, 'sites', s.name), join(dir, 'iam', s.name)])];
  const secrets = ['local-sites.json', 'auditor-sites.json', ...LOCAL_SITES.map((s) => join('iam', s.name, 'users.json')), 'signing-key.pem', 'temporal.db', 'temporal.db-shm', 'temporal.db-wal'].map((f) => join(dir, f));
  const start = async () => {
    try {
      return await startStack({ dir, tools: await ensureTools(), ports });
    } finally {
      for (const s of readStackState(dir)?.services ?? []) recordProcess(runDir, { name: `modes ${s.name}`, pid: s.pid, binary: s.binary });
    }
  };
  let ports: Awaited<ReturnType<typeof freePorts>>;

  beforeAll(async () => {
    ports = await freePorts();
  });
  afterAll(async () => {
    await stopStack(dir);
  });

  it('a first start over a 0755 folder and a 0644 sites file leaves folders 0700 and secrets 0600', async () => {
    for (const f of folders) mkdirSync(f, { recursive: true });
    writeFileSync(join(dir, 'local-sites.json'), '{"sites":{}}\n');
    for (const f of folders) chmodSync(f, 0o755);
    chmodSync(join(dir, 'local-sites.json'), 0o644);

    await start();
    expect(folders.map(mode)).toEqual(folders.map(() => '700'));
    expect(secrets.map(mode)).toEqual(secrets.map(() => '600'));
    // The services run with umask 077: what they create (here each site's bucket folder) is owner-only too.
    expect(LOCAL_SITES.map((s) => mode(join(dir, 'sites', s.name, `clover-${s.name}`)))).toEqual(LOCAL_SITES.map(() => '700'));
  });

  it('starting again over files widened meanwhile (services kept running) tightens them again', async () => {
    for (const f of folders) chmodSync(f, 0o755);
    for (const f of secrets) chmodSync(f, 0o644);

    const state = await start();
    expect(folders.map(mode)).toEqual(folders.map(() => '700'));
    expect(secrets.map(mode)).toEqual(secrets.map(() => '600'));
    expect(state.sitesFile).toBe(join(dir, 'local-sites.json'));
    expect(state.auditorSitesFile).toBe(join(dir, 'auditor-sites.json'));
  });
});

/** Processes whose command line names `dir` (the stack's services all do: data folders, database). */
function processesIn(dir: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  }).map(Number);
}

describe('local stack start-up', () => {
  const runDir = process.env.CLOVER_TEST_STACK_DIR!;

  it('picks distinct ports below the ephemeral range, which outgoing connections never take', async () => {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    const picks = await Promise.all(Array.from({ length: 5 }, () => freePorts()));
    const all = picks.flatMap((p) => [p.temporal, p.ui, ...Object.values(p.sites)]);
    expect(new Set(all).size).toBe(all.length);
    for (const port of all) expect(port).toBeLessThan(low!);
  });

  it('a start that fails part-way stops what it launched and records nothing running', async () => {
    const dir = mkdtempSync(join(runDir, 'failed-start-'));
    const ports = await freePorts();
    // The last site's port is taken: Temporal and the first sites are launched before that is found.
    const last = LOCAL_SITES[LOCAL_SITES.length - 1]!.name;
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(ports.sites[last], '127.0.0.1', resolve));
    try {
      await expect(startStack({ dir, tools: await ensureTools(), ports })).rejects.toThrow(`port ${ports.sites[last]} (for site-${last}) is already in use`);
    } finally {
      for (const s of readStackState(dir)?.services ?? []) recordProcess(runDir, { name: `failed-start ${s.name}`, pid: s.pid, binary: s.binary });
      blocker.close();
    }
    expect(readStackState(dir)?.services).toEqual([]);
    expect(processesIn(dir)).toEqual([]);
  });
});
