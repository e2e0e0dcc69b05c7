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

export function logOperatorEvents(log: Logger, events: readonly CoordinationEvent[]): void {
  for (const event of events) {
    const line = LINES[event.type];
    if (line !== undefined) log.info({ event: event.type, seq: event.seq, ...(event.payload as object) }, line);
  }
}
