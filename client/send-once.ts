// Calls the client's own helpers make inside retries of their own go once through the client's
// wait for a server (server-wait.ts): their failures reach the helper at once.
/**
 * A call's context (`{ context: SEND_ONCE }`) that sends it once, whatever waitForServerMs: for a
 * caller with retries of its own that must hear at once that no server answers (runWorker returns
 * at once, its first registration retried in the background; followLog's onRetry is told).
 */
export const SEND_ONCE = { sendOnce: true } as const;

/**
 * The options of a call the client's own helpers make inside their own retries (untilAnswered, a
 * lease's renewals, a worker's loops): sent once, so each failure reaches the helper (its onRetry,
 * its deadline) at once rather than after waitForServerMs; with `signal` when given.
 */
export const sentOnce = (signal?: AbortSignal): { signal?: AbortSignal; context: typeof SEND_ONCE } => (signal === undefined ? { context: SEND_ONCE } : { signal, context: SEND_ONCE });
