import { AsyncLocalStorage } from 'node:async_hooks';

const scope = new AsyncLocalStorage<() => void>();

/**
 * Runs `fn` so that every `progressed()` inside it (in any async continuation it starts) calls
 * `onProgress`: the activity scaffold uses it to heartbeat only while work actually moves.
 */
export function withProgress<T>(onProgress: () => void, fn: () => Promise<T>): Promise<T> {
  return scope.run(onProgress, fn);
}

/** Reports that bytes moved or an S3 request completed; does nothing outside `withProgress`. */
export function progressed(): void {
  scope.getStore()?.();
}
