// The task lifecycle's states, apart from the schemas so the database threads can use them
// without loading zod.
// waiting: for its dependencies to complete (tasks.enqueue's dependsOn), or for its turn behind the
// tasks of its ordering key enqueued before it, or for room among those that run (tasks.enqueue's
// orderingKey, keyConcurrency); never claimed until pending.
export const TASK_STATUSES = ["waiting", "pending", "claimed", "completed", "dead_letter", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
/** The statuses a task ends in: nothing moves it on from them but an operator's requeue. */
export const SETTLED_STATUSES: ReadonlySet<string> = new Set<TaskStatus>(["completed", "dead_letter", "cancelled"]);

/** Whether a task in `status` waits to run: pending, or waiting (for its dependencies, or its turn behind its ordering key). */
export const waitsToRun = (status: string): boolean => status === "pending" || status === "waiting";

/** Whether a waitMany's `until` holds with `settled` of its `asked` tasks settled: all of them, or any one. */
export const untilHolds = (until: "all" | "any", settled: number, asked: number): boolean => (until === "any" ? settled > 0 : settled === asked);
