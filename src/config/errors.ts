/**
 * Errors an operator can act on. Every operator command ends in one handler that prints
 * `error.message` as a single line and exits with `error.exitCode` (see README "Exit codes").
 */
export const ExitCode = {
  ok: 0,
  failures: 1,
  badInput: 2,
  unreachable: 3,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class CloverError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
  ) {
    super(message);
    this.name = 'CloverError';
  }
}

/** Bad plan, sites file, config or CLI arguments: exit code 2. */
export class InputError extends CloverError {
  constructor(message: string) {
    super(message, ExitCode.badInput);
    this.name = 'InputError';
  }
}

/** Temporal or a site cannot be reached: exit code 3. */
export class UnreachableError extends CloverError {
  constructor(message: string) {
    super(message, ExitCode.unreachable);
    this.name = 'UnreachableError';
  }
}

/** Formats a zod issue path as `sites.eu-ie.endpoint` or `users[3].userId`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(top level)';
}

interface IssueLike {
  path: ReadonlyArray<PropertyKey>;
  message: string;
  code?: string;
  issues?: ReadonlyArray<{ message: string }>;
}

/**
 * The first problem zod found (a failed parse always has one), as the one line an operator reads. A bad
 * record key (zod's `invalid_key`, e.g. an unknown country in `routing.byCountry`) is reported with the
 * key's own problem, not zod's generic "Invalid key in record".
 */
export function firstIssue(error: { issues: ReadonlyArray<IssueLike> }): { path: ReadonlyArray<PropertyKey>; message: string } {
  const issue = error.issues[0];
  if (!issue) return { path: [], message: 'invalid' };
  const inner = issue.code === 'invalid_key' ? issue.issues?.[0] : undefined;
  return inner ? { path: issue.path, message: inner.message } : issue;
}
