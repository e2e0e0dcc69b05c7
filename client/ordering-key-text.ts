// A task's ordering key (Task.orderingKey) as people read it: the operator CLI's `tasks get` and
// the dashboard's task page show it so.

/**
 * 'key "account:42"', and while the task waits, what for: its turn (the tasks of its key enqueued
 * before it settle first), or with dependencies of its own, those and its turn (the task does not
 * say which is left: its dependencies' states do); "none" for a task enqueued without a key (null);
 * "-" from a server older than ordering keys (undefined).
 */
export function orderingKeyText(task: { orderingKey?: string | null; status: string; dependsOn: readonly string[] }): string {
  if (task.orderingKey === undefined) return "-";
  if (task.orderingKey === null) return "none";
  const key = `key ${JSON.stringify(task.orderingKey)}`;
  if (task.status !== "waiting") return key;
  if (task.dependsOn.length === 0) return `${key}: waits for its turn, after the tasks of its key enqueued before it`;
  return `${key}: runs once its dependencies have completed and the tasks of its key enqueued before it have settled`;
}
