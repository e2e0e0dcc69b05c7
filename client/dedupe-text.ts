// A task's dedupe key (Task.dedupeKey, duplicates, replacedAt) as people read it: the operator
// CLI's `tasks get` and the dashboard's task page show it so.

/**
 * 'key "reindex:42", 3 later enqueues answered with this task, the last of them replaced its
 * payload at TIME' (TIME written by `when`); "none" for a task enqueued without a key (null); "-"
 * from a server older than deduplicated enqueues (undefined).
 */
export function dedupeText(task: { dedupeKey?: string | null; duplicates?: number; replacedAt?: Date | null }, when: (at: Date) => string): string {
  if (task.dedupeKey === undefined) return "-";
  if (task.dedupeKey === null) return "none";
  const duplicates = task.duplicates ?? 0;
  const answered = duplicates === 0 ? "no later enqueue answered with this task yet" : `${duplicates} later enqueue${duplicates === 1 ? "" : "s"} answered with this task`;
  const replaced = task.replacedAt ? `, its payload last replaced at ${when(task.replacedAt)}` : "";
  return `key ${JSON.stringify(task.dedupeKey)}, ${answered}${replaced}`;
}
