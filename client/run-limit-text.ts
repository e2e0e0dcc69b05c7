// A task's run time limit (Task.maxRunMs, runDeadlineAt) as people read it: the operator CLI's
// `tasks get` and the dashboard's task page show it so.
import { rateWindowText } from "./rate-window.js";

/**
 * "10m", or "10m (this run until TIME)" while a run is under way, TIME written by `when`; "none"
 * for a task without a limit (null); "-" from a server older than run time limits (undefined).
 */
export function runLimitText(task: { maxRunMs?: number | null; runDeadlineAt?: Date | null }, when: (at: Date) => string): string {
  if (task.maxRunMs === undefined) return "-";
  if (task.maxRunMs === null) return "none";
  const limit = rateWindowText(task.maxRunMs);
  return task.runDeadlineAt ? `${limit} (this run until ${when(task.runDeadlineAt)})` : limit;
}
