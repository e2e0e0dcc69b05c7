// Which procedures may hold their answer back (a long-poll): the client sends each on its own HTTP
// request, since a batch's answer waits for its slowest call. tests/tasks-wait.test.ts
// checks it names every procedure whose input takes a `waitMs`.

/** Procedures that may long-poll: sent on their own HTTP request so they never hold up a batch. */
export const LONG_POLLING: ReadonlySet<string> = new Set(["tasks.claim", "tasks.claimMany", "tasks.claimNext", "tasks.wait", "tasks.waitMany", "events.poll", "locks.acquire", "semaphores.acquire"]);

/**
 * The longest any server waits in a long-poll: its maxWaitMs is at most 300 s (src/config.ts;
 * tests/tasks-wait.test.ts checks the two agree), and it cuts a longer waitMs to it.
 */
export const LONGEST_SERVER_WAIT_MS = 300_000;

/** Long-polls that wait without a `waitMs` (the server's maxWaitMs); the others answer at once without one. */
export const WAITS_UNNAMED: ReadonlySet<string> = new Set(["tasks.wait", "tasks.waitMany"]);
