/**
 * Minimal stand-in (replaced at merge by the full keys module: keygen, export, offline verify).
 */
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { signingKeyFromPem, type Actor, type SigningKey } from './ledger';

/** The key named by CLOVER_SIGNING_KEY_FILE, or undefined when it is unset. */
export function loadSigningKey(env: NodeJS.ProcessEnv = process.env): SigningKey | undefined {
  const file = env.CLOVER_SIGNING_KEY_FILE;
  if (!file) return undefined;
  return signingKeyFromPem(readFileSync(file, 'utf8'));
}

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

/** Who runs this command: CLOVER_OPERATOR, else the OS user; at this host; via the CLI. */
export function operatorActor(): Actor {
  return { who: process.env.CLOVER_OPERATOR || osUser(), host: hostname(), via: 'cli' };
}

/** This worker process. */
export function workerActor(): Actor {
  return { who: `worker ${osUser()} pid ${process.pid}`, host: hostname(), via: 'worker' };
}
