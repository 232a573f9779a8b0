import type { ActivityDeps } from '../src/activities';
import { ByteBudget } from '../src/storage/byte-budget';
import { clients } from './helpers';

/** Activity dependencies built from the test stack's sites, as the worker builds them. */
export function testDeps(overrides: Partial<ActivityDeps> = {}): ActivityDeps {
  return {
    clients: clients(),
    budget: new ByteBudget(64 * 1024 * 1024),
    copy: { multipartThreshold: 5 * 1024 * 1024, minPartSize: 5 * 1024 * 1024, partConcurrency: 2 },
    batch: { maxPages: 20, maxMillis: 60_000, listPageSize: 1000 },
    ...overrides,
  };
}
