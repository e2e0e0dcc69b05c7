// Queue names come from clients, so a label per queue would let /metrics grow without bound: a
// deployment that names a queue per job or per user adds a series to every per-queue counter
// and histogram with each one (a histogram's buckets times its outcomes), held in memory for
// the life of the process and stored by Prometheus for as long as it keeps data. So a process
// gives its own label to the first `limit` queues it sees, for its whole life (a counter's series
// must not change queue), and counts every other queue together in one overflow series. That
// series has no queue label and carries `queue_overflow="true"`: a queue name is never empty, so
// it cannot be mistaken for a queue, as a reserved name such as "other" could.

/** The labels a queue's samples carry: its own name, or the overflow series'. */
export type QueueLabel = { queue: string } | { queue_overflow: "true" };

export const OVERFLOW: QueueLabel = Object.freeze({ queue_overflow: "true" as const });

export class QueueLabels {
  private readonly named = new Set<string>();

  /** @param limit the most queues given a label of their own (0: every queue in overflow). */
  constructor(private readonly limit: number) {}

  /** The queue's labels: its own while fewer than `limit` queues have one, else the overflow. */
  of(queue: string): QueueLabel {
    if (this.named.has(queue)) return { queue };
    if (this.named.size >= this.limit) return OVERFLOW;
    this.named.add(queue);
    return { queue };
  }
}
