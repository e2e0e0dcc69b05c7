// The tasks a command names, as they are now, for what it shows after the fact: the tasks a wait
// did not see settle, the dependencies an enqueue left a task waiting on. One tasks.waitMany that
// waits for nothing; those its answer left out for size, one tasks.get each.
import type { CoordinationClient, RouterOutputs } from "../client/index.js";

/**
 * Reads `taskIds` as they are now into `into` (by id), each as soon as it is read: a failure part
 * way (the server gone, a task deleted by retention) rejects as its call does, leaving what was
 * read before it. `signal` bounds the calls.
 */
export async function readTasksNow(api: CoordinationClient["api"], taskIds: string[], into: Map<string, RouterOutputs["tasks"]["get"]>, signal?: AbortSignal): Promise<void> {
  if (taskIds.length === 0) return;
  const options = signal === undefined ? undefined : { signal };
  const answer = await api.tasks.waitMany.query({ taskIds, waitMs: 0 }, options);
  for (const task of answer.tasks) into.set(task.id, task);
  for (const taskId of answer.omitted) into.set(taskId, await api.tasks.get.query({ taskId }, options));
}
