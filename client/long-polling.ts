// Which procedures may hold their answer back (a long-poll): the client sends each on its own HTTP
// request, since a batch's answer waits for its slowest call. tests/tasks-wait.test.ts
// checks it names every procedure whose input takes a `waitMs`.

/** Procedures that may long-poll: sent on their own HTTP request so they never hold up a batch. */
export const LONG_POLLING: ReadonlySet<string> = new Set(["tasks.claim", "tasks.claimMany", "tasks.claimNext", "tasks.wait", "tasks.waitMany", "events.poll", "locks.acquire", "semaphores.acquire", "kv.get", "tasks.log"]);

/**
 * The longest any server waits in a long-poll: its maxWaitMs is at most 300 s (src/config.ts;
 * tests/tasks-wait.test.ts checks the two agree), and it cuts a longer waitMs to it.
 */
export const LONGEST_SERVER_WAIT_MS = 300_000;

/** Long-polls that wait without a `waitMs` (the server's maxWaitMs); the others answer at once without one. */
export const WAITS_UNNAMED: ReadonlySet<string> = new Set(["tasks.wait", "tasks.waitMany"]);

/**
 * Long-polls that wait only when their input names this field, and then the server's maxWaitMs
 * when it names no waitMs (a watch: kv.get with afterVersion); without it they answer at once, and
 * batch as any read.
 */
const WAITS_WITH: ReadonlyMap<string, string> = new Map([["kv.get", "afterVersion"]]);

/** Long-polls that wait only when their input names a waitMs (a log's follow: tasks.log); without one they batch as any read. */
const WAITS_NAMED: ReadonlySet<string> = new Set(["tasks.log"]);

const names = (input: unknown, field: string): boolean => input !== null && typeof input === "object" && (input as Record<string, unknown>)[field] !== undefined;

/** Whether a call to `path` with `input` may hold its answer back: it goes on an HTTP request of its own. */
export function mayLongPoll(path: string, input: unknown): boolean {
  if (!LONG_POLLING.has(path)) return false;
  if (WAITS_NAMED.has(path)) return names(input, "waitMs");
  const field = WAITS_WITH.get(path);
  return field === undefined || names(input, field);
}

/** Whether a call to `path` with `input` waits the server's maxWaitMs when it names no waitMs. */
export function waitsUnnamed(path: string, input: unknown): boolean {
  if (WAITS_UNNAMED.has(path)) return true;
  const field = WAITS_WITH.get(path);
  return field !== undefined && names(input, field);
}
