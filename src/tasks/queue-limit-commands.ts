// Queue concurrency limits, as the database writer thread runs them: setting or removing one is a
// write that commits with its event (queue.limit_set, queue.limit_removed) and the first chunk of
// the queue's tasks held or let go (queue-holds.ts). A claim counts a limited queue's leases in
// its own write (TaskStore.claim), so no two claims, in this process or another on the file, can
// pass the limit together.
import type { WriteContext } from "../db/writer.js";
import type { EventStore } from "../events/event-store.js";
import type { LimitRow, QueueLimitStore } from "./queue-limit-store.js";
import type { QueueLimit, SetLimitRequest } from "./queue-limit-schemas.js";
import { queueHolds, type QueueHoldStores } from "./queue-holds.js";
import { CoordinationError } from "../errors.js";

/** The most queues limited (by a concurrency limit, a rate or both) at once: a claim of any queue looks at each (one index seek). */
export const MAX_LIMITED_QUEUES = 1000;

/**
 * Throws unless `queue` may take a limit or a rate: one limited already (either kind) may; else
 * fewer than MAX_LIMITED_QUEUES queues may be limited (a queue with both counts once).
 */
export function assertRoomForLimit(d: QueueHoldStores, queue: string): void {
  const limited = new Set([...d.limits.active().map((l) => l.queue), ...d.rates.active().map((r) => r.queue)]);
  if (limited.has(queue) || limited.size < MAX_LIMITED_QUEUES) return;
  throw new CoordinationError(
    "INVALID_STATE",
    `at most ${MAX_LIMITED_QUEUES} queues may be limited or rate-limited at once (each is a look for every claim of any queue): remove a limit or a rate first`,
    { queue, limited: MAX_LIMITED_QUEUES },
  );
}

/** A limit row as answered, with the queue's leases; a queue with none (or one being removed) has no limit. */
export function toQueueLimit(queue: string, row: LimitRow | undefined, limits: QueueLimitStore): QueueLimit {
  const limited = row !== undefined && row.removedAt === null;
  return {
    queue,
    maxLeased: limited ? row.maxLeased : null,
    leased: limited ? limits.leased(queue) : null,
    setBy: limited ? row.setBy : null,
    setAt: limited ? new Date(Number(row.setAt)) : null,
    removedAt: row?.removedAt == null ? null : new Date(Number(row.removedAt)),
  };
}

export function queueLimitCommands(d: QueueHoldStores & { events: EventStore }) {
  const holds = queueHolds(d);
  return {
    /** Sets or changes a queue's limit; the same limit set again changes nothing (no event). */
    "queues.setLimit": (ctx: WriteContext, request: SetLimitRequest & { setBy: string | null }): QueueLimit => {
      const current = d.limits.get(request.queue);
      const previous = current !== undefined && current.removedAt === null ? current.maxLeased : null;
      if (previous === request.maxLeased) return toQueueLimit(request.queue, current, d.limits);
      if (previous === null) assertRoomForLimit(d, request.queue);
      const row = d.limits.set(request.queue, request.maxLeased, request.setBy, ctx.now);
      // Leases taken before the limit count toward it.
      if (previous === null) d.limits.markLeases(request.queue);
      d.events.appendSystem(ctx, "queue.limit_set", { queue: request.queue, maxLeased: request.maxLeased, previous, setBy: request.setBy });
      holds.settle(request.queue);
      return toQueueLimit(request.queue, row, d.limits);
    },

    /** Removes a queue's limit; a queue with none is answered as it is. */
    "queues.removeLimit": (ctx: WriteContext, request: { queue: string; removedBy: string | null }): QueueLimit => {
      const { queue } = request;
      const current = d.limits.get(queue);
      if (current === undefined || current.removedAt !== null) return toQueueLimit(queue, current, d.limits);
      d.limits.remove(queue, ctx.now);
      d.events.appendSystem(ctx, "queue.limit_removed", { queue, previous: current.maxLeased, removedBy: request.removedBy });
      holds.settle(queue);
      return toQueueLimit(queue, d.limits.get(queue), d.limits);
    },
  };
}

export function queueLimitQueries(d: { limits: QueueLimitStore }) {
  return {
    "queues.limit": (queue: string): QueueLimit => toQueueLimit(queue, d.limits.get(queue), d.limits),
    /** Limited queues, and those whose removed limit's tasks are still being let go, by name. */
    "queues.limits": (_: undefined): QueueLimit[] => d.limits.all().map((row) => toQueueLimit(row.queue, row, d.limits)),
  };
}
