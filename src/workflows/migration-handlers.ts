import { getExternalWorkflowHandle, setHandler } from '@temporalio/workflow';
import {
  MAX_FAILED_LISTED, addCounters, pauseUpdate, resumeUpdate, statusQuery, userDisposedSignal, userFinishedSignal, userPauseSignal,
  userWorkflowId, zeroCounters, type MigrationInput, type MigrationState, type MigrationStatus,
} from './definitions';

/**
 * The migration's state between activations and the message handlers that change it: children's
 * reports (signals), the status query, and pause/resume (updates, rejected in the wrong state).
 * Kept out of the workflow body so the body reads as the sliding window it is.
 */
export class MigrationRun {
  readonly state: MigrationState;
  /** Users started and not yet reported (by user id). */
  readonly inFlight: Set<string>;
  /** Children whose start has completed (only those can be signalled). */
  readonly started: Set<string>;
  finalPhase: MigrationStatus['phase'] | undefined;
  finishedAt: string | undefined;

  constructor(private readonly input: MigrationInput) {
    this.state = input.state ?? {
      startedAt: new Date().toISOString(), runs: 0, usersOffset: 0, usersExhausted: false, pending: [], inFlight: [],
      usersDone: 0, usersFailed: 0, usersAlreadyDone: 0, usersCancelled: 0, usersAwaitingDisposal: 0, failed: [],
      counters: zeroCounters(), paused: false, cancelled: false,
    };
    this.state.runs++;
    this.inFlight = new Set(this.state.inFlight);
    this.started = new Set(this.state.inFlight);
  }

  status(): MigrationStatus {
    const { state, input } = this;
    return {
      migrationId: input.settings.migrationId,
      phase: this.finalPhase ?? (state.paused ? 'paused' : 'running'),
      startedAt: state.startedAt, finishedAt: this.finishedAt, usersTotal: input.usersTotal,
      usersDone: state.usersDone, usersFailed: state.usersFailed, usersAlreadyDone: state.usersAlreadyDone,
      usersCancelled: state.usersCancelled, usersAwaitingDisposal: state.usersAwaitingDisposal, pausedAt: state.pausedAt,
      usersInFlight: this.inFlight.size, inFlight: [...this.inFlight].slice(0, 50), failed: state.failed, counters: state.counters, runs: state.runs,
    };
  }

  /** The state to carry across continue-as-new. */
  carried(): MigrationState {
    return { ...this.state, inFlight: [...this.inFlight] };
  }

  /** Running children that have started (and so can be signalled or cancelled). */
  runningChildren(): string[] {
    return [...this.started].filter((id) => this.inFlight.has(id));
  }

  /** Tells every running child to hold or go on. */
  async tellChildren(paused: boolean): Promise<void> {
    await Promise.all(this.runningChildren().map((id) =>
      getExternalWorkflowHandle(userWorkflowId(this.input.settings.migrationId, id)).signal(userPauseSignal, paused).catch(() => undefined)));
  }

  installHandlers(): void {
    const { state } = this;
    const id = this.input.settings.migrationId;
    setHandler(statusQuery, () => this.status());
    setHandler(userFinishedSignal, (o) => {
      if (!this.inFlight.delete(o.userId)) return; // a duplicate report
      this.started.delete(o.userId);
      state.counters = addCounters(state.counters, o.counters);
      if (o.ok) {
        state.usersDone++;
        if (o.awaitingDisposal) state.usersAwaitingDisposal++;
      } else if (o.cancelled) state.usersCancelled++;
      else {
        state.usersFailed++;
        if (state.failed.length < MAX_FAILED_LISTED) state.failed.push({ userId: o.userId, reason: o.reason ?? 'unknown' });
      }
    });
    setHandler(userDisposedSignal, (d) => {
      state.usersAwaitingDisposal = Math.max(0, state.usersAwaitingDisposal - 1);
      state.counters = addCounters(state.counters, { sourceDeleted: d.deleted, sourceKeptChanged: d.keptChanged, sourceResidue: d.residue ?? 0 });
      if (d.error && state.failed.length < MAX_FAILED_LISTED) state.failed.push({ userId: d.userId, reason: `cut-over: ${d.error}` });
    });
    setHandler(pauseUpdate, async () => {
      state.paused = true;
      state.pausedAt = new Date().toISOString();
      await this.tellChildren(true);
      return this.status();
    }, {
      validator: () => {
        if (state.cancelled || this.finalPhase) throw new Error(`migration ${id} is not running`);
        if (state.paused) throw new Error(`migration ${id} is already paused (since ${state.pausedAt})`);
      },
    });
    setHandler(resumeUpdate, async () => {
      state.paused = false;
      state.pausedAt = undefined;
      await this.tellChildren(false);
      return this.status();
    }, {
      validator: () => {
        if (!state.paused) throw new Error(`migration ${id} is not paused`);
      },
    });
  }
}
