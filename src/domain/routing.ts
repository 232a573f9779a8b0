/** Which target site each user goes to: `byCountry[country]`, else `default`. */
export interface Routing {
  default: string;
  byCountry: Record<string, string>;
}

export interface UserRow {
  userId: string;
  country: string;
}

/** Pure function of the plan's routing and the user's row (used by the workflow and by plan validation). */
export function routeUser(routing: Routing, row: UserRow): string {
  return routing.byCountry[row.country] ?? routing.default;
}

/** Every site a plan can route to. */
export function routingTargets(routing: Routing): string[] {
  return [...new Set([routing.default, ...Object.values(routing.byCountry)])];
}
