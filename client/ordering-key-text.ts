// A task's ordering key (Task.orderingKey) as people read it: the operator CLI's `tasks get` and
// the dashboard's task page show it so.

/**
 * 'key "account:42"' ('key "tenant:a", 4 at a time' with a keyConcurrency above 1), and while the
 * task waits, what for: its turn (the tasks of its key enqueued before it settle first, or with a
 * keyConcurrency, start first and leave it room), or with dependencies of its own, those and its
 * turn (the task does not say which is left: its dependencies' states do); "none" for a task
 * enqueued without a key (null); "-" from a server older than ordering keys (undefined).
 */
export function orderingKeyText(task: { orderingKey?: string | null; keyConcurrency?: number | null; status: string; dependsOn: readonly string[] }): string {
  if (task.orderingKey === undefined) return "-";
  if (task.orderingKey === null) return "none";
  const width = task.keyConcurrency ?? 1;
  const key = `key ${JSON.stringify(task.orderingKey)}${width > 1 ? `, ${width} at a time` : ""}`;
  if (task.status !== "waiting") return key;
  const turn = width > 1 ? `fewer than ${width} tasks of its key are pending or claimed and those enqueued before it have started` : "the tasks of its key enqueued before it have settled";
  if (task.dependsOn.length === 0) return width > 1 ? `${key}: waits for its turn, until ${turn}` : `${key}: waits for its turn, after the tasks of its key enqueued before it`;
  return `${key}: runs once its dependencies have completed and ${turn}`;
}
