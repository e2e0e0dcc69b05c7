// Which procedures may hold their answer back (a long-poll): the client sends each on its own HTTP
// request, since a batch's answer waits for its slowest call. tests/tasks-wait.test.ts
// checks it names every procedure whose input takes a `waitMs`.

/** Procedures that may long-poll: sent on their own HTTP request so they never hold up a batch. */
export const LONG_POLLING: ReadonlySet<string> = new Set(["tasks.claim", "tasks.claimMany", "tasks.claimNext", "tasks.wait", "events.poll"]);

/**
 * How long a long-poll that names no `waitMs` may wait: tasks.wait then waits the server's
 * maxWaitMs, which a server takes up to 300 s (src/config.ts; tests/tasks-wait.test.ts checks the
 * two agree). The other long-polls answer at once without a waitMs.
 */
export const UNNAMED_WAIT_MS: ReadonlyMap<string, number> = new Map([["tasks.wait", 300_000]]);
