// The task queue's reads, as the database reader thread runs them (its own connection: WAL readers
// never wait for the writer, nor the event loop for either). Tasks and pages through the store's
// prepared statements; the counts per queue and status through Prisma (its groupBy), loaded on
// first use so a thread that never counts never pays for it.
import type { Prisma } from "../db/prisma.js";
import { utf8Bytes } from "../db/answer-budget.js";
import { CoordinationError, notFound } from "../errors.js";
import type { ListRequest, Task, TaskCounts, WaitManyRequest, WaitManyResult } from "./task-schemas.js";
import { SETTLED_STATUSES, untilHolds } from "./task-status.js";
import { readTaskCounts } from "./task-stats.js";
import { toTask, type ClaimFilter, type ClaimOutlook, type TaskStore } from "./task-store.js";
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

    /** Why a claim that found nothing may have (TaskStore.claimOutlook): what an MCP claim_task tells the model beside its null. */
    "tasks.claimOutlook": (args: { filter: ClaimFilter; now: number }): ClaimOutlook => d.tasks.claimOutlook(args.filter, args.now),

    /** Whether a task that waits to run had expired by `asOf`: the expiry job looks before it takes the write lock. */
    "tasks.anyExpired": (asOf: number): boolean => d.tasks.expiredSeqs(asOf, 1).length > 0,

    /** Whether writes left dependents of a completed or cancelled task to settle (TaskService.settleDependents looks before it writes). */
    "tasks.dependentsLeft": (_: undefined): boolean => d.tasks.anyDeferredDependents(),

    "tasks.get": (taskId: string): Task => {
      const row = d.tasks.findById(taskId);
      if (!row) throw notFound("TASK_NOT_FOUND", taskId);
      return toTask(row);
    },

    /**
     * How many of `taskIds` have settled (tasks.waitMany's looks: statuses only); TASK_NOT_FOUND
     * naming those that do not exist.
     */
    "tasks.countSettled": (taskIds: readonly string[]): number => settledAmong(d.tasks, taskIds).settled.length,

    /**
     * A waitMany's answer, from one snapshot: the tasks in the order asked and whether `until`
     * holds; packed within maxResponseBytes, settled tasks (whose results the caller waited for)
     * first, each that fits taken, the first always (a task is at most a request body's size);
     * those that do not fit are named in `omitted`; `settledOnly`, the settled ones alone (a round
     * that takes results as they come is not sent the others' payloads again). Sizes come from the
     * rows' headers, so a task left out is never loaded.
     */
    "tasks.getMany": ({ taskIds, until, settledOnly }: Pick<WaitManyRequest, "taskIds" | "until" | "settledOnly">): WaitManyResult => {
      const { settled, unsettled, statuses } = settledAmong(d.tasks, taskIds);
      const packed = new Set<string>();
      const wanted = settledOnly ? settled : [...settled, ...unsettled];
      // Each id has its room in `omitted` ("id",) until its task is packed (its size counts the id).
      const omittedBytes = (id: string) => utf8Bytes(id) + 3;
      let used = wanted.reduce((sum, id) => sum + omittedBytes(id), 0);
      for (const id of wanted) {
        const bytes = statuses.get(id)!.bytes - omittedBytes(id);
        if (packed.size > 0 && used + bytes > d.maxResponseBytes) continue;
        packed.add(id);
        used += bytes;
      }
      return {
        done: untilHolds(until, settled.length, taskIds.length),
        tasks: taskIds.flatMap((id) => {
          const row = packed.has(id) ? d.tasks.findById(id) : undefined;
          return row === undefined ? [] : [toTask(row)];
        }),
        omitted: taskIds.filter((id) => !packed.has(id) && (!settledOnly || SETTLED_STATUSES.has(statuses.get(id)!.status))),
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
          dedupeKey: request.dedupeKey,
          orderingKey: request.orderingKey,
          traceId: request.traceId,
          enqueuedBy: request.enqueuedBy,
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

/**
 * `taskIds` split by whether each has settled, in their order, with what statusesOf read of each;
 * TASK_NOT_FOUND naming every id that names no task (`details.missing`; `details.id`, the first,
 * as tasks.get's 404 has it). At most 100 ids, so the message can name them all.
 */
function settledAmong(tasks: TaskStore, taskIds: readonly string[]): { settled: string[]; unsettled: string[]; statuses: ReturnType<TaskStore["statusesOf"]> } {
  const statuses = tasks.statusesOf(taskIds);
  const settled: string[] = [];
  const unsettled: string[] = [];
  const missing: string[] = [];
  for (const id of taskIds) {
    const status = statuses.get(id)?.status;
    if (status === undefined) missing.push(id);
    else (SETTLED_STATUSES.has(status) ? settled : unsettled).push(id);
  }
  if (missing.length > 0) {
    const named = missing.map((id) => JSON.stringify(id)).join(", ");
    throw new CoordinationError("TASK_NOT_FOUND", `${missing.length === 1 ? "task" : "tasks"} ${named} not found`, { id: missing[0], missing });
  }
  return { settled, unsettled, statuses };
}
