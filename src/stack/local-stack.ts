import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, HeadBucketCommand, PutBucketPolicyCommand, S3Client } from '@aws-sdk/client-s3';
import { CloverError, ExitCode } from '../config/errors';
import { isEea } from '../domain/eea';
import { SEARCH_ATTRIBUTE_NAMES } from '../domain/names';
import type { SiteConfig } from '../config/sites';
import { ensureKeyPair } from '../evidence/keys';
import type { ToolPaths } from './tools';

/** The four simulated sites of the local stack. */
export const LOCAL_SITES = [
  { name: 'sg', jurisdiction: 'SG', region: 'ap-southeast-1', defaultPort: 7301 },
  { name: 'us', jurisdiction: 'US', region: 'us-east-1', defaultPort: 7302 },
  { name: 'eu-ie', jurisdiction: 'IE', region: 'eu-west-1', defaultPort: 7303 },
  { name: 'eu-no', jurisdiction: 'NO', region: 'eu-north-1', defaultPort: 7304 },
] as const;

export const SEARCH_ATTRIBUTES = Object.values(SEARCH_ATTRIBUTE_NAMES);

export interface StackPorts {
  temporal: number;
  ui: number;
  sites: Record<string, number>;
}

export interface ServiceRecord {
  name: string;
  pid: number;
  port: number;
  binary: string;
  /** Its arguments (no secrets: those go through the environment); lets `restartTemporal` start it again. */
  args?: string[];
}

export interface StackState {
  dir: string;
  temporalAddress: string;
  uiUrl: string;
  sitesFile: string;
  /**
   * The auditor's sites file (same format, 0600): per site an account that can read the bucket (list,
   * get) and nothing else; for `clover verify` and `clover report` (absent in a state file of an older Clover).
   */
  auditorSitesFile?: string;
  /** The evidence signing key the stack made beside its sites file (absent in a state file of an older Clover). */
  signingKeyFile?: string;
  services: ServiceRecord[];
}

/** Environment variables that move each default port (named in the "port taken" message). */
export function portEnvName(service: string): string {
  if (service === 'temporal') return 'CLOVER_TEMPORAL_PORT';
  if (service === 'temporal-ui') return 'CLOVER_TEMPORAL_UI_PORT';
  return `CLOVER_SITE_PORT_${service.toUpperCase().replace(/-/g, '_')}`;
}

/** The default ports, each moved by its environment variable. */
export function defaultPorts(env: NodeJS.ProcessEnv = process.env): StackPorts {
  const read = (service: string, fallback: number): number => {
    const raw = env[portEnvName(service)];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new CloverError(`${portEnvName(service)}=${raw} is not a TCP port (1-65535)`, ExitCode.badInput);
    }
    return n;
  };
  return {
    temporal: read('temporal', 7233),
    ui: read('temporal-ui', 8233),
    sites: Object.fromEntries(LOCAL_SITES.map((s) => [s.name, read(s.name, s.defaultPort)])),
  };
}

/** The lowest local port the OS gives outgoing connections (Linux's setting; elsewhere the IANA range's). */
function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low) return low;
  } catch {
    // Not Linux: the IANA range, which macOS and Windows use.
  }
  return 49152;
}

/** Resolves true when `port` can be listened on at 127.0.0.1 right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Ports this process has handed out, so one stack never gets the same port twice. */
const handedOut = new Set<number>();

/**
 * A TCP port free right now (for tests and the bench, which must not collide with a running stack),
 * chosen below the OS's ephemeral range: a port the OS picked with listen(0) is one it also gives to
 * outgoing connections, so between this answer and the service's bind, any connection opened meanwhile
 * (Temporal's own, at start-up) could take it ("address already in use").
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  const min = 10_000;
  for (let i = 0; low - min > 1000 && i < 100; i++) {
    const port = randomInt(min, low);
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
  // No room below the ephemeral range (or all tried were taken): one the OS picks.
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      handedOut.add(port);
      srv.close(() => resolve(port));
    });
  });
}

export async function freePorts(): Promise<StackPorts> {
  const sites: Record<string, number> = {};
  for (const s of LOCAL_SITES) sites[s.name] = await freePort();
  return { temporal: await freePort(), ui: await freePort(), sites };
}

function portAnswers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when `pid` runs `binary`: a recorded pid may have been reused by an unrelated process. */
function isOurs(rec: ServiceRecord): boolean {
  if (!isAlive(rec.pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8');
    return cmdline.split('\0')[0] === rec.binary;
  } catch {
    return true; // no /proc (macOS): trust the recorded pid
  }
}

function stateFile(dir: string): string {
  return join(dir, 'stack.json');
}

export function readStackState(dir: string): StackState | undefined {
  const f = stateFile(dir);
  if (!existsSync(f)) return undefined;
  return JSON.parse(readFileSync(f, 'utf8')) as StackState;
}

type LocalSitesFile = { sites: Record<string, SiteConfig> };

function loadOrCreateCredentials(sitesFile: string, prefix = 'CLOVER'): Record<string, { accessKeyId: string; secretAccessKey: string }> {
  const out: Record<string, { accessKeyId: string; secretAccessKey: string }> = {};
  if (existsSync(sitesFile)) {
    try {
      const old = JSON.parse(readFileSync(sitesFile, 'utf8')) as LocalSitesFile;
      for (const [name, site] of Object.entries(old.sites ?? {})) if (site.credentials) out[name] = site.credentials;
    } catch {
      // unreadable: new credentials below
    }
  }
  for (const s of LOCAL_SITES) {
    out[s.name] ??= {
      accessKeyId: `${prefix}${s.name.replace(/-/g, '').toUpperCase()}${randomBytes(4).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(24).toString('base64url'),
    };
  }
  return out;
}

async function waitFor(what: string, logFile: string, pid: number, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    if (!isAlive(pid)) {
      throw new CloverError(`${what} exited during start-up; see ${logFile}`, ExitCode.unreachable);
    }
    await sleep(200);
  }
  throw new CloverError(`${what} did not answer within ${Math.round(timeoutMs / 1000)}s; see ${logFile}`, ExitCode.unreachable);
}

/** Files under the stack's folder that hold secrets (the sites' credentials) or data (Temporal's SQLite). */
const PRIVATE_FILES = ['local-sites.json', 'auditor-sites.json', 'signing-key.pem', 'temporal.db', 'temporal.db-shm', 'temporal.db-wal'];

/**
 * Owner-only modes for the stack's folder, the folders it makes (0700) and its private files (0600),
 * whatever modes they had before (an older Clover, a umask of 022, a copy): run on every start.
 */
export function makeStackPrivate(dir: string): void {
  for (const d of [dir, join(dir, 'logs'), join(dir, 'sites'), join(dir, 'iam'), ...LOCAL_SITES.flatMap((s) => [join(dir, 'sites', s.name), join(dir, 'iam', s.name)])]) {
    if (existsSync(d)) chmodSync(d, 0o700);
  }
  for (const f of PRIVATE_FILES) if (existsSync(join(dir, f))) chmodSync(join(dir, f), 0o600);
}

/**
 * Starts a service with umask 077, which it inherits: what it creates (Temporal's database and its
 * WAL files, versitygw's buckets and objects) is owner-only from the start.
 */
function spawnPrivate(binary: string, args: string[], opts: SpawnOptions): ChildProcess {
  const previous = process.umask(0o077);
  try {
    return spawn(binary, args, opts);
  } finally {
    process.umask(previous);
  }
}

export interface StartOptions {
  dir: string;
  tools: ToolPaths;
  ports: StackPorts;
  /** Print progress lines (the CLI); tests pass a no-op. */
  say?: (line: string) => void;
  /**
   * Each versitygw site also writes an S3 access log, one line per request, to `accessLogPath(dir, site)`
   * (for benchmarks that count requests). Off by default. It is part of the site's recorded arguments;
   * a site already running from an earlier start is kept as it is (with or without its log).
   */
  accessLogs?: boolean;
}

/** Where a site of the local stack started with `accessLogs` writes its access log. */
export function accessLogPath(dir: string, site: string): string {
  return join(dir, 'logs', `${site}-access.log`);
}

/**
 * Starts (or finds running) the Temporal dev server and one versitygw per site under `dir`, waits until
 * every service answers, creates each site's bucket, and writes `<dir>/local-sites.json`. Every start
 * leaves the folder, its sub-folders (0700), the sites file and Temporal's database files (0600)
 * owner-only, also when they existed with wider modes. Idempotent: services already running from an
 * earlier `up` in the same dir are kept.
 */
export async function startStack(opts: StartOptions): Promise<StackState> {
  const { dir, tools, ports } = opts;
  const say = opts.say ?? (() => undefined);
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  makeStackPrivate(dir);
  const previous = readStackState(dir);
  const running = new Map((previous?.services ?? []).filter(isOurs).map((s) => [s.name, s]));
  const services: ServiceRecord[] = [];
  /** Services this call launched (not found running): stopped again if the start fails. */
  const started: ServiceRecord[] = [];
  const sitesFile = join(dir, 'local-sites.json');
  const creds = loadOrCreateCredentials(sitesFile);
  const auditorSitesFile = join(dir, AUDITOR_SITES_FILE);
  const auditorCreds = loadOrCreateCredentials(auditorSitesFile, 'AUDITOR');
  let auditorReady = false;
  // The evidence signing key, made once beside the sites file (see defaultSigningKeyFile).
  const signingKeyFile = ensureKeyPair(dir);

  const launch = async (name: string, port: number, binary: string, args: string[], extraPorts: number[] = [], env: NodeJS.ProcessEnv = {}) => {
    const already = running.get(name);
    if (already && already.port === port) {
      if (already.args && already.args.join('\0') !== args.join('\0')) {
        say(`${name} is already running with other arguments; keeping it (\`clover stack down\` first to apply the new ones)`);
      }
      services.push(already);
      return { rec: already, fresh: false };
    }
    for (const p of [port, ...extraPorts]) {
      if (await portAnswers(p)) {
        const svc = p === port ? name : 'temporal-ui';
        throw new CloverError(
          `port ${p} (for ${svc}) is already in use by another process; stop it or set ${portEnvName(svc)} to a free port`,
          ExitCode.badInput,
        );
      }
    }
    const logFile = join(logDir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawnPrivate(binary, args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    closeSync(fd);
    child.unref();
    const rec = { name, pid: child.pid!, port, binary, args };
    services.push(rec);
    started.push(rec);
    // Record as we go, so `down` can stop what started even if a later service fails.
    writeState();
    return { rec, fresh: true };
  };
  const state = (): StackState => ({
    dir,
    temporalAddress: `127.0.0.1:${ports.temporal}`,
    uiUrl: `http://127.0.0.1:${ports.ui}`,
    sitesFile,
    ...(auditorReady ? { auditorSitesFile } : {}),
    signingKeyFile,
    services: [...services, ...[...running.values()].filter((r) => !services.some((s) => s.name === r.name))],
  });
  const writeState = () => writeFileSync(stateFile(dir), JSON.stringify(state(), null, 2));

  try {
    const temporalArgs = [
      'server', 'start-dev',
      '--ip', '127.0.0.1',
      '--port', String(ports.temporal),
      '--ui-port', String(ports.ui),
      '--db-filename', join(dir, 'temporal.db'),
      // Write-ahead log: a commit is one append instead of a rewrite of the journal. It survives the server
      // process being killed (what the local stack's crash tests do); only a power cut may lose the last commits.
      '--sqlite-pragma', 'journal_mode=wal',
      '--sqlite-pragma', 'synchronous=normal',
      '--namespace', 'default',
      '--log-level', 'warn',
      ...SEARCH_ATTRIBUTES.flatMap((a) => ['--search-attribute', `${a}=Keyword`]),
    ];
    const t = await launch('temporal', ports.temporal, tools.temporal, temporalArgs, [ports.ui]);
    if (t.fresh) say(`starting Temporal dev server on 127.0.0.1:${ports.temporal}`);

    const siteProcs: { name: string; pid: number; port: number; config: SiteConfig; auditor: SiteConfig }[] = [];
    for (const s of LOCAL_SITES) {
      const port = ports.sites[s.name];
      const c = creds[s.name];
      if (port === undefined || c === undefined) throw new CloverError(`the local stack has no port or credentials for site ${s.name}`, ExitCode.badInput);
      const dataDir = join(dir, 'sites', s.name);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const iamDir = join(dir, 'iam', s.name);
      writeAuditorAccount(iamDir, auditorCreds[s.name]!);
      const versionsDir = isEea(s.jurisdiction) ? undefined : join(dir, 'sites', `${s.name}-versions`);
      if (versionsDir) mkdirSync(versionsDir, { recursive: true, mode: 0o700 });
      // Keys go through the environment, not argv, so `ps` does not show them.
      const r = await launch(
        `site-${s.name}`, port, tools.versitygw,
        // Keep-alive as real S3 endpoints do: otherwise every request of every tool pays a new TCP connection.
        [
          '--port', `127.0.0.1:${port}`, '--region', s.region, '--quiet', '--keep-alive',
          // Its internal IAM: root (the environment's keys) plus the read-only auditor account.
          '--iam-dir', iamDir,
          ...(opts.accessLogs ? ['--access-log', accessLogPath(dir, s.name)] : []),
          // Source sites can hold versioned buckets (a bucket is versioned only once versioning is enabled on
          // it; the site's own bucket stays plain): real platforms' buckets are.
          'posix', ...(versionsDir ? ['--versioning-dir', versionsDir] : []), dataDir,
        ],
        [],
        { ROOT_ACCESS_KEY_ID: c.accessKeyId, ROOT_SECRET_ACCESS_KEY: c.secretAccessKey },
      );
      if (r.fresh) say(`starting S3 site ${s.name} (versitygw) on 127.0.0.1:${port}`);
      const config: SiteConfig = {
        endpoint: `http://127.0.0.1:${port}`,
        region: s.region,
        bucket: `clover-${s.name}`,
        jurisdiction: s.jurisdiction,
        forcePathStyle: true,
        credentials: c,
      };
      siteProcs.push({ name: s.name, pid: r.rec.pid, port, config, auditor: { ...config, credentials: auditorCreds[s.name]! } });
    }
    const sites: Record<string, SiteConfig> = Object.fromEntries(siteProcs.map((p) => [p.name, p.config]));

    await waitFor('Temporal dev server', join(logDir, 'temporal.log'), t.rec.pid, () => temporalReady(ports.temporal), 90_000);
    await waitFor('Temporal web UI', join(logDir, 'temporal.log'), t.rec.pid, () => httpOk(`http://127.0.0.1:${ports.ui}/`), 60_000);
    const withoutAuditor: string[] = [];
    for (const p of siteProcs) {
      const logFile = join(logDir, `site-${p.name}.log`);
      await waitFor(`S3 site ${p.name}`, logFile, p.pid, () => portAnswers(p.port), 30_000);
      if (!(await ensureBucket(p.config, p.auditor.credentials!.accessKeyId))) withoutAuditor.push(p.name);
    }
    writeFileSync(sitesFile, JSON.stringify({ sites }, null, 2) + '\n', { mode: 0o600 });
    if (withoutAuditor.length === 0) {
      writeFileSync(auditorSitesFile, JSON.stringify({ sites: Object.fromEntries(siteProcs.map((p) => [p.name, p.auditor])) }, null, 2) + '\n', { mode: 0o600 });
      auditorReady = true;
    } else {
      say(`site(s) ${withoutAuditor.join(', ')} kept running from an earlier start without the read-only auditor account; \`clover stack down\` and up again to get ${AUDITOR_SITES_FILE}`);
    }
  } catch (err) {
    // A start that fails leaves nothing it launched running (what was already running stays).
    for (const rec of started) if (isOurs(rec)) await stopService(rec);
    services.splice(0, services.length, ...services.filter((r) => !started.includes(r)));
    writeState();
    throw err;
  }
  // Again now that every file exists: Temporal's database files were made by the server just now.
  makeStackPrivate(dir);
  writeState();
  return state();
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
}

async function temporalReady(port: number): Promise<boolean> {
  // The dev server's HTTP health check is not on a fixed port; the gRPC port accepting a connection
  // is followed by a describe-namespace call through the client library.
  if (!(await portAnswers(port))) return false;
  const { Connection } = await import('@temporalio/client');
  const conn = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: 2000 });
  try {
    await conn.workflowService.describeNamespace({ namespace: 'default' });
    return true;
  } finally {
    await conn.close();
  }
}

/** The auditor's sites file, beside local-sites.json. */
export const AUDITOR_SITES_FILE = 'auditor-sites.json';

/**
 * What the auditor account may do in a bucket: read objects and list them (and read the bucket's
 * settings an audit looks at), nothing else: no PutObject, no DeleteObject, no policy change.
 */
export const AUDITOR_READ_ACTIONS = [
  's3:GetObject', 's3:GetObjectVersion', 's3:ListBucket', 's3:ListBucketVersions', 's3:GetBucketLocation',
  's3:GetBucketVersioning', 's3:GetObjectRetention', 's3:GetBucketObjectLockConfiguration',
];

/** A bucket policy granting `principal` (an access key id on versitygw; an IAM ARN on AWS) read-only access. */
export function readOnlyBucketPolicy(bucket: string, principal: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Sid: 'CloverAuditorReadOnly', Effect: 'Allow', Principal: { AWS: [principal] }, Action: AUDITOR_READ_ACTIONS, Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`] }],
  });
}

/**
 * Puts the auditor account into a site's internal IAM (`--iam-dir`): versitygw 1.7.0 keeps its accounts
 * in `users.json` there; an account with role `user` may do nothing but what a bucket policy grants.
 * Written before the server starts (so no admin call, and its secret never appears in a command line);
 * other accounts in the file are kept.
 */
function writeAuditorAccount(iamDir: string, c: { accessKeyId: string; secretAccessKey: string }): void {
  mkdirSync(iamDir, { recursive: true, mode: 0o700 });
  const file = join(iamDir, 'users.json');
  let iam: { accessAccounts?: Record<string, unknown> } = {};
  try {
    iam = JSON.parse(readFileSync(file, 'utf8')) as typeof iam;
  } catch {
    // none yet (or unreadable): a new file with the auditor alone
  }
  iam.accessAccounts = { ...(iam.accessAccounts ?? {}), [c.accessKeyId]: { access: c.accessKeyId, secret: c.secretAccessKey, role: 'user', userID: 0, groupID: 0, projectID: 0 } };
  writeFileSync(file, JSON.stringify(iam), { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** Creates the site's bucket when missing and grants the auditor read access; false: the site has no auditor account. */
async function ensureBucket(site: SiteConfig, auditor: string): Promise<boolean> {
  const s3 = new S3Client({
    endpoint: site.endpoint,
    region: site.region,
    forcePathStyle: true,
    // A copy: the SDK annotates the credentials object it is given (e.g. with $source).
    credentials: site.credentials && { ...site.credentials },
    maxAttempts: 1,
  });
  try {
    for (let i = 0; ; i++) {
      try {
        await s3.send(new HeadBucketCommand({ Bucket: site.bucket }));
        break;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404) {
          await s3.send(new CreateBucketCommand({ Bucket: site.bucket }));
          break;
        }
        if (i >= 20) throw err;
        await sleep(250);
      }
    }
    // On every start: the auditor may read this bucket, nothing more.
    try {
      await s3.send(new PutBucketPolicyCommand({ Bucket: site.bucket, Policy: readOnlyBucketPolicy(site.bucket, auditor) }));
    } catch (err) {
      // A site kept running from a start by an older Clover has no internal IAM, so no auditor account.
      if ((err as { name?: string }).name === 'MalformedPolicy') return false;
      throw err;
    }
    return true;
  } finally {
    s3.destroy();
  }
}

/** Stops one of the stack's processes: SIGTERM, then SIGKILL after 15 s. */
async function stopService(rec: ServiceRecord): Promise<void> {
  process.kill(rec.pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (isAlive(rec.pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(rec.pid)) process.kill(rec.pid, 'SIGKILL');
}

/** Stops the processes recorded by `startStack` in `dir` (and only those); `wipe` also deletes their data. */
export async function stopStack(dir: string, opts: { wipe?: boolean; say?: (l: string) => void } = {}): Promise<number> {
  const say = opts.say ?? (() => undefined);
  const state = readStackState(dir);
  let stopped = 0;
  for (const rec of state?.services ?? []) {
    if (!isOurs(rec)) continue;
    await stopService(rec);
    say(`stopped ${rec.name} (pid ${rec.pid})`);
    stopped++;
  }
  if (state) writeFileSync(stateFile(dir), JSON.stringify({ ...state, services: [] }, null, 2));
  if (opts.wipe) {
    for (const p of ['temporal.db', 'temporal.db-shm', 'temporal.db-wal', 'sites', 'iam', 'local-sites.json', AUDITOR_SITES_FILE, 'stack.json']) {
      rmSync(join(dir, p), { recursive: true, force: true });
    }
    say(`wiped the stack's data under ${dir}`);
  }
  return stopped;
}

/**
 * Kills the stack's Temporal server without warning (SIGKILL) and starts it again with the same command
 * line and database, then waits until it answers; for crash tests. Returns the new record.
 */
export async function restartTemporal(dir: string): Promise<ServiceRecord> {
  const state = readStackState(dir);
  const old = state?.services.find((s) => s.name === 'temporal');
  if (!state || !old?.args) throw new CloverError(`no restartable Temporal server recorded in ${stateFile(dir)}`, ExitCode.badInput);
  if (isOurs(old)) {
    process.kill(old.pid, 'SIGKILL');
    while (isOurs(old)) await sleep(50); // a killed child not yet reaped shows an empty cmdline
  }
  const logFile = join(dir, 'logs', 'temporal.log');
  const fd = openSync(logFile, 'a');
  const child = spawnPrivate(old.binary, old.args, { detached: true, stdio: ['ignore', fd, fd], env: process.env });
  closeSync(fd);
  child.unref();
  const rec: ServiceRecord = { ...old, pid: child.pid! };
  writeFileSync(stateFile(dir), JSON.stringify({ ...state, services: state.services.map((s) => (s.name === 'temporal' ? rec : s)) }, null, 2));
  await waitFor('Temporal dev server', logFile, rec.pid, () => temporalReady(rec.port), 90_000);
  return rec;
}

export interface ServiceStatus extends ServiceRecord {
  running: boolean;
  answering: boolean;
}

export async function stackStatus(dir: string): Promise<{ state?: StackState; services: ServiceStatus[] }> {
  const state = readStackState(dir);
  const services: ServiceStatus[] = [];
  for (const rec of state?.services ?? []) {
    services.push({ ...rec, running: isOurs(rec), answering: await portAnswers(rec.port) });
  }
  return { state, services };
}
