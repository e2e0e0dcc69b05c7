// tRPC procedures of the task queue; `meta.rest` also serves each one as a REST route (src/rest/).
import { z } from "zod";
import { ADMIN, AGENT, AS_AGENT, credentialIdOf, mailboxViewOf, READ } from "../auth/access.js";
import { CoordinationError } from "../errors.js";
import { consumingProcedure, procedure, router, waitingProcedure } from "../trpc/init.js";
import {
  claimOutlookInput,
  claimOutlookSchema,
  claimedTaskSchema,
  claimInput,
  claimManyInput,
  completeInput,
  completeAndClaimInput,
  completedAndClaimedSchema,
  DEFAULT_STATS_QUEUES,
  enqueuedTaskSchema,
  enqueueInput,
  enqueueManyInput,
  failInput,
  heartbeatInput,
  listInput,
  releaseInput,
  requeueManyInput,
  requeueManySchema,
  settledTaskSchema,
  statsInput,
  stealInput,
  cancelInput, cancelManyInput, cancelManySchema, taskIdInput, requeueInput, updateInput,
  taskPageSchema,
  taskSchema,
  taskEventsInput,
  taskStatsSchema,
  waitInput,
  waitManyInput,
  waitManySchema,
} from "./task-schemas.js";
import { eventSchema } from "../events/event-schemas.js";
import { appendedLogSchema, appendLogInput, logPageSchema, readLogInput } from "./task-log-schemas.js";
import { pickQueues } from "./task-stats.js";
import { callerBaggageOf, callerTraceOf, withHeaderBaggage, withHeaderTrace, type TraceContext } from "./trace-context.js";
import type { Caller, Context } from "../trpc/context.js";

const tags = ["tasks"];

/** The trace context the call's carrier holds (trace-context.ts), read only by the enqueues that may take it. */
const callerTrace = (ctx: Pick<Context, "traceCarrier">): TraceContext | undefined => (ctx.traceCarrier === undefined ? undefined : callerTraceOf(ctx.traceCarrier));
/** The W3C Baggage the call's carrier holds, read as callerTrace is. */
const callerBaggage = (ctx: Pick<Context, "traceCarrier">): string | undefined => (ctx.traceCarrier === undefined ? undefined : callerBaggageOf(ctx.traceCarrier));

export const taskRouter = router({
  enqueue: procedure
    .meta({ access: AGENT, rest: { method: "POST", path: "/tasks", tags, summary: "Enqueue a task", errors: ["IDEMPOTENCY_MISMATCH", "TASK_NOT_FOUND", "INVALID_STATE", "FORBIDDEN"] } })
    .input(enqueueInput)
    .output(enqueuedTaskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.enqueue(withHeaderBaggage(withHeaderTrace(input, callerTrace(ctx)), callerBaggage(ctx)), keyScopeOf(ctx), credentialAgentOf(ctx.caller) ?? undefined)),

  enqueueMany: procedure
    .meta({ access: AGENT, rest: { method: "POST", path: "/tasks/batch", tags, summary: "Enqueue several tasks atomically", errors: ["IDEMPOTENCY_MISMATCH", "TASK_NOT_FOUND", "INVALID_STATE", "FORBIDDEN"] } })
    .input(enqueueManyInput)
    .output(z.array(enqueuedTaskSchema))
    .mutation(({ ctx, input }) => {
      // Read once for the batch: each task without a traceparent (or baggage) of its own takes it.
      const trace = callerTrace(ctx);
      const baggage = callerBaggage(ctx);
      const tasks = trace === undefined && baggage === undefined ? input.tasks : input.tasks.map((task) => withHeaderBaggage(withHeaderTrace(task, trace), baggage));
      return ctx.services.tasks.enqueueMany(tasks, keyScopeOf(ctx), credentialAgentOf(ctx.caller) ?? undefined);
    }),

  claim: consumingProcedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/tasks/claim", tags, summary: "Claim the best available task (null when none)" } })
    .input(claimInput)
    .output(claimedTaskSchema.nullable())
    .mutation(async ({ ctx, input }) => (await ctx.services.tasks.claim(input, ctx.call))[0] ?? null),

  /** The seed's REST claim: GET /tasks/claim/{agent_id}?queue=…&capability=… (204 when nothing is available). */
  claimNext: consumingProcedure
    .meta({ access: AS_AGENT,
      rest: {
        method: "GET",
        path: "/tasks/claim/{agent_id}",
        tags,
        summary: "Claim the next task for an agent (204 when none)",
        emptyIsNoContent: true,
        aliases: { queue: "queues", capability: "capabilities" },
      },
    })
    .input(claimInput)
    .output(claimedTaskSchema.nullable())
    .mutation(async ({ ctx, input }) => (await ctx.services.tasks.claim(input, ctx.call))[0] ?? null),

  claimMany: consumingProcedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/tasks/claim-many", tags, summary: "Claim up to limit tasks" } })
    .input(claimManyInput)
    .output(z.array(claimedTaskSchema))
    .mutation(({ ctx, input }) => ctx.services.tasks.claim(input, ctx.call)),

  heartbeat: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/tasks/{taskId}/heartbeat", tags, summary: "Extend a task's lease", errors: ["TASK_NOT_FOUND", "LEASE_CONFLICT"] } })
    .input(heartbeatInput)
    .output(taskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.heartbeat(input)),

  /** Lines of the run's log: what the agent did, for operators and other agents to read. */
  appendLog: procedure
    .meta({
      access: AS_AGENT,
      rest: { method: "POST", path: "/tasks/{taskId}/logs", tags, summary: "Add lines to a task's log (lease holder only)", errors: ["TASK_NOT_FOUND", "LEASE_CONFLICT", "IDEMPOTENCY_MISMATCH"] },
    })
    .input(appendLogInput)
    .output(appendedLogSchema)
    .mutation(({ ctx, input }) => ctx.services.taskLogs.append(input)),

  /** A page of a task's log; with waitMs, follows it as it grows (a long-poll). */
  log: waitingProcedure
    .meta({
      access: READ,
      rest: { method: "GET", path: "/tasks/{taskId}/logs", tags, summary: "A task's log, oldest first, after a line; with waitMs, waits for its next lines (or its settle)", errors: ["TASK_NOT_FOUND"] },
    })
    .input(readLogInput)
    .output(logPageSchema)
    .query(({ ctx, input }) => ctx.services.taskLogs.read(input, credentialIdOf(ctx.caller) ?? undefined, ctx.call)),

  complete: procedure
    .meta({ access: AS_AGENT,
      rest: {
        method: "POST",
        path: "/tasks/{taskId}/complete",
        tags,
        summary: "Mark a task done (lease holder only)",
        errors: ["TASK_NOT_FOUND", "LEASE_CONFLICT", "INVALID_STATE"],
      },
    })
    .input(completeInput)
    .output(settledTaskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.complete(input)),

  completeAndClaim: consumingProcedure
    .meta({ access: AS_AGENT,
      rest: {
        method: "POST",
        path: "/tasks/{taskId}/complete-and-claim",
        tags,
        summary: "Complete a task and claim the agent's next one in the same write (next is null when none is available)",
        errors: ["TASK_NOT_FOUND", "LEASE_CONFLICT", "INVALID_STATE"],
      },
    })
    .input(completeAndClaimInput)
    .output(completedAndClaimedSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.completeAndClaim(input, ctx.call)),

  fail: procedure
    .meta({ access: AS_AGENT,
      rest: {
        method: "POST",
        path: "/tasks/{taskId}/fail",
        tags,
        summary: "Mark a task failed: retried with backoff, or dead-lettered",
        errors: ["TASK_NOT_FOUND", "LEASE_CONFLICT"],
      },
    })
    .input(failInput)
    .output(settledTaskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.fail(input)),

  release: procedure
    .meta({ access: AS_AGENT,
      rest: { method: "POST", path: "/tasks/{taskId}/release", tags, summary: "Give a task back without charging an attempt", errors: ["TASK_NOT_FOUND", "LEASE_CONFLICT"] },
    })
    .input(releaseInput)
    .output(settledTaskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.release(input)),

  cancel: procedure
    .meta({
      access: AGENT,
      rest: {
        method: "POST",
        path: "/tasks/{taskId}/cancel",
        tags,
        summary: "Cancel a waiting, pending or claimed task (and the tasks waiting on it), or discard a dead letter: an admin any task, an agent credential those its agent enqueued",
        errors: ["TASK_NOT_FOUND", "INVALID_STATE"],
      },
    })
    .input(cancelInput)
    .output(taskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.cancel(input, credentialAgentOf(ctx.caller))),

  requeue: procedure
    .meta({ access: ADMIN,
      rest: { method: "POST", path: "/tasks/{taskId}/requeue", tags, summary: "Bring a dead-lettered or cancelled task back", errors: ["TASK_NOT_FOUND", "INVALID_STATE"] },
    })
    .input(requeueInput)
    .output(taskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.requeue(input)),

  promote: procedure
    .meta({ access: ADMIN,
      rest: { method: "POST", path: "/tasks/{taskId}/promote", tags, summary: "Make a pending task that is not due yet (a delay, a retry's backoff, a schedule's next run) due now", errors: ["TASK_NOT_FOUND", "INVALID_STATE"] },
    })
    .input(taskIdInput)
    .output(taskSchema)
    .mutation(async ({ ctx, input }) => {
      const promotedBy = credentialIdOf(ctx.caller);
      const task = await ctx.services.tasks.promote(input.taskId, promotedBy);
      ctx.services.log.info({ taskId: task.id, queue: task.queue, promotedBy }, "task promoted");
      return task;
    }),

  update: procedure
    .meta({ access: ADMIN,
      rest: { method: "PATCH", path: "/tasks/{taskId}", tags, summary: "Give a task that waits to run (pending or waiting) another priority, time to fall due, expiry or payload", errors: ["TASK_NOT_FOUND", "INVALID_STATE"], bodyRequired: true },
    })
    .input(updateInput)
    .output(taskSchema)
    .mutation(async ({ ctx, input }) => {
      const updatedBy = credentialIdOf(ctx.caller);
      const task = await ctx.services.tasks.update(input, updatedBy);
      ctx.services.log.info({ taskId: task.id, queue: task.queue, priority: task.priority, runAt: task.runAt, updatedBy }, "task updated");
      return task;
    }),

  requeueMany: procedure
    .meta({ access: ADMIN,
      rest: { method: "POST", path: "/tasks/requeue", tags, summary: "Bring back dead-lettered tasks in bulk, oldest first" },
    })
    .input(requeueManyInput)
    .output(requeueManySchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.requeueMany(input)),

  cancelMany: procedure
    .meta({ access: AGENT,
      rest: {
        method: "POST",
        path: "/tasks/cancel",
        tags,
        summary: "Cancel a queue's tasks in bulk (pending and waiting by default), oldest first: an admin any, an agent credential those its agent enqueued (enqueuedBy: itself)",
        errors: ["FORBIDDEN"],
      },
    })
    .input(cancelManyInput)
    .output(cancelManySchema)
    .mutation(async ({ ctx, input }) => {
      const byAgent = credentialAgentOf(ctx.caller);
      // Checked before the write, unlike a single cancel's: the filter names whose tasks it reads,
      // so no task of another is ever looked at.
      if (byAgent !== null && input.enqueuedBy !== byAgent) {
        throw new CoordinationError(
          "FORBIDDEN",
          `an agent credential cancels in bulk only the tasks its agent enqueued: give enqueuedBy ${JSON.stringify(byAgent)}${input.enqueuedBy === undefined ? "" : ` (not ${JSON.stringify(input.enqueuedBy)})`}`,
        );
      }
      const page = await ctx.services.tasks.cancelMany(input, byAgent);
      if (page.cancelled.length > 0) ctx.services.log.info({ queue: input.queue, statuses: input.statuses, ...(input.enqueuedBy === undefined ? {} : { enqueuedBy: input.enqueuedBy }), cancelled: page.cancelled.length, cancelledBy: credentialIdOf(ctx.caller) }, "tasks cancelled in bulk");
      return page;
    }),

  steal: consumingProcedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/tasks/steal", tags, summary: "Take over tasks from offline agents or expired leases", errors: ["AGENT_NOT_FOUND"] } })
    .input(stealInput)
    .output(z.array(claimedTaskSchema))
    .mutation(({ ctx, input }) => ctx.services.tasks.steal(input, ctx.call)),

  get: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/tasks/{taskId}", tags, summary: "Get a task", errors: ["TASK_NOT_FOUND"] } })
    .input(taskIdInput)
    .output(taskSchema)
    .query(({ ctx, input }) => ctx.services.tasks.get(input.taskId)),

  /** The task once it settles (a long-poll): what a producer that handed work out waits on. */
  wait: waitingProcedure
    .meta({
      access: READ,
      rest: { method: "GET", path: "/tasks/{taskId}/wait", tags, summary: "Wait for a task to settle (completed, dead_letter or cancelled), up to waitMs; the task as it is then", errors: ["TASK_NOT_FOUND"] },
    })
    .input(waitInput)
    .output(taskSchema)
    .query(({ ctx, input }) => ctx.services.tasks.wait(input, credentialIdOf(ctx.caller) ?? undefined, ctx.call)),

  /** Several tasks once all (or any) of them settle: what an orchestrator that fanned work out waits on. */
  waitMany: waitingProcedure
    .meta({
      access: READ,
      rest: { method: "GET", path: "/tasks/wait", tags, summary: "Wait for several tasks to settle (all of them, or any), up to waitMs; the tasks as they are then", errors: ["TASK_NOT_FOUND"] },
    })
    .input(waitManyInput)
    .output(waitManySchema)
    .query(({ ctx, input }) => ctx.services.tasks.waitMany(input, credentialIdOf(ctx.caller) ?? undefined, ctx.call)),

  /** A task's own events, oldest first (the dashboard's task page). */
  events: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/tasks/{taskId}/events", tags, summary: "A task's events, oldest first (its transitions: task.progress reports, task.checkpointed saves and task.log appends are in the log)", errors: ["TASK_NOT_FOUND"] } })
    .input(taskEventsInput)
    .output(z.array(eventSchema))
    .query(async ({ ctx, input }) => {
      const task = await ctx.services.tasks.get(input.taskId);
      // Direct messages about the task reach only their target, here as in the log (mailboxViewOf).
      // Its runAt too once it passed: a promote (or a retry, a release) sets it to when it happened,
      // which may be far from the enqueue of a schedule's run and from its claim. And its last
      // write (updatedAt): an operator's tasks.update of a task that has waited since.
      const runAt = task.runAt.getTime() <= Date.now() ? task.runAt : null;
      const times = [task.createdAt, runAt, task.updatedAt, task.claimedAt, task.finishedAt].flatMap((at) => (at === null ? [] : [at.getTime()]));
      return ctx.services.db.read("events.forTask", { taskId: task.id, times, limit: input.limit, ...mailboxViewOf(ctx.caller) });
    }),

  list: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/tasks", tags, summary: "List tasks (cursor pagination)" } })
    .input(listInput)
    .output(taskPageSchema)
    .query(({ ctx, input }) => ctx.services.tasks.list(input)),

  /**
   * Why the agent's claim would answer no task now: paused, full or rate-limited queues, the
   * capabilities and targets of the due tasks it may not run, its next delayed task, and whether
   * a claim would be handed one after all (a claim's own look; the rest bounded whatever the
   * backlog): what a claim returned null answers "why" with.
   */
  claimOutlook: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/agents/{agentId}/claim-outlook", tags, summary: "Why the agent's claim would answer no task now: paused, full or rate-limited queues, capabilities it lacks, other agents' tasks, its next delayed one" } })
    .input(claimOutlookInput)
    .output(claimOutlookSchema)
    .query(({ ctx, input }) => ctx.services.tasks.claimOutlook(input)),

  stats: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/stats/tasks", tags, summary: "Task counts per queue and status" } })
    .input(statsInput)
    .output(taskStatsSchema)
    .query(async ({ ctx, input }) => pickQueues(await ctx.services.tasks.stats(), input?.queue, input?.limit ?? DEFAULT_STATS_QUEUES)),
});

/**
 * Whose an enqueue's idempotencyKey is, and so whom the task names as its enqueuer: an agent
 * credential's agent (one agent's keys never meet another's, so none can enqueue first under
 * another's key and decide what it gets); else the agent an MCP session acts as (actingAgent: its
 * tools tell it to find what it asked for with list_tasks' enqueuedBy, its own id); '' for an
 * admin, an open server and in-process callers, who share one space of keys.
 */
function keyScopeOf(ctx: { caller: Caller; actingAgent?: string | undefined }): string {
  return credentialAgentOf(ctx.caller) ?? ctx.actingAgent ?? "";
}

/**
 * The agent an agent credential acts as; null for an admin, a read credential, an open server and
 * in-process callers. What it enqueues is its own (the task's idempotencyScope), and it cancels
 * only that.
 */
function credentialAgentOf(caller: Caller): string | null {
  return caller.kind === "token" && caller.role === "agent" && caller.agentId !== null ? caller.agentId : null;
}
