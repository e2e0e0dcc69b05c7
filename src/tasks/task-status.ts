// The task lifecycle's states, apart from the schemas so the database threads can use them
// without loading zod.
export const TASK_STATUSES = ["pending", "claimed", "completed", "dead_letter", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
