// A task's ordering key (Task.orderingKey) as people read it: the operator CLI's `tasks get` and
// the dashboard's task page show it so.

/**
 * 'key "account:42"', and while the task waits with no dependency of its own, that it waits for its
 * turn (the tasks of its key enqueued before it settle first); "none" for a task enqueued without a
 * key (null); "-" from a server older than ordering keys (undefined).
 */
export function orderingKeyText(task: { orderingKey?: string | null; status: string; dependsOn: readonly string[] }): string {
  if (task.orderingKey === undefined) return "-";
  if (task.orderingKey === null) return "none";
  const turn = task.status === "waiting" && task.dependsOn.length === 0 ? ": waits for its turn, after the tasks of its key enqueued before it" : "";
  return `key ${JSON.stringify(task.orderingKey)}${turn}`;
}
