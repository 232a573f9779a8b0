import { ApplicationFailure, CancellationScope, condition, isCancellation, setHandler } from '@temporalio/workflow';
import { cutoverSignal, syncUpdate, userPauseSignal, type PassReport } from './definitions';

/**
 * Whether a `clover sync` (the sync update) may ask this run for a pass: `first-pass` (nothing committed
 * yet), `open` (in-sync or grace: passes on request), `cut-over` (the final pass or the deletion has
 * begun, or is over), `done` (finished without a cut-over ahead), `one-off` (a sync-once or cutover-once run).
 */
export type SyncState = 'first-pass' | 'open' | 'cut-over' | 'done' | 'one-off';

/**
 * A user workflow's operator controls: pause/resume (from the migration), cutover and sync (from an
 * operator). Kept out of the workflow body, which only asks `pausable(...)`, `cutoverRequested()`,
 * `syncWanted()` and numbers its delta passes with `beginPass` / `endPass`.
 *
 * A sync update gets the report of the next pass that starts after it arrived (a pass already running
 * when it arrives does not count: it may have listed the sources before the writes the operator wants
 * copied). Updates arriving together share one pass.
 */
export class UserControls {
  private cutover = false;
  private running: CancellationScope | undefined;
  private syncRequested = false;
  private closed = false;
  /** Delta passes started in this run (the number of the one running, while one runs). */
  private passesStarted = 0;
  /** Update handlers waiting, by the number of the pass they wait for, and that pass's report once done. */
  private readonly waiters = new Map<number, number>();
  private readonly results = new Map<number, PassReport>();
  syncState: SyncState = 'first-pass';

  /** `paused`: a pause carried over from the run before continue-as-new. */
  constructor(private readonly userId: string, private paused = false) {}

  isPaused(): boolean {
    return this.paused;
  }

  installHandlers(): void {
    setHandler(userPauseSignal, (p) => {
      this.paused = p;
      if (p) this.running?.cancel();
    });
    setHandler(cutoverSignal, () => {
      this.cutover = true;
    });
    setHandler(syncUpdate, async () => {
      const want = this.passesStarted + 1;
      this.syncRequested = true;
      this.waiters.set(want, (this.waiters.get(want) ?? 0) + 1);
      try {
        await condition(() => this.results.has(want) || this.closed);
        const report = this.results.get(want);
        if (!report) {
          throw ApplicationFailure.create({ type: 'SyncNotRun', nonRetryable: true, message: `user ${this.userId}: its workflow ended before the requested pass could run` });
        }
        return report;
      } finally {
        const left = (this.waiters.get(want) ?? 1) - 1;
        if (left > 0) this.waiters.set(want, left);
        else {
          this.waiters.delete(want);
          this.results.delete(want);
        }
      }
    }, {
      validator: () => {
        const why = this.syncRefusal();
        if (why) throw new Error(why);
      },
    });
  }

  /** Why a sync update is refused now, or undefined when it is accepted. */
  syncRefusal(): string | undefined {
    const u = `user ${this.userId}`;
    switch (this.syncState) {
      case 'first-pass': return `${u} has not committed its first pass yet; a sync can follow once it has (see \`clover status\`)`;
      case 'cut-over': return `${u} is cut over (or its cut-over has begun): no pass can run any more`;
      case 'done': return `${u} has finished its migration (sourceDisposition keep, cutover auto); run \`clover sync\` again: a finished user gets a pass of its own`;
      case 'one-off': return `this run of ${u} is a one-off sync or cut-over; run \`clover sync\` again once it has finished`;
      default:
        if (this.closed) return `${u}: this run has ended; run \`clover sync\` again`;
        return this.cutover ? `${u} is being cut over: no pass can be requested any more` : undefined;
    }
  }

  /** True when a sync update waits for a pass that has not started yet. */
  syncWanted(): boolean {
    return this.syncRequested;
  }

  cutoverWanted(): boolean {
    return this.cutover;
  }

  /** Numbers a delta pass that is starting; every sync update that arrived before it is served by it. */
  beginPass(): number {
    this.syncRequested = false;
    return ++this.passesStarted;
  }

  /** Hands a finished pass's report to the updates waiting for it. */
  endPass(n: number, report: PassReport): void {
    if (this.waiters.has(n)) this.results.set(n, report);
  }

  /** Passes started in this run. */
  passes(): number {
    return this.passesStarted;
  }

  /** The run ends: updates still waiting for a pass fail (with a message) instead of hanging. */
  close(): void {
    this.closed = true;
  }

  /** Runs one activity call; a pause cancels it (it stops at a checkpoint) and it runs again on resume. */
  async pausable<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      await condition(() => !this.paused);
      const scope = new CancellationScope();
      this.running = scope;
      try {
        return await scope.run(fn);
      } catch (err) {
        if (isCancellation(err) && this.paused && !CancellationScope.current().consideredCancelled) continue;
        throw err;
      } finally {
        this.running = undefined;
      }
    }
  }

  /** Waits for a cutover request, at most `timeout` (a durable timer) when given; true when one came. */
  async cutoverRequested(timeout?: string): Promise<boolean> {
    return timeout === undefined ? (await condition(() => this.cutover), true) : condition(() => this.cutover, timeout as `${number}d`);
  }

  /** Forgets the cutover request seen so far: the next step needs one of its own. */
  consumeCutover(): void {
    this.cutover = false;
  }
}
