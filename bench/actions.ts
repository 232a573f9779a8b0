import { temporal } from '@temporalio/proto';

const E = temporal.api.enums.v1.EventType;

/** Events and billable actions of one workflow run's history (the counting rule in BENCHMARKS.md). */
export interface HistoryCost {
  events: number;
  actions: number;
  /** Actions by kind, for the report. */
  byKind: Record<string, number>;
}

/**
 * Counts a run's history events and its Temporal Cloud billable actions as the history shows them
 * (https://docs.temporal.io/cloud/actions): one per workflow run started (a client start, a child start or
 * a continue-as-new: counted in the new run's own history, never again in the parent's), one per activity
 * attempt (a schedule, plus one per retry: the started event's attempt number), one per signal received
 * (whoever sent it), one per update accepted, one per timer started, one per search-attribute upsert or
 * workflow-properties change, one per marker that is not a patch marker (local activities, side effects).
 * Not in a history, so not counted here: heartbeats that reached the server, queries, visibility reads.
 */
export function historyCost(events: { eventType?: number | null; activityTaskStartedEventAttributes?: { attempt?: number | null } | null; markerRecordedEventAttributes?: { markerName?: string | null } | null }[]): HistoryCost {
  const byKind: Record<string, number> = {};
  const add = (k: string, n = 1) => (byKind[k] = (byKind[k] ?? 0) + n);
  for (const e of events) {
    switch (e.eventType) {
      case E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: add('workflow started'); break;
      case E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: add('activity'); break;
      case E.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
        const retries = (e.activityTaskStartedEventAttributes?.attempt ?? 1) - 1;
        if (retries > 0) add('activity retry', retries);
        break;
      }
      case E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: add('signal'); break;
      case E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: add('update'); break;
      case E.EVENT_TYPE_TIMER_STARTED: add('timer'); break;
      case E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
      case E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED: add('search-attribute upsert'); break;
      case E.EVENT_TYPE_MARKER_RECORDED:
        if (e.markerRecordedEventAttributes?.markerName !== 'core_patch') add('marker');
        break;
      default:
    }
  }
  return { events: events.length, actions: Object.values(byKind).reduce((n, x) => n + x, 0), byKind };
}

/** Sums costs (e.g. every run of a migration). */
export function sumCosts(costs: HistoryCost[]): HistoryCost {
  const byKind: Record<string, number> = {};
  for (const c of costs) for (const [k, n] of Object.entries(c.byKind)) byKind[k] = (byKind[k] ?? 0) + n;
  return { events: costs.reduce((n, c) => n + c.events, 0), actions: costs.reduce((n, c) => n + c.actions, 0), byKind };
}
