import { CancellationScope, condition, isCancellation, setHandler } from '@temporalio/workflow';
import { cutoverSignal, userPauseSignal } from './definitions';

/**
 * A user workflow's operator controls: pause/resume (from the migration) and cutover (from an
 * operator). Kept out of the workflow body, which only asks `pausable(...)` and `cutoverRequested()`.
 */
export class UserControls {
  private cutover = false;
  private running: CancellationScope | undefined;

  /** `paused`: a pause carried over from the run before continue-as-new. */
  constructor(private paused = false) {}

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
