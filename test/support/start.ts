import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { loadPlan } from '../../src/config/plan';
import { startMigration, type StartResult } from '../../src/operator/migrations';
import { TASK_QUEUE, testSites } from '../helpers';

/** `target` with some properties replaced; its own methods stay bound to it. */
function withOverrides<T extends object>(target: T, overrides: Partial<Record<PropertyKey, unknown>>): T {
  return new Proxy(target, {
    get(t, p) {
      if (p in overrides) return overrides[p];
      const v: unknown = Reflect.get(t, p, t);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/**
 * Starts a plan exactly as `clover start` does (same validation, stored user list, workflow id, memo and
 * search attributes), except that the migration's input carries `historyLimit`: the migration, and the
 * users it starts, continue as new once a run's history passes that many events. A test sees history
 * stay bounded over a few passes instead of thousands. Attach with `clover start --plan FILE --wait`
 * afterwards to wait as an operator does (same plan: same digest).
 */
export async function startWithHistoryLimit(client: Client, planFile: string, historyLimit: number): Promise<StartResult> {
  const sites = testSites();
  const plan = await loadPlan(resolve(planFile), sites);
  const workflows = client.workflow;
  const start: typeof workflows.start = (type, options) => {
    const [input, ...rest] = (options.args ?? []) as unknown[];
    return workflows.start(type, { ...options, args: [{ ...(input as object), historyLimit }, ...rest] } as typeof options);
  };
  return startMigration(withOverrides(client, { workflow: withOverrides(workflows, { start }) }), sites, plan, TASK_QUEUE);
}
