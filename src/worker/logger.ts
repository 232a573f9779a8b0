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

/** Routes Temporal's own logs (message, meta) into pino (meta, message). */
export function temporalLogger(logger: Logger): DefaultLogger {
  return new DefaultLogger('INFO', (entry: LogEntry) => {
    logger[LEVELS[entry.level]]({ ...(entry.meta ?? {}), source: 'temporal' }, entry.message);
  });
}
