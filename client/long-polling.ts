// Which procedures may hold their answer back (a long-poll): the client sends each on its own HTTP
// request, since a batch's answer waits for its slowest call. tests/tasks-wait.test.ts
// checks it names every procedure whose input takes a `waitMs`.

/** Procedures that may long-poll: sent on their own HTTP request so they never hold up a batch. */
export const LONG_POLLING: ReadonlySet<string> = new Set(["tasks.claim", "tasks.claimMany", "tasks.claimNext", "tasks.wait", "events.poll"]);
