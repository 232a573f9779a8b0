/**
 * The evidence signing key: an Ed25519 pair, made by `clover keygen` (or the local stack) and read from
 * CLOVER_SIGNING_KEY_FILE. The private key stays in this process: never logged, never in a workflow
 * payload or heartbeat, never written to a bucket (only SigningKey objects leave this module).
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../config/errors';
import { keyIdOf, signingKeyFromPem, type Actor, type SigningKey } from './ledger';

export const PRIVATE_KEY_FILE = 'signing-key.pem';
export const PUBLIC_KEY_FILE = 'signing-key.pub.pem';
/** The sites file the local stack writes; a signing key beside it is the local stack's. */
const LOCAL_SITES_FILE = 'local-sites.json';

export interface KeyPairPems {
  privatePem: string;
  publicPem: string;
  keyId: string;
}

export function generateKeyPair(): KeyPairPems {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/** Creates `file` with `mode` from the start (no window with wider permissions); fails if it exists. */
function createExclusive(file: string, text: string, mode: number): void {
  const fd = openSync(file, 'wx', mode);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a new pair into `dir`: `signing-key.pem` (created 0600) and `signing-key.pub.pem`. Refuses
 * (InputError) to replace an existing private key: a lost key cannot sign the ledger's next record.
 */
export function writeKeyPair(dir: string): { privateKeyFile: string; publicKeyFile: string; keyId: string } {
  const privateKeyFile = resolve(dir, PRIVATE_KEY_FILE);
  const publicKeyFile = resolve(dir, PUBLIC_KEY_FILE);
  if (existsSync(privateKeyFile)) throw new InputError(`${privateKeyFile} already exists: keygen never replaces a signing key (choose another --out, or move it away yourself)`);
  const pair = generateKeyPair();
  try {
    createExclusive(privateKeyFile, pair.privatePem, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new InputError(`${privateKeyFile} already exists: keygen never replaces a signing key`);
    throw new InputError(`cannot write ${privateKeyFile}: ${(err as Error).message}`);
  }
  try {
    createExclusive(publicKeyFile, pair.publicPem, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new InputError(`cannot write ${publicKeyFile}: ${(err as Error).message}`);
    // A stale public key beside a new private key would mislead an auditor: replace it (it is public).
    createExclusive(`${publicKeyFile}.tmp-${process.pid}`, pair.publicPem, 0o644);
    renameSync(`${publicKeyFile}.tmp-${process.pid}`, publicKeyFile);
  }
  return { privateKeyFile, publicKeyFile, keyId: pair.keyId };
}

/** The local stack's key: `<dir>/signing-key.pem`, generated once (kept on every later start). */
export function ensureKeyPair(dir: string): string {
  const file = join(dir, PRIVATE_KEY_FILE);
  if (!existsSync(file)) writeKeyPair(dir);
  return file;
}

/**
 * Which signing key a command or worker uses: CLOVER_SIGNING_KEY_FILE, else, when the sites file in use
 * is a local stack's `local-sites.json`, the `signing-key.pem` the stack generated beside it (mirrors
 * the sites file's own default: `--sites`, else CLOVER_SITES, else the local stack's). Undefined: none.
 */
export function defaultSigningKeyFile(sitesFile?: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CLOVER_SIGNING_KEY_FILE) return resolve(env.CLOVER_SIGNING_KEY_FILE);
  if (sitesFile && basename(sitesFile) === LOCAL_SITES_FILE) {
    const beside = join(dirname(resolve(sitesFile)), PRIVATE_KEY_FILE);
    if (existsSync(beside)) return beside;
  }
  return undefined;
}

/** Reads and checks a private key file (owner-only, PEM, Ed25519); InputError naming the file otherwise. */
export function readSigningKeyFile(file: string): SigningKey {
  let text: string;
  let mode: number;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read the signing key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (CLOVER_SIGNING_KEY_FILE; make one with \`clover keygen --out DIR\`)`);
  }
  if ((mode & 0o077) !== 0) throw new InputError(`the signing key ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 ${file}`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new InputError(`the signing key ${file} is not a PEM private key (make one with \`clover keygen --out DIR\`)`);
  try {
    return signingKeyFromPem(text);
  } catch (err) {
    const m = (err as Error).message;
    throw new InputError(`the signing key ${file} is not an Ed25519 private key${/not Ed25519/.test(m) ? ` (${m.replace(/^the signing key is /, 'it is ')})` : ''} (make one with \`clover keygen --out DIR\`)`);
  }
}

/** The signing key (see defaultSigningKeyFile); undefined when none is configured. */
export function loadSigningKey(env: NodeJS.ProcessEnv = process.env, opts: { sitesFile?: string } = {}): SigningKey | undefined {
  const file = defaultSigningKeyFile(opts.sitesFile, env);
  return file === undefined ? undefined : readSigningKeyFile(file);
}

/** Reads a public key PEM (or the public half of a private key file); InputError naming the file. */
export function readPublicKeyFile(file: string): KeyObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read the public key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let k;
  try {
    k = createPublicKey(text);
  } catch {
    throw new InputError(`${file} is not a PEM public key`);
  }
  if (k.asymmetricKeyType !== 'ed25519') throw new InputError(`the public key ${file} is ${k.asymmetricKeyType}, not Ed25519`);
  return k;
}

/** The operator running a CLI command: CLOVER_OPERATOR, else the OS user; at this host. */
export function operatorActor(env: NodeJS.ProcessEnv = process.env): Actor {
  let who = env.CLOVER_OPERATOR;
  if (!who) {
    try {
      who = userInfo().username;
    } catch {
      who = env.USER ?? 'unknown';
    }
  }
  return { who, host: hostname(), via: 'cli' };
}

/** A worker process: `worker <pid>` at this host. */
export function workerActor(): Actor {
  return { who: `worker ${process.pid}`, host: hostname(), via: 'worker' };
}
