// One info line for each thing an operator acts on, from the events this process committed: a
// lease that expired, a task dead-lettered, an agent gone stale or offline. (Degraded storage
// and its recovery are logged by src/db/faults.ts, failed authentication by src/auth/credentials.ts,
// slow requests by the server.)
import type { CoordinationEvent } from "../events/event-schemas.js";
import type { Logger } from "../logger.js";

const LINES: Record<string, string> = {
  "task.lease_expired": "lease expired: the task goes back to its queue",
  "task.dead_lettered": "task dead-lettered: it will not run again unless requeued",
  "agent.stale": "agent stale: no heartbeat for agentStaleMs",
  "agent.offline": "agent offline: its tasks were released",
};

/** A lease that expired on the task's last attempt: the task does not go back, it is dead-lettered (in the same write). */
const LAST_LEASE_EXPIRED = "lease expired on the task's last attempt: it is dead-lettered";

export function logOperatorEvents(log: Logger, events: readonly CoordinationEvent[]): void {
  // An expiry and the dead letter it makes are appended by one write, so they arrive together.
  let deadLettered: Set<unknown> | undefined;
  for (const event of events) {
    let line = LINES[event.type];
    if (line === undefined) continue;
    const payload = event.payload as { taskId?: unknown };
    if (event.type === "task.lease_expired") {
      deadLettered ??= new Set(events.filter((e) => e.type === "task.dead_lettered").map((e) => (e.payload as { taskId?: unknown }).taskId));
      if (deadLettered.has(payload.taskId)) line = LAST_LEASE_EXPIRED;
    }
    log.info({ event: event.type, seq: event.seq, ...(event.payload as object) }, line);
  }
}
