// Counts per queue and status, the pending tasks not due yet, how long the oldest due task has
// waited, whether it is paused, limited or rate-limited: the read side, through Prisma.
import type { Prisma } from "../db/prisma.js";
import type { TaskCounts } from "./task-schemas.js";
import { TASK_STATUSES, type TaskStatus } from "./task-status.js";

type Counts = Record<TaskStatus, number>;
const zeroCounts = (): Counts => Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Counts;

export async function readTaskCounts(prisma: Prisma, now: number): Promise<TaskCounts> {
  const [groups, oldest, scheduled, pauses, limits, rates] = await Promise.all([
    prisma.task.groupBy({ by: ["queue", "status"], _count: { _all: true } }),
    prisma.task.groupBy({ by: ["queue"], where: { status: "pending", runAt: { lte: new Date(now) } }, _min: { runAt: true } }),
    // Delayed (set by the write that made it pending with its runAt ahead) and not due yet: a task
    // enqueued with no delay after `now` was read has a runAt past it, but was never scheduled.
    prisma.task.groupBy({ by: ["queue"], where: { status: "pending", delayed: true, runAt: { gt: new Date(now) } }, _count: { _all: true }, _min: { runAt: true } }),
    prisma.queuePause.findMany({ where: { resumedAt: null }, select: { queue: true } }),
    prisma.queueLimit.findMany({ where: { removedAt: null }, select: { queue: true, maxLeased: true } }),
    prisma.queueRate.findMany({ where: { removedAt: null }, select: { queue: true, maxClaims: true, perMs: true } }),
  ]);
  const paused = new Set(pauses.map((p) => p.queue));
  const limitOf = new Map(limits.map((l) => [l.queue, l.maxLeased]));
  const rateOf = new Map(rates.map((r) => [r.queue, { maxClaims: r.maxClaims, perMs: r.perMs }]));
  const queues = new Map<string, Counts>();
  const totals = zeroCounts();
  for (const group of groups) {
    const counts = queues.get(group.queue) ?? zeroCounts();
    const status = group.status as TaskStatus;
    counts[status] += group._count._all;
    totals[status] += group._count._all;
    queues.set(group.queue, counts);
  }
  // A paused, limited or rate-limited queue is listed even with no task (yet): the dashboard's
  // Resume button is on its row, and a rate is set before the tasks come.
  for (const queue of [...paused, ...limitOf.keys(), ...rateOf.keys()]) if (!queues.has(queue)) queues.set(queue, zeroCounts());
  const oldestByQueue = new Map(oldest.map((o) => [o.queue, o._min.runAt]));
  const scheduledByQueue = new Map(scheduled.map((s) => [s.queue, { count: s._count._all, nextDueAt: s._min.runAt }]));
  return {
    queues: [...queues.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([queue, counts]) => {
        const runAt = oldestByQueue.get(queue);
        const later = scheduledByQueue.get(queue);
        return {
          queue,
          counts,
          scheduled: later?.count ?? 0,
          nextDueAt: later?.nextDueAt ?? null,
          oldestPendingAgeMs: runAt ? Math.max(0, now - runAt.getTime()) : null,
          paused: paused.has(queue),
          maxLeased: limitOf.get(queue) ?? null,
          rate: rateOf.get(queue) ?? null,
        };
      }),
    queuesOmitted: 0,
    totals,
    scheduled: scheduled.reduce((sum, s) => sum + s._count._all, 0),
    nextDueAt: scheduled.reduce<Date | null>((first, s) => (s._min.runAt !== null && (first === null || s._min.runAt < first) ? s._min.runAt : first), null),
  };
}

/**
 * The queues a caller asked for: `queue` alone, or the `limit` busiest (paused ones first, then
 * most tasks pending, claimed or dead-lettered, then by name), listed by name. An answer's size follows the limit,
 * not the number of queues ever used (54,000 one-off queues made a 6.9 MB answer, every second
 * on the dashboard).
 */
export function pickQueues<T extends TaskCounts>(stats: T, queue: string | undefined, limit: number): T {
  const busy = (counts: Counts) => counts.pending + counts.claimed + counts.dead_letter;
  const chosen =
    queue !== undefined
      ? stats.queues.filter((q) => q.queue === queue)
      : stats.queues.length <= limit
        ? stats.queues
        : [...stats.queues]
            .sort((a, b) => Number(b.paused) - Number(a.paused) || busy(b.counts) - busy(a.counts) || (a.queue < b.queue ? -1 : 1))
            .slice(0, limit)
            .sort((a, b) => a.queue.localeCompare(b.queue));
  return { ...stats, queues: chosen, queuesOmitted: stats.queues.length - chosen.length };
}
