// Queue pauses, as the database writer thread runs them: a pause or a resume is one write that
// commits with its event (queue.paused, queue.resumed) and the first chunk of the queue's tasks
// held or let go; the rest go a chunk a write (TaskService.settleHolds), so no write holds the
// lock long, whatever the backlog (queue-pause-store.ts).
import type { WriteContext } from "../db/writer.js";
import type { EventStore } from "../events/event-store.js";
import type { PauseRow, QueuePauseStore } from "./queue-pause-store.js";
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

export function queuePauseCommands(d: { pauses: QueuePauseStore; events: EventStore }) {
  /**
   * Lets a chunk of a resumed queue's held tasks go; once none is left, the pause is forgotten.
   * How many went, and the pause as it stands (undefined: forgotten).
   */
  const letGo = (queue: string): { moved: number; row: PauseRow | undefined } => {
    const moved = d.pauses.releaseChunk(queue);
    const row = d.pauses.get(queue)!;
    if (d.pauses.unsettled(row)) return { moved, row };
    d.pauses.forget(queue);
    return { moved, row: undefined };
  };

  return {
    /** Pauses a queue; a queue already paused keeps its pause as it is (the answer says whose). */
    "queues.pause": (ctx: WriteContext, request: PauseRequest & { pausedBy: string | null }): QueuePause => {
      const current = d.pauses.get(request.queue);
      if (current !== undefined && current.resumedAt === null) return toQueuePause(request.queue, current);
      const row = d.pauses.pause(request.queue, request.reason ?? "", request.pausedBy, ctx.now);
      d.events.appendSystem(ctx, "queue.paused", { queue: request.queue, reason: request.reason ?? null, pausedBy: row.pausedBy });
      d.pauses.holdChunk(request.queue);
      return toQueuePause(request.queue, row);
    },

    /** Resumes a paused queue; one not paused is answered as it is. */
    "queues.resume": (ctx: WriteContext, request: { queue: string; resumedBy: string | null }): QueuePause => {
      const { queue } = request;
      const current = d.pauses.get(queue);
      if (current === undefined || current.resumedAt !== null) return toQueuePause(queue, current);
      d.pauses.resume(queue, ctx.now);
      d.events.appendSystem(ctx, "queue.resumed", { queue, pausedAt: new Date(Number(current.pausedAt)).toISOString(), resumedBy: request.resumedBy });
      return toQueuePause(queue, letGo(queue).row);
    },

    /**
     * One chunk of a pause's tasks held (paused) or let go (resumed, the pause forgotten once none
     * is left), as the pause stands in this write. Returns how many rows moved.
     */
    "queues.settleHolds": (_ctx: WriteContext, queue: string): number => {
      const current = d.pauses.get(queue);
      if (current === undefined) return 0;
      if (current.resumedAt === null) return d.pauses.holdChunk(queue);
      return letGo(queue).moved;
    },
  };
}

export function queuePauseQueries(d: { pauses: QueuePauseStore }) {
  return {
    "queues.get": (queue: string): QueuePause => toQueuePause(queue, d.pauses.get(queue)),
    /** Paused queues, and resumed ones whose tasks are still being let go, by name. */
    "queues.paused": (_: undefined): QueuePause[] => d.pauses.all().map((row) => toQueuePause(row.queue, row)),
    /** The queues whose pause has rows left to hold, or that are being resumed: a look before any write. */
    "queues.unsettled": (_: undefined): Array<{ queue: string; resuming: boolean }> =>
      d.pauses
        .all()
        .filter((row) => row.resumedAt !== null || d.pauses.unsettled(row))
        .map((row) => ({ queue: row.queue, resuming: row.resumedAt !== null })),
  };
}
