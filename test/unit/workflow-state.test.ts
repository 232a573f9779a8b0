import { MAX_REASON_CHARS, cutReason, rootMessage } from '../../src/workflows/definitions';

/** What workflow state keeps of a failure stays bounded, and names the innermost cause. */
describe('failure reasons in workflow state', () => {
  it('a short reason is kept whole; a long one is cut to the bound and says so', () => {
    expect(cutReason('GetObject failed at site sg')).toBe('GetObject failed at site sg');
    const long = `x${'y'.repeat(5 * MAX_REASON_CHARS)}`;
    const cut = cutReason(long);
    expect(cut.length).toBeLessThan(MAX_REASON_CHARS + 80);
    expect(cut.startsWith(long.slice(0, MAX_REASON_CHARS))).toBe(true);
    expect(cut).toMatch(/cut; the worker's log has the whole message\)$/);
  });

  it('the innermost cause is the one named (an activity failure wraps the activity\'s error)', () => {
    const inner = new Error('PutObject failed at site eu-ie, bucket b, key "users/u/a"');
    const outer = Object.assign(new Error('Activity task failed'), { cause: Object.assign(new Error('ApplicationFailure'), { cause: inner }) });
    expect(rootMessage(outer)).toBe(inner.message);
    expect(rootMessage('plain')).toBe('plain');
  });
});
