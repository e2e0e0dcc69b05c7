// One info line for each thing an operator acts on, from the events this process committed: a
// lease that expired, a task dead-lettered, an agent gone stale or offline, quarantined, or whose
// cordon lapsed, a named lock or semaphore permit whose lease ran out. (Degraded storage
// and its recovery are logged by src/db/faults.ts, failed authentication by src/auth/credentials.ts,
// slow requests by the server.)
import type { CoordinationEvent } from "../events/event-schemas.js";
import type { Logger } from "../logger.js";
import { payloadFields } from "../events/system-events.js";

const LINES: Record<string, string> = {
  "task.lease_expired": "lease expired: the task goes back to its queue",
  "task.dead_lettered": "task dead-lettered: it will not run again unless requeued",
  "agent.stale": "agent stale: no heartbeat for agentStaleMs",
  "agent.offline": "agent offline: its tasks were released",
  "agent.cordoned": "agent quarantined: it failed quarantineAfterFailures runs in a row; no claim hands it a task until its cordon lapses or agents.uncordon",
  "agent.uncordoned": "agent's cordon lapsed: its claims take tasks again",
  "lock.expired": "lock expired: its holder did not renew its lease; the lock is free",
  "semaphore.expired": "semaphore permit expired: its holder did not renew its lease; the permit is free",
};

/** A flood's line of expired grants (more than FLOOD in one commit), by event type. */
const EXPIRED_FLOOD: Record<string, (count: number) => string> = {
  "lock.expired": (count) => `locks expired: ${count} leases not renewed; the locks are free`,
  "semaphore.expired": (count) => `semaphore permits expired: ${count} leases not renewed; the permits are free`,
};

/** A lease that expired on the task's last attempt: the task does not go back, it is dead-lettered (in the same write). */
const LAST_LEASE_EXPIRED = "lease expired on the task's last attempt: it is dead-lettered";
/** The same two for a run that reached its time limit (a task.lease_expired with timedOut): the run, not its agent, is what went wrong. */
const TIMED_OUT = "run timed out (its task's maxRunMs): the task goes back to its queue";
const LAST_TIMED_OUT = "run timed out (its task's maxRunMs) on the task's last attempt: it is dead-lettered";

/** More expired leases of one reason than this in one commit are logged as one line (an agent gone with thousands of leases). */
const FLOOD = 10;
/** The task ids a flood's line names, at most. */
const FLOOD_SAMPLE = 10;

export function logOperatorEvents(log: Logger, events: readonly CoordinationEvent[]): void {
  // An expiry and the dead letter it makes are appended by one write, so they arrive together.
  let deadLettered: Set<unknown> | undefined;
  // Expiries that go back to their queue, by reason: a flood of one reason is one line.
  let floods: Map<string, CoordinationEvent[]> | undefined;
  // Named locks and permits whose lease ran out, by type, when a commit holds more than FLOOD (an agent gone with many).
  let expiredGrants: Map<string, CoordinationEvent[]> | undefined;
  for (const event of events) {
    let line = LINES[event.type];
    if (line === undefined) continue;
    const payload = payloadFields(event);
    const floodLine = EXPIRED_FLOOD[event.type];
    if (floodLine !== undefined) {
      expiredGrants ??= new Map();
      let expired = expiredGrants.get(event.type);
      if (expired === undefined) expiredGrants.set(event.type, (expired = events.filter((e) => e.type === event.type)));
      if (expired.length > FLOOD) {
        if (expired[0] === event) {
          const names = expired.slice(0, FLOOD_SAMPLE).map((e) => payloadFields(e).name);
          log.info({ event: event.type, count: expired.length, firstSeq: event.seq, lastSeq: expired.at(-1)!.seq, names }, floodLine(expired.length));
        }
        continue;
      }
    }
    // An operator's cordon and uncordon are logged by their calls (agent-router.ts); the server's own, here.
    if (event.type === "agent.cordoned" && payload.automatic !== true) continue;
    if (event.type === "agent.uncordoned" && payload.lapsed !== true) continue;
    if (event.type === "task.lease_expired") {
      deadLettered ??= new Set(events.filter((e) => e.type === "task.dead_lettered").map((e) => payloadFields(e).taskId));
      const timedOut = payload.timedOut === true;
      if (deadLettered.has(payload.taskId)) line = timedOut ? LAST_TIMED_OUT : LAST_LEASE_EXPIRED;
      else {
        if (timedOut) line = TIMED_OUT;
        floods ??= backToQueueByReason(events, deadLettered);
        const flood = floods.get(String(payload.reason));
        if (flood !== undefined) {
          if (flood[0] === event) {
            log.info(
              {
                event: event.type,
                count: flood.length,
                reason: payload.reason,
                firstSeq: flood[0].seq,
                lastSeq: flood.at(-1)!.seq,
                taskIds: flood.slice(0, FLOOD_SAMPLE).map((e) => payloadFields(e).taskId),
              },
              timedOut ? `runs timed out (their tasks' maxRunMs): ${flood.length} tasks go back to their queues` : `leases expired: ${flood.length} tasks go back to their queues`,
            );
          }
          continue;
        }
      }
    }
    // The payload's fields first: a published one's must not pass for the line's own. A lock's or
    // semaphore's `name` goes as `lock` or `semaphore`: `name` is the logger's own field (a JSON
    // line would hold it twice).
    const { name, ...fields } = payload;
    const named = name === undefined ? {} : event.type.startsWith("lock.") ? { lock: name } : event.type.startsWith("semaphore.") ? { semaphore: name } : {};
    log.info({ ...fields, ...named, event: event.type, seq: event.seq }, line);
  }
}

/** The expiries that send their task back to its queue, by reason, for the reasons with more than FLOOD of them. */
function backToQueueByReason(events: readonly CoordinationEvent[], deadLettered: Set<unknown>): Map<string, CoordinationEvent[]> {
  const byReason = new Map<string, CoordinationEvent[]>();
  for (const event of events) {
    if (event.type !== "task.lease_expired") continue;
    const payload = payloadFields(event);
    if (deadLettered.has(payload.taskId)) continue;
    const reason = String(payload.reason);
    const list = byReason.get(reason);
    if (list === undefined) byReason.set(reason, [event]);
    else list.push(event);
  }
  for (const [reason, list] of byReason) if (list.length <= FLOOD) byReason.delete(reason);
  return byReason;
}
