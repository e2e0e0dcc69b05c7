// tRPC procedures of the task queue; `meta.openapi` also exposes each one as a REST route.
import { z } from "zod";
import { consumingProcedure, procedure, router } from "../trpc/init.js";
import {
  claimedTaskSchema,
  claimInput,
  claimManyInput,
  completeInput,
  enqueueInput,
  enqueueManyInput,
  failInput,
  heartbeatInput,
  listInput,
  releaseInput,
  restClaimInput,
  settledTaskSchema,
  stealInput,
  taskIdInput,
  taskPageSchema,
  taskSchema,
  taskStatsSchema,
} from "./task-schemas.js";

const tags = ["tasks"];

export const taskRouter = router({
  enqueue: procedure
    .meta({ openapi: { method: "POST", path: "/tasks", tags, summary: "Enqueue a task" } })
    .input(enqueueInput)
    .output(taskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.enqueue(input)),

  enqueueMany: procedure
    .meta({ openapi: { method: "POST", path: "/tasks/batch", tags, summary: "Enqueue several tasks atomically" } })
    .input(enqueueManyInput)
    .output(z.array(taskSchema))
    .mutation(({ ctx, input }) => ctx.services.tasks.enqueueMany(input.tasks)),

  claim: consumingProcedure
    .meta({ openapi: { method: "POST", path: "/tasks/claim", tags, summary: "Claim the best available task (null when none)" } })
    .input(claimInput)
    .output(claimedTaskSchema.nullable())
    .mutation(async ({ ctx, input }) => (await ctx.services.tasks.claim(input, ctx.call))[0] ?? null),

  /** The seed's REST claim: GET /tasks/claim/{agent_id}?queue=…&capability=… (204 when nothing is available). */
  claimNext: consumingProcedure
    .meta({ openapi: { method: "GET", path: "/tasks/claim/{agent_id}", tags, summary: "Claim the next task for an agent (204 when none)" } })
    .input(restClaimInput)
    .output(claimedTaskSchema.nullable())
    .mutation(async ({ ctx, input }) => {
      const { agent_id, queue, capability, ...rest } = input;
      const [task] = await ctx.services.tasks.claim({ ...rest, agentId: agent_id, queues: queue, capabilities: capability }, ctx.call);
      return task ?? null;
    }),

  claimMany: consumingProcedure
    .meta({ openapi: { method: "POST", path: "/tasks/claim-many", tags, summary: "Claim up to limit tasks" } })
    .input(claimManyInput)
    .output(z.array(claimedTaskSchema))
    .mutation(({ ctx, input }) => ctx.services.tasks.claim(input, ctx.call)),

  heartbeat: procedure
    .meta({ openapi: { method: "POST", path: "/tasks/{taskId}/heartbeat", tags, summary: "Extend a task's lease" } })
    .input(heartbeatInput)
    .output(taskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.heartbeat(input)),

  complete: procedure
    .meta({ openapi: { method: "POST", path: "/tasks/{taskId}/complete", tags, summary: "Mark a task done (lease holder only)" } })
    .input(completeInput)
    .output(settledTaskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.complete(input)),

  fail: procedure
    .meta({ openapi: { method: "POST", path: "/tasks/{taskId}/fail", tags, summary: "Mark a task failed: retried with backoff, or dead-lettered" } })
    .input(failInput)
    .output(settledTaskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.fail(input)),

  release: procedure
    .meta({ openapi: { method: "POST", path: "/tasks/{taskId}/release", tags, summary: "Give a task back without charging an attempt" } })
    .input(releaseInput)
    .output(settledTaskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.release(input)),

  cancel: procedure
    .meta({ openapi: { method: "POST", path: "/tasks/{taskId}/cancel", tags, summary: "Cancel a pending or claimed task" } })
    .input(taskIdInput)
    .output(taskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.cancel(input.taskId)),

  requeue: procedure
    .meta({ openapi: { method: "POST", path: "/tasks/{taskId}/requeue", tags, summary: "Bring a dead-lettered or cancelled task back" } })
    .input(taskIdInput)
    .output(taskSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.requeue(input.taskId)),

  steal: consumingProcedure
    .meta({ openapi: { method: "POST", path: "/tasks/steal", tags, summary: "Take over tasks from offline agents or expired leases" } })
    .input(stealInput)
    .output(z.array(claimedTaskSchema))
    .mutation(({ ctx, input }) => ctx.services.tasks.steal(input, ctx.call)),

  get: procedure
    .meta({ openapi: { method: "GET", path: "/tasks/{taskId}", tags, summary: "Get a task" } })
    .input(taskIdInput)
    .output(taskSchema)
    .query(({ ctx, input }) => ctx.services.tasks.get(input.taskId)),

  list: procedure
    .meta({ openapi: { method: "GET", path: "/tasks", tags, summary: "List tasks (cursor pagination)" } })
    .input(listInput)
    .output(taskPageSchema)
    .query(({ ctx, input }) => ctx.services.tasks.list(input)),

  stats: procedure
    .meta({ openapi: { method: "GET", path: "/stats/tasks", tags, summary: "Task counts per queue and status" } })
    .input(z.object({}).optional())
    .output(taskStatsSchema)
    .query(({ ctx }) => ctx.services.tasks.stats()),
});
