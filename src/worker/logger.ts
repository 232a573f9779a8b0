import pino, { type Logger } from 'pino';
import { DefaultLogger, type LogEntry, type LogLevel } from '@temporalio/worker';

/** Field paths whose values never reach a log line (invariant 7). */
export const REDACT = [
  'credentials', '*.credentials', '*.*.credentials', 'secretAccessKey', '*.secretAccessKey', '*.*.secretAccessKey',
  'sessionToken', '*.sessionToken', 'apiKey', '*.apiKey', 'authorization', '*.authorization', '*.headers.authorization',
];

export function createLogger(level = process.env.CLOVER_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { app: 'clover' }, redact: { paths: REDACT, censor: '[redacted]' } });
}

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error',
};

/**
 * Routes Temporal's own logs (message, meta) into pino (meta, message). Errors anywhere in the meta
 * (Temporal's "Activity failed" puts one under `error`) keep their message, type and cause: pino's
 * default serializer covers only `err`, and JSON drops an Error's message.
 */
export function temporalLogger(logger: Logger): DefaultLogger {
  return new DefaultLogger('INFO', (entry: LogEntry) => {
    const meta: Record<string, unknown> = { source: 'temporal' };
    for (const [k, v] of Object.entries(entry.meta ?? {})) meta[k] = v instanceof Error ? pino.stdSerializers.err(v) : v;
    logger[LEVELS[entry.level]](meta, entry.message);
  });
}
