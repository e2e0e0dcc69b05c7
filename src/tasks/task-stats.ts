// Counts per queue and status, and how long the oldest due task has waited: the read side,
// through Prisma.
import type { Prisma } from "../db/prisma.js";
import type { TaskCounts } from "./task-schemas.js";
import { TASK_STATUSES, type TaskStatus } from "./task-status.js";

type Counts = Record<TaskStatus, number>;
const zeroCounts = (): Counts => Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Counts;

export async function readTaskCounts(prisma: Prisma, now: number): Promise<TaskCounts> {
  const [groups, oldest] = await Promise.all([
    prisma.task.groupBy({ by: ["queue", "status"], _count: { _all: true } }),
    prisma.task.groupBy({ by: ["queue"], where: { status: "pending", runAt: { lte: new Date(now) } }, _min: { runAt: true } }),
  ]);
  const queues = new Map<string, Counts>();
  const totals = zeroCounts();
  for (const group of groups) {
    const counts = queues.get(group.queue) ?? zeroCounts();
    const status = group.status as TaskStatus;
    counts[status] += group._count._all;
    totals[status] += group._count._all;
    queues.set(group.queue, counts);
  }
  const oldestByQueue = new Map(oldest.map((o) => [o.queue, o._min.runAt]));
  return {
    queues: [...queues.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([queue, counts]) => {
        const runAt = oldestByQueue.get(queue);
        return { queue, counts, oldestPendingAgeMs: runAt ? Math.max(0, now - runAt.getTime()) : null };
      }),
    totals,
  };
}
