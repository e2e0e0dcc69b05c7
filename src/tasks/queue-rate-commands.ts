// Queue rate limits, as the database writer thread runs them: setting or removing one is a write
// that commits with its event (queue.rate_set, queue.rate_removed) and the first chunk of the
// queue's tasks held or let go (queue-holds.ts). A claim counts the claims in its queue's window
// in its own write (TaskStore.claim), so no two claims, in this process or another on the file,
// can pass the rate together.
import type { WriteContext } from "../db/writer.js";
import type { EventStore } from "../events/event-store.js";
import { queueHolds, type QueueHoldStores } from "./queue-holds.js";
import { assertRoomForLimit } from "./queue-limit-commands.js";
import type { QueueRateStore, RateRow } from "./queue-rate-store.js";
import type { QueueRate, SetRateRequest } from "./queue-rate-schemas.js";

/** A rate row as answered at `now`, with the claims in its window; a queue with none (or one being removed) has no rate. */
export function toQueueRate(queue: string, row: RateRow | undefined, rates: QueueRateStore, now: number): QueueRate {
  const rated = row !== undefined && row.removedAt === null;
  const removedAt = row?.removedAt == null ? null : new Date(Number(row.removedAt));
  if (!rated) return { queue, maxClaims: null, perMs: null, used: null, nextClaimAt: null, setBy: null, setAt: null, removedAt };
  const used = rates.inWindow(queue, row.perMs, now);
  const freesAt = rates.freesAt(row, now, used);
  return { queue, maxClaims: row.maxClaims, perMs: row.perMs, used, nextClaimAt: freesAt > now ? new Date(freesAt) : null, setBy: row.setBy, setAt: new Date(Number(row.setAt)), removedAt };
}

export function queueRateCommands(d: QueueHoldStores & { events: EventStore }) {
  const holds = queueHolds(d);
  return {
    /** Sets or changes a queue's rate; the same rate set again changes nothing (no event). */
    "queues.setRate": (ctx: WriteContext, request: SetRateRequest & { setBy: string | null }): QueueRate => {
      const { queue, maxClaims, perMs } = request;
      const current = d.rates.get(queue);
      const previous = current !== undefined && current.removedAt === null ? { maxClaims: current.maxClaims, perMs: current.perMs } : null;
      if (previous?.maxClaims === maxClaims && previous.perMs === perMs) return toQueueRate(queue, current, d.rates, ctx.now);
      if (previous === null) assertRoomForLimit(d, queue);
      // The claims that left the old window by now are no longer counted (claims delete them only
      // as they come): a longer window would otherwise count claims of an idle queue made long before.
      // Made longer, every one of them, not a chunk: the claims after would not delete the rest,
      // which the new window holds (a queue of 10,000 claims an hour, idle, then counted per day).
      // One write deletes them all then, at most the old window's claims: a rate is set rarely.
      if (current !== undefined) d.rates.expire(queue, current.perMs, ctx.now, perMs > current.perMs);
      d.rates.set(queue, maxClaims, perMs, request.setBy, ctx.now);
      d.events.appendSystem(ctx, "queue.rate_set", { queue, maxClaims, perMs, previous, setBy: request.setBy });
      holds.settle(queue);
      return toQueueRate(queue, d.rates.get(queue), d.rates, ctx.now);
    },

    /** Removes a queue's rate; a queue with none is answered as it is. */
    "queues.removeRate": (ctx: WriteContext, request: { queue: string; removedBy: string | null }): QueueRate => {
      const { queue } = request;
      const current = d.rates.get(queue);
      if (current === undefined || current.removedAt !== null) return toQueueRate(queue, current, d.rates, ctx.now);
      d.rates.remove(queue, ctx.now);
      d.events.appendSystem(ctx, "queue.rate_removed", { queue, previous: { maxClaims: current.maxClaims, perMs: current.perMs }, removedBy: request.removedBy });
      holds.settle(queue);
      return toQueueRate(queue, d.rates.get(queue), d.rates, ctx.now);
    },
  };
}

export function queueRateQueries(d: { rates: QueueRateStore }) {
  return {
    "queues.rate": (queue: string): QueueRate => toQueueRate(queue, d.rates.get(queue), d.rates, Date.now()),
    /** Rate-limited queues, and those whose removed rate's tasks are still being let go, by name. */
    "queues.rates": (_: undefined): QueueRate[] => {
      const now = Date.now();
      return d.rates.all().map((row) => toQueueRate(row.queue, row, d.rates, now));
    },
  };
}
