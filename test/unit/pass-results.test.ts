import { ExitCode } from '../../src/config/errors';
import {
  cutoverExitCode, cutoverLines, cutoverSummary, passLines, syncExitCode, syncLines, syncSummary, type UserCutoverResult, type UserSyncResult,
} from '../../src/operator/pass-results';
import { zeroCounters, type PassReport, type UserOutcome } from '../../src/workflows/definitions';

const report = (over: Partial<PassReport> = {}): PassReport => ({
  userId: 'u-1', generation: 3, kind: 'delta', copied: 2, overwritten: 1, erased: 4, unchanged: 10, verified: 3, conflicts: 0, conflictKeys: [], inStep: true, ...over,
});
const outcome = (over: Partial<UserOutcome> = {}): UserOutcome => ({
  userId: 'u-1', ok: true, counters: zeroCounters(), lastPass: report(), sourceDeleted: 12, residue: [], residueCount: 0, ...over,
});

describe('clover sync: lines and exit code', () => {
  it('one line per pass in the documented form', () => {
    expect(syncLines({ userId: 'u-1', kind: 'pass', report: report() })).toEqual(['user u-1: generation 3: copied 2, overwritten 1, erased 4, unchanged 10, conflicts 0']);
  });

  it('a line per conflict key, and how many more there are', () => {
    const r = report({ conflicts: 3, inStep: false, conflictKeys: [{ key: 'users/u-1/a b', reason: 'the EU copy was changed by someone else' }] });
    expect(passLines('u-1', r)).toEqual([
      'user u-1: generation 3: copied 2, overwritten 1, erased 4, unchanged 10, conflicts 3',
      'CONFLICT user u-1 key "users/u-1/a b": the EU copy was changed by someone else',
      '... and 2 more conflict(s) of user u-1 (the manifest lists them all)',
    ]);
  });

  it('a failed pass says why', () => {
    expect(syncLines({ userId: 'u-1', kind: 'pass', report: report({ generation: undefined, inStep: false, error: 'access denied' }) })).toEqual(['user u-1: pass failed: access denied']);
  });

  it('exit 0 only when every pass is in step (or, without --wait, was requested)', () => {
    const ok: UserSyncResult = { userId: 'a', kind: 'pass', report: report() };
    const conflict: UserSyncResult = { userId: 'b', kind: 'pass', report: report({ conflicts: 1, inStep: false }) };
    const failed: UserSyncResult = { userId: 'c', kind: 'pass', report: report({ inStep: false, error: 'x' }) };
    const refused: UserSyncResult = { userId: 'd', kind: 'refused', reason: 'already cut over' };
    const requested: UserSyncResult = { userId: 'e', kind: 'requested', how: 'update' };
    expect(syncExitCode([ok, requested])).toBe(ExitCode.ok);
    expect(syncSummary([ok, requested])).toBeUndefined();
    expect(syncExitCode([ok, conflict])).toBe(ExitCode.failures);
    expect(syncExitCode([ok, failed])).toBe(ExitCode.failures);
    expect(syncExitCode([ok, refused])).toBe(ExitCode.failures);
    expect(syncSummary([ok, conflict, refused])).toBe('2 user(s) not in step: b, d');
    expect(syncExitCode([])).toBe(ExitCode.failures);
    expect(syncLines(refused)).toEqual(['user d: already cut over']);
  });
});

describe('clover cutover: lines and exit code', () => {
  it('deleted objects and residue, one line per residue key', () => {
    const r: UserCutoverResult = {
      userId: 'u-1', kind: 'outcome', keep: false,
      outcome: outcome({ residueCount: 3, residue: [{ key: 'users/u-1/late', site: 'sg', reason: 'written after the final pass' }] }),
    };
    expect(cutoverLines(r)).toEqual([
      'user u-1: final pass generation 3: copied 2, overwritten 1, erased 4, unchanged 10, conflicts 0',
      'user u-1: cut over: 12 source object(s) deleted; residue 3',
      'RESIDUE site sg key "users/u-1/late": written after the final pass',
      '... and 2 more residue object(s) of user u-1',
    ]);
    expect(cutoverExitCode([r])).toBe(ExitCode.failures);
    expect(cutoverSummary([r])).toMatch(/1 user\(s\) not cut over cleanly .*: u-1/);
  });

  it('exit 0 only when every user was cut over with residue 0', () => {
    const clean: UserCutoverResult = { userId: 'a', kind: 'outcome', keep: false, outcome: outcome() };
    expect(cutoverLines(clean).at(-1)).toBe('user a: cut over: 12 source object(s) deleted; residue 0');
    expect(cutoverExitCode([clean])).toBe(ExitCode.ok);
    const unchecked: UserCutoverResult = { userId: 'b', kind: 'outcome', keep: false, outcome: outcome({ residueCount: undefined, residue: undefined }) };
    expect(cutoverExitCode([clean, unchecked])).toBe(ExitCode.failures);
    const failed: UserCutoverResult = { userId: 'c', kind: 'outcome', keep: false, outcome: outcome({ ok: false, sourceDeleted: undefined, reason: 'the final pass failed, so nothing was deleted: x' }) };
    expect(cutoverLines(failed).at(-1)).toBe('user c: not cut over: the final pass failed, so nothing was deleted: x');
    expect(cutoverExitCode([clean, failed])).toBe(ExitCode.failures);
    const refused: UserCutoverResult = { userId: 'd', kind: 'refused', reason: 'already cut over' };
    expect(cutoverExitCode([clean, refused])).toBe(ExitCode.failures);
    expect(cutoverExitCode([{ userId: 'e', kind: 'requested', how: 'signal' }])).toBe(ExitCode.ok);
    expect(cutoverExitCode([])).toBe(ExitCode.failures);
  });

  it('sourceDisposition keep: cut over without deleting, no residue check', () => {
    const kept: UserCutoverResult = { userId: 'k', kind: 'outcome', keep: true, outcome: outcome({ sourceDeleted: 0, residue: undefined, residueCount: undefined }) };
    expect(cutoverLines(kept).at(-1)).toBe('user k: cut over: sources kept (sourceDisposition "keep"), nothing deleted');
    expect(cutoverExitCode([kept])).toBe(ExitCode.ok);
  });
});
