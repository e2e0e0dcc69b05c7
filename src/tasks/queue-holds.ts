// Where a queue's pending tasks belong: held (out of the general claim indexes) while the queue is
// paused or limited, in the claim indexes otherwise. A pause, a resume, a limit set or removed
// each moves the first chunk in its own write; the rest go a chunk a write (TaskService.settleHolds),
// so no write holds the lock long, whatever the backlog. A resumed pause's row, or a removed
// limit's, stays until nothing of its queue is left to let go (or the other holds the queue), so
// that a restart goes on with what was not moved.
import type { QueueLimitStore } from "./queue-limit-store.js";
import type { QueuePauseStore } from "./queue-pause-store.js";

export interface QueueHoldStores {
  pauses: QueuePauseStore;
  limits: QueueLimitStore;
}

export function queueHolds(d: QueueHoldStores) {
  const standing = (queue: string) => {
    const pause = d.pauses.get(queue);
    const limit = d.limits.get(queue);
    const paused = pause !== undefined && pause.resumedAt === null;
    const limited = limit !== undefined && limit.removedAt === null;
    return { paused, setAside: paused || limited, endedPause: pause !== undefined && !paused, endedLimit: limit !== undefined && !limited };
  };

  return {
    /**
     * One chunk of `queue`'s pending tasks moved to where they belong now: held while it is paused
     * or limited, let go (best first) otherwise. A resumed pause or a removed limit is forgotten
     * once nothing is left for it to let go. How many rows moved.
     */
    settle(queue: string): number {
      const s = standing(queue);
      const moved = s.setAside ? d.pauses.holdChunk(queue) : d.pauses.releaseChunk(queue);
      if (s.setAside || !d.pauses.hasRowsToMove(queue, false)) {
        if (s.endedPause) d.pauses.forget(queue);
        if (s.endedLimit) d.limits.forget(queue);
      }
      return moved;
    },

    /**
     * The queues with rows left to move, or an ended pause or limit to forget: a look on the reader
     * before any write. `claimable`: the rows it moves become claimable (let go, or held for a
     * limit, which claims read by queue): claims parked for the queue look again after each chunk.
     */
    unsettled(): Array<{ queue: string; claimable: boolean }> {
      const queues = new Set([...d.pauses.all().map((row) => row.queue), ...d.limits.all().map((row) => row.queue)]);
      const found: Array<{ queue: string; claimable: boolean }> = [];
      for (const queue of queues) {
        const s = standing(queue);
        if (s.setAside ? s.endedPause || s.endedLimit || d.pauses.hasRowsToMove(queue, true) : true) found.push({ queue, claimable: !s.paused });
      }
      return found;
    },
  };
}
