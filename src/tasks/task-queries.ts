// The task queue's reads, as the database reader thread runs them (its own connection: WAL readers
// never wait for the writer, nor the event loop for either). Tasks and pages through the store's
// prepared statements; the counts per queue and status through Prisma (its groupBy), loaded on
// first use so a thread that never counts never pays for it.
import type { Prisma } from "../db/prisma.js";
import { notFound } from "../errors.js";
import type { ListRequest, Task, TaskCounts, WaitManyResult } from "./task-schemas.js";
import { SETTLED_STATUSES } from "./task-status.js";
import { readTaskCounts } from "./task-stats.js";
import { toTask, type TaskStore } from "./task-store.js";
import { exactBounds } from "./lock-wait-grace.js";
import { claimKeyOf } from "./claim-keys.js";

export function taskQueries(d: { prisma: () => Promise<Prisma>; tasks: TaskStore; maxResponseBytes: number }) {
  return {
    /** Whether a lease had expired at `asOf`: the sweeper looks before it takes the write lock. */
    "tasks.anyLeaseExpired": (asOf: number): boolean => d.tasks.expiredClaims(exactBounds(asOf), 1).length > 0,

    /**
     * Whether `agentId` holds a lease its claim of `idempotencyKey` took (another call with that
     * key, on any server): a parked repeat of that claim looks here, on the reader, when one of
     * the agent's claims leased something, before it claims again on the writer.
     */
    "tasks.holdsUnderKey": (args: { agentId: string; idempotencyKey: string }): boolean => d.tasks.heldUnder(args.agentId, claimKeyOf.claim(args.idempotencyKey)).length > 0,

    /** Whether writes left dependents of a completed or cancelled task to settle (TaskService.settleDependents looks before it writes). */
    "tasks.dependentsLeft": (_: undefined): boolean => d.tasks.anyDeferredDependents(),

    "tasks.get": (taskId: string): Task => {
      const row = d.tasks.findById(taskId);
      if (!row) throw notFound("TASK_NOT_FOUND", taskId);
      return toTask(row);
    },

    /**
     * How many of `taskIds` have settled (tasks.waitMany's looks: statuses only); TASK_NOT_FOUND
     * for the first that does not exist.
     */
    "tasks.countSettled": (taskIds: readonly string[]): number => settledAmong(d.tasks, taskIds).settled.length,

    /**
     * A waitMany's answer, from one snapshot: the tasks in the order asked, those past the byte
     * budget left out (settled ones, whose results the caller waited for, taken first), and
     * whether `until` holds.
     */
    "tasks.getMany": ({ taskIds, until }: { taskIds: readonly string[]; until: "all" | "any" }): WaitManyResult => {
      const { settled, unsettled } = settledAmong(d.tasks, taskIds);
      const taken = new Map(d.tasks.rowsOf([...settled, ...unsettled], d.maxResponseBytes).map((row) => [row.id, row]));
      return {
        done: until === "any" ? settled.length > 0 : unsettled.length === 0,
        tasks: taskIds.flatMap((id) => {
          const row = taken.get(id);
          return row === undefined ? [] : [toTask(row)];
        }),
        omitted: taskIds.filter((id) => !taken.has(id)),
      };
    },

    /** One page, in seq order; a page stops early (with a nextCursor) rather than pass maxResponseBytes. */
    "tasks.list": (request: ListRequest): { items: Task[]; nextCursor: string | null } => {
      const page = d.tasks.listPage(
        {
          queue: request.queue,
          status: request.status,
          agentId: request.agentId,
          capability: request.capability,
          after: request.cursor === undefined ? undefined : Number(request.cursor),
          order: request.order,
        },
        request.limit + 1,
        d.maxResponseBytes,
      );
      const items = page.rows.slice(0, request.limit);
      const more = page.truncated || page.rows.length > request.limit;
      return { items: items.map(toTask), nextCursor: more && items.length > 0 ? String(items[items.length - 1]!.seq) : null };
    },

    "tasks.stats": async (_: undefined): Promise<TaskCounts> => readTaskCounts(await d.prisma(), Date.now()),
  };
}

/** `taskIds` split by whether each has settled, in their order; TASK_NOT_FOUND for the first that does not exist. */
function settledAmong(tasks: TaskStore, taskIds: readonly string[]): { settled: string[]; unsettled: string[] } {
  const statuses = tasks.statusesOf(taskIds);
  const settled: string[] = [];
  const unsettled: string[] = [];
  for (const id of taskIds) {
    const status = statuses.get(id);
    if (status === undefined) throw notFound("TASK_NOT_FOUND", id);
    (SETTLED_STATUSES.has(status) ? settled : unsettled).push(id);
  }
  return { settled, unsettled };
}
