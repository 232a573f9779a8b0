import { readFileSync } from 'node:fs';
import { DEFAULT_TASK_QUEUE, SEARCH_ATTRIBUTE_NAMES } from '../domain/names';
import { InputError } from './errors';

export interface TemporalConfig {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: { serverNameOverride?: string; serverRootCACertificate?: Buffer; clientCertPair?: { crt: Buffer; key: Buffer } } | boolean;
  /** Base URL of the web UI, for links printed to operators. */
  uiUrl: string;
  /** Task queue that workers poll and `clover start` targets (CLOVER_TASK_QUEUE, default clover-migrations). */
  taskQueue: string;
}

function readPem(path: string, variable: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InputError(`${variable}=${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/**
 * Connection settings from the standard TEMPORAL_* variables (README "Running against a real cluster"),
 * defaulting to the local stack. Parsed once; nothing else reads these variables.
 */
export function temporalConfig(env: NodeJS.ProcessEnv = process.env): TemporalConfig {
  const address = env.TEMPORAL_ADDRESS || '127.0.0.1:7233';
  const namespace = env.TEMPORAL_NAMESPACE || 'default';
  const apiKey = env.TEMPORAL_API_KEY || undefined;
  const certPath = env.TEMPORAL_TLS_CLIENT_CERT_PATH;
  const keyPath = env.TEMPORAL_TLS_CLIENT_KEY_PATH;
  if (Boolean(certPath) !== Boolean(keyPath)) {
    throw new InputError('set both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH for mTLS, or neither');
  }
  const caPath = env.TEMPORAL_TLS_SERVER_CA_CERT_PATH;
  const tlsWanted = ['1', 'true'].includes((env.TEMPORAL_TLS ?? '').toLowerCase()) || Boolean(certPath) || Boolean(apiKey) || Boolean(caPath);
  let tls: TemporalConfig['tls'];
  if (tlsWanted) {
    tls = {
      serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME || undefined,
      serverRootCACertificate: caPath ? readPem(caPath, 'TEMPORAL_TLS_SERVER_CA_CERT_PATH') : undefined,
      clientCertPair: certPath && keyPath ? { crt: readPem(certPath, 'TEMPORAL_TLS_CLIENT_CERT_PATH'), key: readPem(keyPath, 'TEMPORAL_TLS_CLIENT_KEY_PATH') } : undefined,
    };
  }
  const uiUrl = (env.CLOVER_TEMPORAL_UI_URL || (address.startsWith('127.0.0.1:') || address.startsWith('localhost:') ? `http://127.0.0.1:${env.CLOVER_TEMPORAL_UI_PORT || 8233}` : `https://cloud.temporal.io`)).replace(/\/$/, '');
  const taskQueue = env.CLOVER_TASK_QUEUE || DEFAULT_TASK_QUEUE;
  return Object.freeze({ address, namespace, apiKey, tls, uiUrl, taskQueue });
}

export function workflowUiUrl(cfg: TemporalConfig, workflowId: string): string {
  return `${cfg.uiUrl}/namespaces/${encodeURIComponent(cfg.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export function migrationListUiUrl(cfg: TemporalConfig, migrationId: string): string {
  const q = encodeURIComponent(`${SEARCH_ATTRIBUTE_NAMES.migrationId}="${migrationId}"`);
  return `${cfg.uiUrl}/namespaces/${encodeURIComponent(cfg.namespace)}/workflows?query=${q}`;
}
