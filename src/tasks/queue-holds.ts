// Where a queue's pending tasks belong: held (out of the general claim indexes) while the queue is
// paused, limited or rate-limited, in the claim indexes otherwise. A pause, a resume, a limit or a
// rate set or removed each moves the first chunk in its own write; the rest go a chunk a write
// (TaskService.settleHolds), so no write holds the lock long, whatever the backlog. A resumed
// pause's row, a removed limit's or a removed rate's, stays until nothing of its queue is left to
// let go (or another still holds the queue), so that a restart goes on with what was not moved.
import type { QueueLimitStore } from "./queue-limit-store.js";
import type { QueuePauseStore } from "./queue-pause-store.js";
import type { QueueRateStore } from "./queue-rate-store.js";

export interface QueueHoldStores {
  pauses: QueuePauseStore;
  limits: QueueLimitStore;
  rates: QueueRateStore;
}

export function queueHolds(d: QueueHoldStores) {
  const standing = (queue: string) => {
    const pause = d.pauses.get(queue);
    const limit = d.limits.get(queue);
    const rate = d.rates.get(queue);
    const paused = pause !== undefined && pause.resumedAt === null;
    const limited = limit !== undefined && limit.removedAt === null;
    const rated = rate !== undefined && rate.removedAt === null;
    return {
      paused,
      setAside: paused || limited || rated,
      endedPause: pause !== undefined && !paused,
      endedLimit: limit !== undefined && !limited,
      endedRate: rate !== undefined && !rated,
    };
  };

  return {
    /**
     * One chunk of `queue`'s pending tasks moved to where they belong now: held while it is paused,
     * limited or rate-limited, let go (best first) otherwise. A resumed pause, a removed limit or
     * rate is forgotten once nothing is left for it to let go. How many rows moved.
     */
    settle(queue: string): number {
      const s = standing(queue);
      const moved = s.setAside ? d.pauses.holdChunk(queue) : d.pauses.releaseChunk(queue);
      if (s.setAside || !d.pauses.hasRowsToMove(queue, false)) {
        if (s.endedPause) d.pauses.forget(queue);
        if (s.endedLimit) d.limits.forget(queue);
        if (s.endedRate) d.rates.forget(queue);
      }
      return moved;
    },

    /**
     * The queues with rows left to move, or an ended pause, limit or rate to forget: a look on the
     * reader before any write. `claimable`: the rows it moves become claimable (let go, or held for
     * a limit or a rate, which claims read by queue): claims parked for the queue look again after each chunk.
     */
    unsettled(): Array<{ queue: string; claimable: boolean }> {
      const queues = new Set([...d.pauses.all().map((row) => row.queue), ...d.limits.all().map((row) => row.queue), ...d.rates.all().map((row) => row.queue)]);
      const found: Array<{ queue: string; claimable: boolean }> = [];
      for (const queue of queues) {
        const s = standing(queue);
        if (s.setAside ? s.endedPause || s.endedLimit || s.endedRate || d.pauses.hasRowsToMove(queue, true) : true) found.push({ queue, claimable: !s.paused });
      }
      return found;
    },
  };
}
