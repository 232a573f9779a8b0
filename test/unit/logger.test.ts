import { Writable } from 'node:stream';
import pino from 'pino';
import { ApplicationFailure } from '@temporalio/common';
import { StorageError } from '../../src/storage/errors';
import { REDACT, temporalLogger } from '../../src/worker/logger';

/** Temporal's own log lines reach pino with what an operator needs: the failure's message names site and key. */
describe('worker logs', () => {
  const capture = () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => { lines.push(JSON.parse(String(chunk))); done(); } });
    return { lines, logger: pino({ level: 'debug', redact: { paths: REDACT, censor: '[redacted]' } }, sink) };
  };

  it('an "Activity failed" warning carries the error message, type and cause', () => {
    const { lines, logger } = capture();
    const cause = new StorageError('GetObject failed at site sg, bucket clover-sg, key "users/u1/a": SlowDown (HTTP 503)', 'SlowDown', false, 503);
    const error = ApplicationFailure.create({ type: 'SourceCorrupt', message: 'bytes read do not match its ETag', cause });
    temporalLogger(logger).log('WARN', 'Activity failed', { error, durationMs: 12 });
    expect(lines).toHaveLength(1);
    const line = lines[0] as { msg: string; source: string; durationMs: number; error: { message: string; type: string; stack: string; cause?: { message: string } } };
    expect(line.msg).toBe('Activity failed');
    expect(line.source).toBe('temporal');
    expect(line.durationMs).toBe(12);
    expect(line.error.message).toContain('bytes read do not match its ETag');
    expect(line.error.stack).toContain('ApplicationFailure');
    expect(JSON.stringify(line.error)).toContain('site sg, bucket clover-sg, key \\"users/u1/a\\"');
  });

  it('secrets in Temporal log meta stay redacted', () => {
    const { lines, logger } = capture();
    temporalLogger(logger).log('INFO', 'connecting', { credentials: { secretAccessKey: 'hunter2' } });
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });
});
