// The server's own events (one for every task and agent transition, queue pauses, limits and rates, locks, semaphores, webhooks, shared state) as a discriminated union,
// and a guard that narrows an event received from events.onEvent, poll or list to them. The
// payload shapes are the server's (src/events/system-events.ts types its writes by them).
import type { SystemEventPayloads, SystemEventType } from "../src/events/system-events.js";

export type { SystemEventPayloads, SystemEventType };

/** One of the server's own events (source "coordination"), its payload typed by its type. */
export type SystemEvent<K extends SystemEventType = SystemEventType> = {
  [T in K]: { seq: number; type: T; source: "coordination"; payload: SystemEventPayloads[T]; target: null; createdAt: Date };
}[K];

/** Every type of the server's own events. */
export const SYSTEM_EVENT_TYPES = [
  "task.enqueued",
  "task.ready",
  "task.promoted",
  "task.updated",
  "task.deduplicated",
  "task.claimed",
  "task.progress",
  "task.checkpointed",
  "task.log",
  "task.completed",
  "task.failed",
  "task.retried",
  "task.dead_lettered",
  "task.lease_expired",
  "task.released",
  "task.cancelled",
  "task.requeued",
  "agent.registered",
  "agent.updated",
  "agent.stale",
  "agent.offline",
  "agent.cordoned",
  "agent.uncordoned",
  "agent.deregistered",
  "queue.paused",
  "queue.resumed",
  "queue.limit_set",
  "queue.limit_removed",
  "queue.rate_set",
  "queue.rate_removed",
  "schedule.set",
  "schedule.removed",
  "schedule.paused",
  "schedule.resumed",
  "schedule.ended",
  "schedule.triggered",
  "lock.acquired",
  "lock.released",
  "lock.expired",
  "semaphore.acquired",
  "semaphore.released",
  "semaphore.expired",
  "webhook.created",
  "webhook.updated",
  "webhook.enabled",
  "webhook.disabled",
  "webhook.recovered",
  "webhook.secret_rotated",
  "webhook.removed",
  "kv.set",
  "kv.deleted",
  "kv.expired",
] as const satisfies readonly SystemEventType[];
// A type the server adds and this list misses is a compile error here.
type Unlisted = Exclude<SystemEventType, (typeof SYSTEM_EVENT_TYPES)[number]>;
const everyTypeListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyTypeListed;
const KNOWN: ReadonlySet<string> = new Set(SYSTEM_EVENT_TYPES);

/**
 * Whether `event` is one of the server's own events, of one of `types` when any are given: then
 * its payload is typed, e.g. `if (isSystemEvent(data, "task.claimed")) data.payload.agentId`.
 * With credentials on, only an admin may publish task.*, agent.*, queue.*, schedule.*, lock.*, semaphore.*, webhook.* and kv.* events under the server's
 * name; with none, anyone can, as anyone can do anything.
 */
export function isSystemEvent(event: { type: string; source: string }): event is SystemEvent;
export function isSystemEvent<K extends SystemEventType>(event: { type: string; source: string }, type: K, ...more: K[]): event is SystemEvent<K>;
export function isSystemEvent(event: { type: string; source: string }, ...types: SystemEventType[]): boolean {
  if (event.source !== "coordination") return false;
  return types.length === 0 ? KNOWN.has(event.type) : (types as string[]).includes(event.type);
}
