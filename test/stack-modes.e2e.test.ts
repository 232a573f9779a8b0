import { chmodSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
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
