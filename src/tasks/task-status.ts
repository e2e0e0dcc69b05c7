// The task lifecycle's states, apart from the schemas so the database threads can use them
// without loading zod.
// waiting: for its dependencies to complete (tasks.enqueue's dependsOn); never claimed until pending.
export const TASK_STATUSES = ["waiting", "pending", "claimed", "completed", "dead_letter", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
/** The statuses a task ends in: nothing moves it on from them but an operator's requeue. */
export const SETTLED_STATUSES: ReadonlySet<string> = new Set<TaskStatus>(["completed", "dead_letter", "cancelled"]);
