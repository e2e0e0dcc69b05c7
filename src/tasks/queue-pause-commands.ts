// Queue pauses, as the database writer thread runs them: a pause or a resume is one write that
// commits with its event (queue.paused, queue.resumed) and the first chunk of the queue's tasks
// held or let go; the rest go a chunk a write (TaskService.settleHolds), so no write holds the
// lock long, whatever the backlog (queue-holds.ts). A limited queue's tasks stay held after a resume.
import type { WriteContext } from "../db/writer.js";
import type { EventStore } from "../events/event-store.js";
import type { PauseRow } from "./queue-pause-store.js";
import { queueHolds, type QueueHoldStores } from "./queue-holds.js";
import type { PauseRequest, QueuePause } from "./queue-pause-schemas.js";

/** A pause row as answered; a queue with none is running. */
export function toQueuePause(queue: string, row: PauseRow | undefined): QueuePause {
  if (row === undefined) return { queue, paused: false, reason: null, pausedBy: null, pausedAt: null, resumedAt: null };
  return {
    queue,
    paused: row.resumedAt === null,
    reason: row.reason === "" ? null : row.reason,
    pausedBy: row.pausedBy,
    pausedAt: new Date(Number(row.pausedAt)),
    resumedAt: row.resumedAt === null ? null : new Date(Number(row.resumedAt)),
  };
}

export function queuePauseCommands(d: QueueHoldStores & { events: EventStore }) {
  const holds = queueHolds(d);

  return {
    /** Pauses a queue; a queue already paused keeps its pause as it is (the answer says whose). */
    "queues.pause": (ctx: WriteContext, request: PauseRequest & { pausedBy: string | null }): QueuePause => {
      const current = d.pauses.get(request.queue);
      if (current !== undefined && current.resumedAt === null) return toQueuePause(request.queue, current);
      const row = d.pauses.pause(request.queue, request.reason ?? "", request.pausedBy, ctx.now);
      d.events.appendSystem(ctx, "queue.paused", { queue: request.queue, reason: request.reason ?? null, pausedBy: row.pausedBy });
      holds.settle(request.queue);
      return toQueuePause(request.queue, row);
    },

    /** Resumes a paused queue; one not paused is answered as it is. */
    "queues.resume": (ctx: WriteContext, request: { queue: string; resumedBy: string | null }): QueuePause => {
      const { queue } = request;
      const current = d.pauses.get(queue);
      if (current === undefined || current.resumedAt !== null) return toQueuePause(queue, current);
      d.pauses.resume(queue, ctx.now);
      d.events.appendSystem(ctx, "queue.resumed", { queue, pausedAt: new Date(Number(current.pausedAt)).toISOString(), resumedBy: request.resumedBy });
      holds.settle(queue);
      return toQueuePause(queue, d.pauses.get(queue));
    },

    /**
     * One chunk of a queue's tasks held (paused or limited) or let go (neither: a resumed pause
     * or a removed limit is forgotten once none is left), as the queue stands in this write.
     * Returns how many rows moved.
     */
    "queues.settleHolds": (_ctx: WriteContext, queue: string): number => holds.settle(queue),
  };
}

export function queuePauseQueries(d: QueueHoldStores) {
  const holds = queueHolds(d);
  return {
    "queues.get": (queue: string): QueuePause => toQueuePause(queue, d.pauses.get(queue)),
    /** Paused queues, and resumed ones whose tasks are still being let go, by name. */
    "queues.paused": (_: undefined): QueuePause[] => d.pauses.all().map((row) => toQueuePause(row.queue, row)),
    /** The queues paused or limited with rows left to hold, or whose rows are being let go: a look before any write. */
    "queues.unsettled": (_: undefined): Array<{ queue: string; claimable: boolean }> => holds.unsettled(),
  };
}
