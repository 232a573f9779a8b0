import { temporal } from '@temporalio/proto';
import { historyCost, sumCosts } from '../../bench/actions';

const E = temporal.api.enums.v1.EventType;

describe('historyCost (the bench counting rule for billable actions)', () => {
  it('counts a start, each activity attempt, signals, updates, timers, upserts and non-patch markers; not task events', () => {
    const c = historyCost([
      { eventType: E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED },
      { eventType: E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED },
      { eventType: E.EVENT_TYPE_WORKFLOW_TASK_STARTED },
      { eventType: E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED },
      { eventType: E.EVENT_TYPE_MARKER_RECORDED, markerRecordedEventAttributes: { markerName: 'core_patch' } },
      { eventType: E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED },
      { eventType: E.EVENT_TYPE_ACTIVITY_TASK_STARTED, activityTaskStartedEventAttributes: { attempt: 3 } },
      { eventType: E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED },
      { eventType: E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES },
      { eventType: E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED },
      { eventType: E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED },
      { eventType: E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED },
      { eventType: E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED },
      { eventType: E.EVENT_TYPE_TIMER_STARTED },
      { eventType: E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED },
    ]);
    expect(c.events).toBe(15);
    expect(c.byKind).toEqual({ 'workflow started': 1, activity: 1, 'activity retry': 2, 'search-attribute upsert': 1, signal: 1, update: 1, timer: 1 });
    expect(c.actions).toBe(8);
    expect(sumCosts([c, c]).actions).toBe(16);
  });
});
