// Runs' logs on the event loop: appends go to the writer thread, reads to the reader, and a follow
// (tasks.log with waitMs) parks until the task's next task.log or its settle (watch-until.ts),
// from any process on the file.
import type { Database } from "../db/thread/database.js";
import type { ConsumingCall } from "../delivery/delivery.js";
import { assertJsonDepth } from "../json-value.js";
import { watchUntil, type WatchDeps } from "../watch-until.js";
import type { AppendedLog, AppendLogRequest, LogPage, ReadLogRequest } from "./task-log-schemas.js";
import { SETTLED_STATUSES } from "./task-status.js";
import { longPollMs } from "../wakeup.js";

export interface TaskLogServiceDeps extends WatchDeps {
  db: Database;
}

export class TaskLogService {
  constructor(private readonly d: TaskLogServiceDeps) {}

  /**
   * Adds `request.entries` to the task's log as its next lines (see tasks.appendLog), under the
   * caller's lease: TASK_NOT_FOUND, LEASE_CONFLICT when the agent does not hold it (its run ended),
   * IDEMPOTENCY_MISMATCH when its idempotencyKey wrote other lines. Its oldest lines past
   * maxTaskLogBytes are deleted. → the lines' numbers.
   */
  append(request: AppendLogRequest): Promise<AppendedLog> {
    request.entries.forEach((entry, i) => {
      if (entry.data !== undefined) assertJsonDepth(`entries[${i}].data`, entry.data, this.d.config.maxJsonDepth);
    });
    return this.d.db.write("tasks.appendLog", {
      taskId: request.taskId,
      agentId: request.agentId,
      leaseToken: request.leaseToken,
      entries: request.entries.map((entry) => ({ message: entry.message, level: entry.level, data: entry.data === undefined ? null : JSON.stringify(entry.data) })),
      idempotencyKey: request.idempotencyKey ?? null,
      maxBytes: this.d.config.maxTaskLogBytes,
    });
  }

  /**
   * A page of the task's log after `request.after` (see tasks.log). With `waitMs` (never past
   * maxWaitMs), a follow: when no line is there yet and the task has not settled, answered once
   * one is or it settles, or as it is when the wait runs out or the client leaves. `parkedAs`: the
   * credential a parked follow counts against (maxParkedPerAgent, with task waits and key
   * watches; undefined: unbounded). LIMIT_EXCEEDED past it; SHUTTING_DOWN when the server stops.
   */
  read(request: ReadLogRequest, parkedAs?: string, call: ConsumingCall = {}): Promise<LogPage> {
    const look = () => this.d.db.read("tasks.log", { taskId: request.taskId, after: request.after, tail: request.tail, limit: request.limit, attempt: request.attempt, level: request.level });
    const waitMs = longPollMs(request.waitMs, this.d.config.maxWaitMs);
    if (waitMs <= 0) return look();
    return watchUntil(this.d, {
      keys: [request.taskId],
      waitMs,
      look,
      // `more` with no line: a filter's window ended short of the log's end; the next read goes on from there.
      enough: (page) => page.lines.length > 0 || page.more || SETTLED_STATUSES.has(page.status),
      parkedAs,
      call,
    });
  }
}
